package engine_test

import (
	"runtime"
	"testing"

	"github.com/matchd/matchd/engine"
)

// allocHarness applies commands with a reusable event buffer.
type allocHarness struct {
	e   *engine.Engine
	seq engine.Seq
	ref engine.ClientRef
	out []engine.Event
}

func (h *allocHarness) apply(c engine.Command) []engine.Event {
	h.seq++
	h.ref++
	c.Seq, c.Time = h.seq, int64(h.seq)
	if c.Kind == engine.CmdNewOrder || c.Kind == engine.CmdReplace {
		c.Ref = h.ref
	}
	h.out = h.e.Apply(&c, h.out[:0])
	return h.out
}

func (h *allocHarness) limit(acct engine.AccountID, s engine.Side, p engine.Price, q engine.Qty, tif engine.TimeInForce) engine.OrderID {
	out := h.apply(engine.Command{Kind: engine.CmdNewOrder, Account: acct, Instrument: 1,
		Side: s, Type: engine.Limit, TIF: tif, Price: p, Qty: q})
	return out[0].OrderID
}

// TestApplyDoesNotAllocate checks that resting, matching, canceling and
// replacing allocate nothing once the free lists and the btree are warm.
func TestApplyDoesNotAllocate(t *testing.T) {
	e, err := engine.New(engine.Config{Instruments: []engine.Instrument{{ID: 1, Symbol: "X"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &allocHarness{e: e, out: make([]engine.Event, 0, 1024)}
	// Warm up: create and drop levels and orders across the price range used.
	for round := 0; round < 3; round++ {
		var ids []engine.OrderID
		for p := engine.Price(900); p < 1100; p++ {
			side := engine.Buy
			if p >= 1000 {
				side = engine.Sell
			}
			for k := 0; k < 5; k++ {
				ids = append(ids, h.limit(engine.AccountID(1+k), side, p, 10, engine.GTC))
			}
		}
		for _, id := range ids {
			h.apply(engine.Command{Kind: engine.CmdCancel, Account: 0, OrderID: id})
			o, ok := e.Order(id)
			if ok {
				h.apply(engine.Command{Kind: engine.CmdCancel, Account: o.Account, OrderID: id})
			}
		}
	}
	// A standing book to work against.
	for p := engine.Price(950); p < 1000; p++ {
		h.limit(1, engine.Buy, p, 1000, engine.GTC)
		h.limit(2, engine.Sell, p+51, 1000, engine.GTC)
	}

	cases := []struct {
		name string
		f    func()
	}{
		{"rest-and-cancel", func() {
			id := h.limit(3, engine.Buy, 960, 5, engine.GTC)
			h.apply(engine.Command{Kind: engine.CmdCancel, Account: 3, OrderID: id})
		}},
		{"rest-new-level-and-cancel", func() {
			id := h.limit(3, engine.Sell, 1000, 5, engine.GTC)
			h.apply(engine.Command{Kind: engine.CmdCancel, Account: 3, OrderID: id})
		}},
		{"match", func() {
			h.limit(4, engine.Sell, 1000, 3, engine.GTC)
			h.limit(5, engine.Buy, 1000, 3, engine.IOC)
		}},
		{"market-sweep", func() {
			h.limit(4, engine.Sell, 1000, 1, engine.GTC)
			h.limit(4, engine.Sell, 1000, 1, engine.GTC)
			h.apply(engine.Command{Kind: engine.CmdNewOrder, Account: 5, Instrument: 1,
				Side: engine.Buy, Type: engine.Market, TIF: engine.IOC, Qty: 2})
		}},
		{"fok", func() {
			h.limit(4, engine.Sell, 1000, 2, engine.GTC)
			h.limit(5, engine.Buy, 1000, 2, engine.FOK)
		}},
		{"replace-all-kinds", func() {
			id := h.limit(6, engine.Buy, 970, 5, engine.GTC)
			h.apply(engine.Command{Kind: engine.CmdReplace, Account: 6, OrderID: id, Qty: 3})
			h.apply(engine.Command{Kind: engine.CmdReplace, Account: 6, OrderID: id, Qty: 8})
			h.apply(engine.Command{Kind: engine.CmdReplace, Account: 6, OrderID: id, Price: 971})
			h.apply(engine.Command{Kind: engine.CmdCancel, Account: 6, OrderID: id})
		}},
		{"self-trade", func() {
			h.limit(7, engine.Sell, 1000, 2, engine.GTC)
			h.limit(7, engine.Buy, 1000, 2, engine.GTC)
			h.apply(engine.Command{Kind: engine.CmdMassCancel, Account: 7})
		}},
		{"reject", func() {
			h.apply(engine.Command{Kind: engine.CmdCancel, Account: 7, OrderID: 1})
		}},
	}
	// Each case leaves the book as it found it, so repeating it is a steady
	// state: any allocation is a real one, not growth.
	for _, tc := range cases {
		tc.f() // warm this path
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
		}
		// AllocsPerRun rounds down, so also count exactly. The malloc counter
		// is process-wide and the runtime's own goroutines occasionally bump
		// it; a path that allocates does so in every window, so take the
		// quietest of three.
		n := min(totalAllocs(1000, tc.f), totalAllocs(1000, tc.f), totalAllocs(1000, tc.f))
		if n != 0 {
			t.Errorf("%s: %d allocations in 1000 runs, want 0", tc.name, n)
		}
	}
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if e.OpenOrderCount() != 100 {
		t.Fatalf("cases changed the book: %d open orders, want 100", e.OpenOrderCount())
	}
}

func totalAllocs(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}
