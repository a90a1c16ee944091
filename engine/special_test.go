package engine_test

import (
	"math"
	"testing"

	"github.com/matchd/matchd/engine"
)

// TestStopCascadeBound parks more stops than one command may trigger and
// checks that the rest trigger, in order, at the next command, with
// NextWake asking for it at once, and that a snapshot in between changes
// nothing.
func TestStopCascadeBound(t *testing.T) {
	cfg := engine.Config{Instruments: []engine.Instrument{{ID: 1, Symbol: "X", StartPrice: 100}}}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	seq := engine.Seq(0)
	apply := func(c engine.Command) []engine.Event {
		seq++
		c.Seq, c.Time = seq, int64(seq)*1000
		return e.Apply(&c, nil)
	}
	const stops = engine.MaxStopCascade + 500
	// Enough liquidity at 101 for every stop, from account 1.
	apply(engine.Command{Kind: engine.CmdNewOrder, Account: 1, Instrument: 1, Side: engine.Sell, Type: engine.Limit,
		TIF: engine.GTC, Price: 101, Qty: stops + 1, Ref: 1})
	for i := range stops {
		ev := apply(engine.Command{Kind: engine.CmdNewOrder, Account: engine.AccountID(10 + i%50), Instrument: 1,
			Side: engine.Buy, Type: engine.Stop, TIF: engine.IOC, StopPrice: 101, Qty: 1, Ref: engine.ClientRef(1 + i/50),
			Session: engine.SessionID(i % 3)})
		if ev[0].Kind != engine.EvAccepted {
			t.Fatalf("stop %d: %s", i, ev[0].Describe())
		}
	}
	count := func(evs []engine.Event) (n int, first, last engine.OrderID) {
		for _, ev := range evs {
			if ev.Kind == engine.EvTriggered {
				if n == 0 {
					first = ev.OrderID
				}
				last = ev.OrderID
				n++
			}
		}
		return
	}
	evs := apply(engine.Command{Kind: engine.CmdNewOrder, Account: 2, Instrument: 1, Side: engine.Buy, Type: engine.Limit,
		TIF: engine.IOC, Price: 101, Qty: 1, Ref: 1})
	n, first, last := count(evs)
	if n != engine.MaxStopCascade || first != 2 || last != engine.OrderID(1+engine.MaxStopCascade) {
		t.Fatalf("first command triggered %d stops (%d..%d), want %d from 2", n, first, last, engine.MaxStopCascade)
	}
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if w := e.NextWake(); w != int64(seq)*1000 {
		t.Fatalf("NextWake %d after a cut cascade, want the engine's time %d", w, int64(seq)*1000)
	}
	r, err := engine.Restore(e.Snapshot(nil))
	if err != nil {
		t.Fatal(err)
	}
	if r.StateHash() != e.StateHash() || r.NextWake() != e.NextWake() {
		t.Fatal("restored engine differs")
	}
	e = r
	evs = apply(engine.Command{Kind: engine.CmdClock})
	n, first, last = count(evs)
	if n != stops-engine.MaxStopCascade || first != engine.OrderID(2+engine.MaxStopCascade) || last != engine.OrderID(1+stops) {
		t.Fatalf("the clock triggered %d stops (%d..%d), want the other %d", n, first, last, stops-engine.MaxStopCascade)
	}
	if w := e.NextWake(); w != math.MaxInt64 {
		t.Fatalf("NextWake %d with nothing due", w)
	}
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
