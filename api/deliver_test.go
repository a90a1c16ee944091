package api

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
)

// drainSessions takes every session's queued frames, as the writers
// would, so that Deliver can be measured alone.
func drainSessions(s *Server) {
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
	drain := func() { drainSessions(s) }
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

// benchDeliver measures the release stage alone: a pipeline on an
// in-memory store delivers every batch through Server.Deliver to two live
// sessions (accounts 1 and 2, named or not), whose queues are drained as
// their writers would; only the time inside Deliver is counted. The
// orders are the TCP benchmark's: limits around a mid price, a quarter
// crossing. It is how the sessions' streams are judged against unnamed
// sessions, which keep none (make bench; under callgrind for counts that
// do not move between runs).
func benchDeliver(b *testing.B, named bool) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const n = 200_000
	cmds := make([]engine.Command, n)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range cmds {
		acct := engine.AccountID(1 + i%2)
		side := engine.Side(1 + rng.IntN(2))
		off := engine.Price(1 + rng.IntN(50))
		if rng.IntN(4) == 0 {
			off = -off
		}
		price := 100_000 - off
		if side == engine.Sell {
			price = 100_000 + off
		}
		cmds[i] = engine.Command{Kind: engine.CmdNewOrder, Account: acct, Instrument: workload.Instrument, Side: side,
			Type: engine.Limit, TIF: engine.GTC, Price: price, Qty: engine.Qty(1 + rng.IntN(100)), Ref: engine.ClientRef(i/2 + 1)}
		if named {
			cmds[i].Session = engine.SessionID(100 + acct)
		}
	}
	var spent time.Duration
	var delivered int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, _ := NewServer(Config{Logger: quiet}, nil)
		for id, acct := range map[uint64]engine.AccountID{1: 1, 2: 2} {
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			ss := &session{id: id, acct: acct, conn: c1, limit: 1 << 40, log: quiet, wake: make(chan struct{}, 1), stream: &stream{}}
			if named {
				ss.name = engine.SessionID(100 + acct)
				st := s.streams.get(streamKey{acct, ss.name}, true)
				st.live, ss.stream = ss, st
			}
			s.sessions[id] = ss
			s.byAccount[acct] = map[uint64]*session{id: ss}
		}
		drain := func() { drainSessions(s) }
		store, err := persist.Open("db", workload.Config(0), persist.Options{FS: vfs.NewMem(), NoSync: true, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		e, _, _ := store.Recover()
		done := make(chan struct{})
		got := 0
		p, _ := pipeline.New(e, store, func(bt *pipeline.Batch) {
			t0 := time.Now()
			s.Deliver(bt)
			spent += time.Since(t0)
			drain()
			if got += len(bt.Results); got == n {
				close(done)
			}
		}, pipeline.Config{})
		p.Start()
		b.StartTimer()
		for k := 0; k < n; k += 64 {
			reqs := make([]pipeline.Request, 0, 64)
			for _, c := range cmds[k:min(k+64, n)] {
				reqs = append(reqs, pipeline.Request{Cmd: c, Token: uint64(c.Account) << 32})
			}
			p.Submit(reqs...)
		}
		<-done
		b.StopTimer()
		p.Close()
		store.Close()
		delivered += n
		b.StartTimer()
	}
	b.ReportMetric(float64(spent.Nanoseconds())/float64(delivered), "deliver-ns/cmd")
}

func BenchmarkDeliverNamed(b *testing.B)   { benchDeliver(b, true) }
func BenchmarkDeliverUnnamed(b *testing.B) { benchDeliver(b, false) }
