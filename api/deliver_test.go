package api

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
)

// TestDeliverDoesNotAllocate: routing a real batch (an accept, a fill to
// both sides, a cancel) to live sessions allocates nothing once warm. It
// measures Deliver from inside the pipeline's delivery callback, where the
// batch is valid.
func TestDeliverDoesNotAllocate(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, _ := NewServer(Config{Logger: quiet}, nil)
	for id, acct := range map[uint64]engine.AccountID{1: 1, 2: 2} {
		c1, c2 := net.Pipe()
		t.Cleanup(func() { c1.Close(); c2.Close() })
		ss := &session{id: id, acct: acct, conn: c1, limit: 1 << 30, log: quiet, wake: make(chan struct{}, 1)}
		s.sessions[id] = ss
		s.byAccount[acct] = map[uint64]*session{id: ss}
	}
	drain := func() {
		for _, ss := range s.sessions {
			ss.mu.Lock() // as the writer does
			chunks := ss.out
			ss.out, ss.outOwn = ss.spareQ[:0], false
			ss.release(chunks)
			ss.recycle(chunks)
			ss.mu.Unlock()
			select {
			case <-ss.wake:
			default:
			}
		}
	}
	store, err := persist.Open("db", workload.Config(0), persist.Options{FS: vfs.NewCrashableMem(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, _, _ := store.Recover()
	var allocs float64 = -1
	// First a resting order from account 2 ...
	p, _ := pipeline.New(e, store, func(*pipeline.Batch) {}, pipeline.Config{})
	p.Start()
	maker := engine.Command{Kind: engine.CmdNewOrder, Account: 2, Instrument: workload.Instrument, Side: engine.Sell,
		Type: engine.Limit, TIF: engine.GTC, Price: 100_000, Qty: 2, Ref: 1}
	p.Submit(pipeline.Request{Cmd: maker, Token: 2 << 32})
	p.Close()
	// ... then one batch in which account 1 trades with it and a cancel is
	// rejected: measure delivering that batch.
	p, _ = pipeline.New(p.Engine(), store, func(b *pipeline.Batch) {
		if len(b.Cmds) == 2 {
			s.Deliver(b)
			drain()
			allocs = testing.AllocsPerRun(1000, func() { s.Deliver(b); drain() })
		}
	}, pipeline.Config{})
	p.Start()
	taker := engine.Command{Kind: engine.CmdNewOrder, Account: 1, Instrument: workload.Instrument, Side: engine.Buy,
		Type: engine.Limit, TIF: engine.IOC, Price: 100_000, Qty: 3, Ref: 1}
	cancel := engine.Command{Kind: engine.CmdCancel, Account: 1, OrderID: 99}
	p.Submit(pipeline.Request{Cmd: taker, Token: 1 << 32}, pipeline.Request{Cmd: cancel, Token: 1 << 32})
	p.Close()
	if allocs != 0 {
		t.Fatalf("%v allocations per delivered batch, want 0", allocs)
	}
}

// TestInProcessQueryAfterHandover: an in-process query (Shutdown's
// barrier, the admin depth) is answered only after every response
// sequenced before it has been handed to its session, even when both are
// in the middle of a group commit (EndOfCommit false): Shutdown says
// Goodbye right after the barrier, and a Goodbye queued before those
// responses would drop them.
func TestInProcessQueryAfterHandover(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, _ := NewServer(Config{Logger: quiet}, nil)
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	ss := &session{id: 1, acct: 1, conn: c1, limit: 1 << 30, log: quiet, wake: make(chan struct{}, 1)}
	s.sessions[1] = ss
	s.byAccount[1] = map[uint64]*session{1: ss}
	store, err := persist.Open("db", workload.Config(0), persist.Options{FS: vfs.NewCrashableMem(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, _, _ := store.Recover()
	p, _ := pipeline.New(e, store, func(b *pipeline.Batch) {
		b.EndOfCommit = false // as if more batches of the same group followed
		s.Deliver(b)
	}, pipeline.Config{})
	s.Attach(p)
	p.Start()
	defer p.Close()
	p.Submit(pipeline.Request{Cmd: engine.Command{Kind: engine.CmdNewOrder, Account: 1, Instrument: workload.Instrument,
		Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC, Price: 100_000, Qty: 1, Ref: 1}, Token: uint64(newRoute(1, 0))})
	if _, err := s.Depth(context.Background(), workload.Instrument, 1); err != nil {
		t.Fatal(err)
	}
	ss.mu.Lock()
	queued := len(ss.out)
	ss.mu.Unlock()
	if queued == 0 {
		t.Fatal("the barrier was answered while the order's Accepted was still pending in the release stage")
	}
}
