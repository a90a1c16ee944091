package persist

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/matchd/matchd/engine"
)

// replayConfig has an instrument with volatility interruptions and one
// with a daily schedule, and an operator.
func replayConfig() engine.Config {
	hour := int64(3600e9)
	return engine.Config{
		Instruments: []engine.Instrument{
			{ID: 1, Symbol: "VOL", StartPrice: 1000, BandBps: 500, VolatilityBps: 100, VolatilityAuction: 5000},
			{ID: 2, Symbol: "SCHED", StartPrice: 1000, AuctionAt: hour, OpenAt: 2 * hour, CloseAt: 22 * hour},
		},
		Accounts: []engine.AccountDefaults{{ID: 9, Operator: true}},
	}
}

// replayScript returns n commands using every order type, expiry, phase
// changes and clock commands, with hours passing now and then.
func replayScript(seed uint64, n int) []engine.Command {
	r := rand.New(rand.NewPCG(seed, 1))
	refs := map[engine.AccountID]engine.ClientRef{}
	var out []engine.Command
	t := int64(0)
	for i := range n {
		t += 10
		if r.IntN(2000) == 0 {
			t += int64(1+r.IntN(6)) * 3600e9
		}
		c := engine.Command{Seq: engine.Seq(i + 1), Time: t, Account: engine.AccountID(1 + r.IntN(5))}
		inst := engine.InstrumentID(1 + r.IntN(2))
		switch k := r.IntN(100); {
		case k < 70:
			refs[c.Account]++
			c.Kind, c.Ref, c.Instrument = engine.CmdNewOrder, refs[c.Account], inst
			c.Side = engine.Side(1 + r.IntN(2))
			c.Type, c.TIF, c.Qty = engine.Limit, engine.GTC, engine.Qty(1+r.IntN(10))
			off := engine.Price(r.IntN(20) - 5)
			c.Price = 1000 - off
			if c.Side == engine.Sell {
				c.Price = 1000 + off
			}
			switch r.IntN(8) {
			case 0:
				c.TIF, c.Expire = engine.GTD, t+int64(1+r.IntN(2000))
			case 1:
				c.TIF = engine.Day
			case 2:
				c.Display = engine.Qty(1 + r.IntN(int(c.Qty)))
			case 3:
				c.Type, c.TIF, c.Price = engine.Stop, engine.IOC, 0
				c.StopPrice = 1000 + engine.Price(r.IntN(10)+1)
				if c.Side == engine.Sell {
					c.StopPrice = 1000 - engine.Price(r.IntN(10)+1)
				}
			case 4:
				c.TIF = engine.IOC
			}
		case k < 85:
			c.Kind, c.OrderID = engine.CmdCancel, engine.OrderID(1+r.IntN(i+1))
		case k < 92:
			c.Kind = engine.CmdClock
			t += int64(r.IntN(3000))
			c.Time = t
		default:
			c.Kind, c.Account, c.Instrument = engine.CmdPhase, 9, inst
			c.Action = engine.PhaseAction(1 + r.IntN(5))
		}
		out = append(out, c)
	}
	return out
}

// TestReplayWithExpiriesAndAuctions journals a script with expiries,
// stops, icebergs, auctions and volatility interruptions in a real Pebble
// store, recovers it, and demands the same state hash and, command by
// command, the same events as the engine that ran it live.
func TestReplayWithExpiriesAndAuctions(t *testing.T) {
	cfg := replayConfig()
	cmds := replayScript(7, 30_000)
	live, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := Open(dir, cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var want [][]engine.Event
	kinds := map[engine.EventKind]int{}
	cancels := map[engine.CancelReason]int{}
	for i := 0; i < len(cmds); i += 100 {
		batch := cmds[i:min(i+100, len(cmds))]
		for j := range batch {
			evs := live.Apply(&batch[j], nil)
			want = append(want, evs)
			for _, ev := range evs {
				kinds[ev.Kind]++
				if ev.Kind == engine.EvCanceled {
					cancels[engine.CancelReason(ev.Reason)]++
				}
			}
		}
		if err := st.Write(batch); err != nil {
			t.Fatal(err)
		}
		if err := st.Sync(); err != nil {
			t.Fatal(err)
		}
		if i == 10_000 {
			if err := st.SnapshotEngine(live); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, k := range []engine.EventKind{engine.EvTriggered, engine.EvPhase, engine.EvIndicative} {
		if kinds[k] == 0 {
			t.Fatalf("the script produced no %s events: %v", k, kinds)
		}
	}
	if cancels[engine.CancelExpired] == 0 {
		t.Fatalf("the script expired nothing: %v", cancels)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = Open(dir, cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	replayed := 0
	e, stats, err := st.RecoverWith(RecoverOptions{FromOldest: true, Observe: func(c *engine.Command, evs []engine.Event) {
		replayed++
		if got := want[c.Seq-1]; !slices.Equal(got, evs) {
			t.Fatalf("command %d (%s): replay gave %d events, live %d", c.Seq, c.Describe(), len(evs), len(got))
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if replayed == 0 || e.LastSeq() != engine.Seq(len(cmds)) {
		t.Fatalf("replayed %d commands to seq %d (stats %+v)", replayed, e.LastSeq(), stats)
	}
	if e.StateHash() != live.StateHash() {
		t.Fatal("recovered state hash differs from the live engine's")
	}
	t.Logf("%d commands, %d replayed; events %v; cancels %v", len(cmds), replayed, kinds, cancels)
}
