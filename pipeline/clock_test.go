package pipeline_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/pipeline"
)

// TestClockExpiresWithoutTraffic: a GTD order expires at its time with no
// other command arriving: the pipeline sends a journaled CmdClock, its
// events are delivered, and replaying the journal reproduces them. The
// test's clock is a counter it moves by hand.
func TestClockExpiresWithoutTraffic(t *testing.T) {
	cfg := engine.Config{Instruments: []engine.Instrument{{ID: 1, Symbol: "X"}}}
	store, e, rec := startRecorded(t, cfg)
	var now atomic.Int64
	now.Store(1_000)
	p, err := pipeline.New(e, store, rec.deliver, pipeline.Config{Clock: now.Load})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	defer p.Close()
	order := engine.Command{Kind: engine.CmdNewOrder, Account: 1, Instrument: 1, Side: engine.Buy, Type: engine.Limit,
		TIF: engine.GTD, Expire: 5_000, Price: 10, Qty: 3, Ref: 1}
	if err := p.Submit(pipeline.Request{Token: 7, Cmd: order}); err != nil {
		t.Fatal(err)
	}
	expired := func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, ev := range rec.events {
			if ev.Kind == engine.EvCanceled && ev.Reason == uint8(engine.CancelExpired) {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	delivered := func() int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.seqs)
	}
	for delivered() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if expired() {
		t.Fatal("expired before its time")
	}
	now.Store(5_000) // the expiry, exactly
	for !expired() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !expired() {
		t.Fatal("the order did not expire without traffic")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	var kinds []engine.CommandKind
	if err := store.Replay(t.Context(), 1, 100, func(c *engine.Command) error {
		kinds = append(kinds, c.Kind)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 2 || kinds[1] != engine.CmdClock {
		t.Fatalf("journal holds %v, want the order then one clock command", kinds)
	}
}
