package pipeline_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder is a Deliver callback that keeps everything delivered and checks
// that nothing arrives before the journal has it.
type recorder struct {
	t      *testing.T
	store  *persist.Store
	mu     sync.Mutex
	events []engine.Event
	tokens map[uint64]int
	seqs   []engine.Seq
	tops   int
}

// answered is how many requests have been delivered.
func (r *recorder) answered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tokens)
}

func (r *recorder) deliver(b *pipeline.Batch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(b.Cmds) > 0 {
		last, err := r.store.LastSeq()
		if err != nil || last < b.LastSeq {
			r.t.Errorf("batch through seq %d delivered while the journal ends at %d (%v)", b.LastSeq, last, err)
		}
	}
	for i := range b.Results {
		res := &b.Results[i]
		r.tokens[res.Token]++
		if res.Query == 0 {
			r.seqs = append(r.seqs, res.Seq)
			r.events = append(r.events, b.EventsOf(res)...)
		} else if res.Query == pipeline.QueryTop && res.Found {
			r.tops++
		}
	}
}

func openStore(t *testing.T, fs vfs.FS, cfg engine.Config) *persist.Store {
	t.Helper()
	st, err := persist.Open("db", cfg, persist.Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// startRecorded opens a store on a crashable in-memory filesystem (closed
// when the test ends), recovers its engine and makes a recorder for it.
func startRecorded(t *testing.T, cfg engine.Config) (*persist.Store, *engine.Engine, *recorder) {
	t.Helper()
	store := openStore(t, vfs.NewCrashableMem(), cfg)
	t.Cleanup(func() { store.Close() })
	e, _, err := store.Recover()
	if err != nil {
		t.Fatal(err)
	}
	return store, e, &recorder{t: t, store: store, tokens: map[uint64]int{}}
}

// TestEndToEnd: several producers submit commands and queries; every request
// is answered exactly once, sequence numbers are contiguous, nothing is
// delivered before it is journaled, and replaying the journal into a fresh
// engine reproduces the delivered events byte for byte and the final state.
func TestEndToEnd(t *testing.T) {
	cfg, cmds := workload.A(3, 40_000)
	store, e, rec := startRecorded(t, cfg)
	p, err := pipeline.New(e, store, rec.deliver, pipeline.Config{RingSize: 256, MaxBatch: 64})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	const producers = 4
	var wg sync.WaitGroup
	var token atomic.Uint64
	for w := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(cmds); i += producers {
				reqs := []pipeline.Request{{Cmd: cmds[i], Token: token.Add(1)}}
				if i%10 == 0 {
					reqs = append(reqs, pipeline.Request{Query: pipeline.Query{Kind: pipeline.QueryTop,
						Instrument: workload.Instrument}, Token: token.Add(1)})
				}
				if err := p.Submit(reqs...); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if len(rec.tokens) != int(token.Load()) {
		t.Fatalf("%d requests answered, %d submitted", len(rec.tokens), token.Load())
	}
	for tok, n := range rec.tokens {
		if n != 1 {
			t.Fatalf("token %d answered %d times", tok, n)
		}
	}
	for i, s := range rec.seqs {
		if s != engine.Seq(i+1) {
			t.Fatalf("result %d has seq %d", i, s)
		}
	}
	if rec.tops != len(cmds)/10 {
		t.Errorf("%d top-of-book answers, want %d", rec.tops, len(cmds)/10)
	}
	// Replay the journal into a fresh engine.
	fresh, _ := engine.New(cfg)
	var replayed []engine.Event
	err = store.Replay(context.Background(), 1, 0, func(c *engine.Command) error {
		replayed = fresh.Apply(c, replayed)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(replayed, rec.events) {
		t.Fatalf("replayed events differ from delivered ones (%d vs %d)", len(replayed), len(rec.events))
	}
	if fresh.StateHash() != p.Engine().StateHash() {
		t.Fatal("replayed state differs from the live engine")
	}
	m := p.Metrics()
	t.Logf("%d batches, batch p50 %d p99 %d", p.Metrics().Batches,
		pipeline.Percentile(&m.BatchSizes, 0.5), pipeline.Percentile(&m.BatchSizes, 0.99))
}

// TestSnapshotsUnderLoadAndReplayDeterminism: with the snapshotter running
// on its replica, recovery from the newest snapshot plus the journal gives
// the live engine's state, and re-emits exactly the events delivered live
// after that snapshot.
func TestSnapshotsUnderLoadAndReplayDeterminism(t *testing.T) {
	cfg, cmds := workload.A(4, 60_000)
	store, e, rec := startRecorded(t, cfg)
	p, err := pipeline.New(e, store, rec.deliver, pipeline.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := persist.NewSnapshotter(store, e, p.Durable, persist.SnapshotterConfig{Every: 7_000, Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	sn.Start()
	for i := range cmds {
		if err := p.Submit(pipeline.Request{Cmd: cmds[i], Token: uint64(i)}); err != nil {
			t.Fatal(err)
		}
		if i%5000 == 0 {
			time.Sleep(2 * time.Millisecond) // let the snapshotter run
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	sn.Close()
	if sn.Metrics().Taken == 0 {
		t.Fatal("no snapshot was taken")
	}
	snaps, _ := store.Snapshots()
	r, st, err := store.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if st.SnapshotSeq == 0 || st.LastSeq != engine.Seq(len(cmds)) {
		t.Fatalf("recovered from snapshot %d to %d; snapshots %v", st.SnapshotSeq, st.LastSeq, snaps)
	}
	if r.StateHash() != p.Engine().StateHash() {
		t.Fatal("recovered state differs from the live engine")
	}
	// Re-emit the events after the snapshot and compare with the live ones.
	base, err := store.LoadSnapshot(st.SnapshotSeq)
	if err != nil {
		t.Fatal(err)
	}
	var again []engine.Event
	store.Replay(context.Background(), st.SnapshotSeq+1, 0, func(c *engine.Command) error {
		again = base.Apply(c, again)
		return nil
	})
	var live []engine.Event
	for _, ev := range rec.events {
		if ev.Seq > st.SnapshotSeq {
			live = append(live, ev)
		}
	}
	if !slices.Equal(again, live) {
		t.Fatalf("re-emitted %d events, live %d, or they differ", len(again), len(live))
	}
	t.Logf("%d snapshots taken, last at %d (%d bytes, %v)", sn.Metrics().Taken, sn.Metrics().LastSeq,
		sn.Metrics().LastBytes, sn.Metrics().LastDuration)
}

// TestFailStop: once the disk refuses a write, nothing more is delivered,
// Submit fails, and Failed is closed; what was delivered before is durable.
func TestFailStop(t *testing.T) {
	cfg, cmds := workload.A(5, 5_000)
	var broken atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if broken.Load() && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileSync ||
			op.Kind == errorfs.OpFileSyncData) {
			return errors.New("injected: disk full")
		}
		return nil
	})
	mem := vfs.NewCrashableMem()
	store := openStore(t, errorfs.Wrap(mem, inj), cfg)
	e, _, err := store.Recover()
	if err != nil {
		t.Fatal(err)
	}
	var delivered atomic.Int64
	var afterBreak atomic.Int64
	p, err := pipeline.New(e, store, func(b *pipeline.Batch) {
		delivered.Add(int64(len(b.Cmds)))
		if broken.Load() {
			afterBreak.Add(int64(len(b.Cmds)))
		}
	}, pipeline.Config{MaxBatch: 16})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	for i := range 1000 {
		if err := p.Submit(pipeline.Request{Cmd: cmds[i]}); err != nil {
			t.Fatal(err)
		}
	}
	for delivered.Load() < 1000 { // delivered, not only durable: Deliver runs just after
		time.Sleep(time.Millisecond)
	}
	before := delivered.Load()
	broken.Store(true)
	var submitErr error
	for i := 1000; i < len(cmds) && submitErr == nil; i++ {
		submitErr = p.Submit(pipeline.Request{Cmd: cmds[i]})
		if i%100 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	select {
	case <-p.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("pipeline did not fail")
	}
	if err := p.Submit(pipeline.Request{Cmd: cmds[0]}); err == nil {
		t.Fatal("Submit accepted a request after the failure")
	}
	if p.Close() == nil {
		t.Fatal("Close reported no failure")
	}
	if afterBreak.Load() != 0 {
		t.Fatalf("%d commands delivered after the disk broke", afterBreak.Load())
	}
	if before != 1000 {
		t.Fatalf("%d delivered before the break, want 1000", before)
	}
	t.Logf("failed with: %v", p.Err())
}

// TestQuerySeesEarlierCommands: a query submitted after a command by the
// same producer is answered after it, from the state it produced.
func TestQuerySeesEarlierCommands(t *testing.T) {
	cfg := workload.Config(0)
	store := openStore(t, vfs.NewCrashableMem(), cfg)
	defer store.Close()
	e, _, _ := store.Recover()
	var got []pipeline.Result
	var depthBids, depthAsks []engine.LevelInfo
	var orders []engine.OrderInfo
	var mu sync.Mutex
	p, _ := pipeline.New(e, store, func(b *pipeline.Batch) {
		mu.Lock()
		defer mu.Unlock()
		for i := range b.Results {
			r := b.Results[i]
			got = append(got, r)
			switch r.Query {
			case pipeline.QueryDepth:
				bids, asks := b.DepthOf(&r)
				depthBids, depthAsks = slices.Clone(bids), slices.Clone(asks)
			case pipeline.QueryOpenOrders:
				orders = slices.Clone(b.OrdersOf(&r))
			}
		}
	}, pipeline.Config{})
	p.Start()
	buy := engine.Command{Kind: engine.CmdNewOrder, Account: 1, Instrument: workload.Instrument, Side: engine.Buy,
		Type: engine.Limit, TIF: engine.GTC, Price: 99_990, Qty: 5, Ref: 1}
	sell := buy
	sell.Side, sell.Price, sell.Ref = engine.Sell, 100_010, 2
	p.Submit(
		pipeline.Request{Cmd: buy, Token: 1},
		pipeline.Request{Cmd: sell, Token: 2},
		pipeline.Request{Query: pipeline.Query{Kind: pipeline.QueryTop, Instrument: workload.Instrument}, Token: 3},
		pipeline.Request{Query: pipeline.Query{Kind: pipeline.QueryDepth, Instrument: workload.Instrument, Levels: 5}, Token: 4},
		pipeline.Request{Query: pipeline.Query{Kind: pipeline.QueryOpenOrders, Account: 1}, Token: 5},
		pipeline.Request{Query: pipeline.Query{Kind: pipeline.QueryTop, Instrument: 99}, Token: 6},
	)
	p.Close()
	if len(got) != 6 {
		t.Fatalf("%d results", len(got))
	}
	top := got[2]
	if !top.Found || top.Seq != 2 || top.Top != (engine.TopOfBook{BidPrice: 99_990, BidQty: 5, AskPrice: 100_010, AskQty: 5}) {
		t.Fatalf("top: %+v", top)
	}
	if len(depthBids) != 1 || len(depthAsks) != 1 || depthAsks[0].Price != 100_010 {
		t.Fatalf("depth: %v %v", depthBids, depthAsks)
	}
	if len(orders) != 2 {
		t.Fatalf("open orders: %v", orders)
	}
	if got[5].Found {
		t.Fatal("top of an unknown instrument was found")
	}
}

// TestGracefulShutdownSnapshot: close the pipeline (everything submitted is
// delivered), snapshot the engine, and the next start replays nothing.
func TestGracefulShutdownSnapshot(t *testing.T) {
	cfg, cmds := workload.A(6, 20_000)
	fs := vfs.NewCrashableMem()
	store := openStore(t, fs, cfg)
	e, _, _ := store.Recover()
	var delivered atomic.Int64
	p, _ := pipeline.New(e, store, func(b *pipeline.Batch) { delivered.Add(int64(len(b.Results))) },
		pipeline.Config{})
	p.Start()
	for i := range cmds {
		p.Submit(pipeline.Request{Cmd: cmds[i]})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if delivered.Load() != int64(len(cmds)) {
		t.Fatalf("%d of %d delivered by Close", delivered.Load(), len(cmds))
	}
	if err := store.SnapshotEngine(p.Engine()); err != nil {
		t.Fatal(err)
	}
	want := p.Engine().StateHash()
	store.Close()
	store = openStore(t, fs, cfg)
	defer store.Close()
	r, st, err := store.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if st.SnapshotSeq != engine.Seq(len(cmds)) || st.Replayed != 0 || r.StateHash() != want {
		t.Fatalf("restart after graceful shutdown: %+v", st)
	}
}

// TestQueriesOnlyAreNoJournalWrite: batches of queries alone write and
// sync nothing, so the journal's write and sync metrics do not count
// them (they used to count one write each, which made a quiet server's
// journal look fast).
func TestQueriesOnlyAreNoJournalWrite(t *testing.T) {
	cfg, cmds := workload.A(3, 10)
	store, e, rec := startRecorded(t, cfg)
	p, err := pipeline.New(e, store, rec.deliver, pipeline.Config{RingSize: 256, MaxBatch: 64})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	for i := range 50 {
		if err := p.Submit(pipeline.Request{Query: pipeline.Query{Kind: pipeline.QueryTop, Instrument: workload.Instrument},
			Token: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	for rec.answered() < 50 {
		time.Sleep(time.Millisecond)
	}
	if m := p.Metrics(); m.Writes != 0 || m.Syncs != 0 {
		t.Errorf("queries only: %d writes, %d syncs counted", m.Writes, m.Syncs)
	}
	if err := p.Submit(pipeline.Request{Cmd: cmds[0], Token: 100}); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if m := p.Metrics(); m.Writes != 1 || m.Syncs != 1 {
		t.Errorf("one command: %d writes, %d syncs counted", m.Writes, m.Syncs)
	}
}
