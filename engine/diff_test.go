package engine_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/matchd/matchd/engine"
)

var (
	diffCommands = flag.Int("diff.commands", envInt("MATCH_DIFF_COMMANDS", 1_000_000),
		"commands in the differential test (env MATCH_DIFF_COMMANDS); 100000000 for the long run")
	diffSeed = flag.Uint64("diff.seed", uint64(envInt("MATCH_DIFF_SEED", 0)),
		"seed of the differential test (env MATCH_DIFF_SEED); 0 picks one from the clock")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// diffConfig exercises every feature: a banded instrument with volatility
// interruptions, an unbanded one, one with a daily schedule, small
// open-order limits, accounts with each self-trade default, and an
// operator.
func diffConfig() engine.Config {
	hour := int64(3600e9)
	return engine.Config{
		Instruments: []engine.Instrument{
			{ID: 1, Symbol: "BAND", BandBps: 300, StartPrice: 1000, MaxQty: 40, MaxOpenPerAccount: 25,
				VolatilityBps: 150, VolatilityAuction: 3000},
			{ID: 7, Symbol: "FREE", MaxQty: 50, MaxOpenPerAccount: 30},
			{ID: 3, Symbol: "SCHED", StartPrice: 1000, MaxQty: 40, MaxOpenPerAccount: 25,
				AuctionAt: 1 * hour, OpenAt: 2 * hour, CloseAt: 22 * hour},
		},
		Accounts: []engine.AccountDefaults{
			{ID: 2, STP: engine.STPCancelIncoming},
			{ID: 3, STP: engine.STPCancelBoth},
			{ID: 9, Operator: true},
		},
	}
}

// gen produces random commands, mostly valid and aimed at live orders, with
// a sprinkling of every kind of bad input.
type gen struct {
	r    *rand.Rand
	seq  engine.Seq
	time int64
	refs map[refSess]engine.ClientRef
	mid  map[engine.InstrumentID]engine.Price
}

func newGen(seed uint64) *gen {
	return &gen{
		r:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		refs: map[refSess]engine.ClientRef{},
		mid:  map[engine.InstrumentID]engine.Price{1: 1000, 7: 1000, 3: 1000},
	}
}

func (g *gen) pick(weights ...int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := g.r.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

// next returns a command; m is the model, for the open orders, prices and
// phases.
func (g *gen) next(m *refModel) engine.Command {
	live := m.orders
	g.seq++
	g.time += 10
	if g.r.IntN(3000) == 0 {
		g.time += int64(1+g.r.IntN(8)) * 3600e9 // hours pass: the schedule moves on
	}
	c := engine.Command{Seq: g.seq, Time: g.time, Account: engine.AccountID(1 + g.r.IntN(4))}
	c.Session = engine.SessionID(g.r.IntN(3)) // a few sessions per account
	if g.r.IntN(100) == 0 {
		c.Account = engine.AccountID(100 + g.r.IntN(2)) // occasional new accounts
		// with many sessions: past MaxSessionsPerAccount
		c.Session = engine.SessionID(g.r.IntN(engine.MaxSessionsPerAccount + 8))
	}
	ref := func() engine.ClientRef {
		k := refSess{c.Account, c.Session}
		if g.r.IntN(100) == 0 {
			return g.refs[k] - engine.ClientRef(g.r.IntN(2)) // stale or duplicate
		}
		g.refs[k] += engine.ClientRef(1 + g.r.IntN(3))
		return g.refs[k]
	}
	insts := []engine.InstrumentID{1, 7, 3}
	inst := insts[g.r.IntN(3)]
	if g.r.IntN(50) == 0 {
		// A random walk kept within 900..1100, so that long runs stay as
		// busy as short ones (unbounded, it wanders to prices that are all
		// rejected).
		g.mid[inst] = min(max(g.mid[inst]+engine.Price(g.r.IntN(11)-5), 900), 1100)
	}
	target := func() engine.OrderID {
		if len(live) == 0 || g.r.IntN(20) == 0 {
			return engine.OrderID(g.r.IntN(int(g.seq) + 2))
		}
		o := live[g.r.IntN(len(live))]
		if g.r.IntN(10) != 0 {
			c.Account = o.acct // mostly the owner
			if g.r.IntN(4) != 0 {
				c.Session = o.sess // mostly the session that entered it
			}
		}
		return o.id
	}
	last := m.insts[inst].ref
	stopPrice := func(s engine.Side) engine.Price {
		off := engine.Price(1 + g.r.IntN(15))
		if g.r.IntN(15) == 0 {
			off = -engine.Price(g.r.IntN(3)) // already reached
		}
		if s == engine.Buy {
			return last + off
		}
		return last - off
	}
	switch g.pick(560, 120, 140, 4, 6, 8, 4) {
	case 0: // new order
		c.Kind = engine.CmdNewOrder
		c.Instrument = inst
		c.Side = engine.Side(1 + g.r.IntN(2))
		c.Type = engine.Limit
		c.TIF = engine.GTC
		switch g.pick(50, 8, 8, 8, 8, 5, 5, 4, 5) {
		case 1:
			c.TIF = engine.IOC
		case 2:
			c.TIF = engine.FOK
		case 3:
			c.TIF = engine.PostOnly
		case 4:
			c.Type = engine.Market
			c.TIF = []engine.TimeInForce{engine.IOC, engine.FOK}[g.r.IntN(2)]
		case 5:
			c.TIF = engine.GTD
		case 6:
			c.TIF = engine.Day
		case 7:
			c.Type = engine.Stop
			c.TIF = engine.IOC
			if g.r.IntN(20) == 0 {
				c.TIF = engine.GTC
			}
			c.StopPrice = stopPrice(c.Side)
		case 8:
			c.Type = engine.StopLimit
			c.TIF = []engine.TimeInForce{engine.GTC, engine.IOC, engine.GTD, engine.Day}[g.r.IntN(4)]
			c.StopPrice = stopPrice(c.Side)
		}
		if c.TIF == engine.GTD {
			c.Expire = g.time + int64(1+g.r.IntN(3000))
			if g.r.IntN(20) == 0 {
				c.Expire = g.time - int64(g.r.IntN(2)*10) // not after the engine's time
			}
		} else if g.r.IntN(300) == 0 {
			c.Expire = g.time + 100 // an expiry on another TIF
		}
		off := engine.Price(g.r.IntN(25))
		if g.r.IntN(4) == 0 {
			off = -off // crosses
		}
		if c.Side == engine.Buy {
			c.Price = g.mid[inst] - off
		} else {
			c.Price = g.mid[inst] + off
		}
		if g.r.IntN(30) == 0 {
			c.Price += engine.Price(g.r.IntN(120) - 60) // out of band
		}
		c.Qty = engine.Qty(1 + g.r.IntN(20))
		if g.r.IntN(40) == 0 {
			c.Qty = engine.Qty(g.r.IntN(60) - 5) // zero, negative, over max
		}
		if c.Type == engine.Market || c.Type == engine.Stop {
			c.Price = 0
			if g.r.IntN(100) == 0 {
				c.Price = last // a price on an order that takes none
			}
		}
		if g.r.IntN(8) == 0 {
			c.Display = engine.Qty(1 + g.r.IntN(max(int(c.Qty), 1)))
			if g.r.IntN(15) == 0 {
				c.Display = c.Qty + engine.Qty(1+g.r.IntN(3)) // over the quantity
			}
		}
		if c.Type != engine.Stop && c.Type != engine.StopLimit && g.r.IntN(300) == 0 {
			c.StopPrice = stopPrice(c.Side) // a stop price on an order that takes none
		}
		if g.r.IntN(3) == 0 {
			c.STP = engine.STPMode(1 + g.r.IntN(3))
		}
		if g.r.IntN(200) == 0 {
			switch g.r.IntN(5) {
			case 0:
				c.Side = engine.Side(g.r.IntN(4) * 3)
			case 1:
				c.Type = engine.OrderType(5 + g.r.IntN(3))
			case 2:
				c.TIF = engine.TimeInForce(g.r.IntN(8))
			case 3:
				c.STP = engine.STPMode(4 + g.r.IntN(3))
			case 4:
				c.Instrument = engine.InstrumentID(g.r.IntN(10))
			}
		}
		if g.r.IntN(100) == 0 {
			c.Price = engine.Price(-g.r.IntN(2))
		}
		c.Ref = ref()
	case 1: // cancel
		c.Kind = engine.CmdCancel
		c.OrderID = target()
	case 2: // replace
		c.Kind = engine.CmdReplace
		c.OrderID = target()
		var cur *refOrder
		for _, o := range live {
			if o.id == c.OrderID {
				cur = o
			}
		}
		switch {
		case cur == nil:
			c.Price = engine.Price(900 + g.r.IntN(200))
		case g.r.IntN(2) == 0:
			c.Qty = max(1, cur.qty+cur.filled+engine.Qty(g.r.IntN(9)-5)) // same price: up or down
			if g.r.IntN(8) == 0 {
				c.Qty = cur.filled - engine.Qty(g.r.IntN(2)) // at or below filled
			}
		default:
			c.Price = cur.price + engine.Price(g.r.IntN(21)-10)
			if g.r.IntN(2) == 0 {
				c.Qty = engine.Qty(1 + g.r.IntN(20))
			}
		}
		if g.r.IntN(100) == 0 {
			c.Qty = -1
		}
		if cur != nil && g.r.IntN(8) == 0 {
			c.Display = engine.Qty(1 + g.r.IntN(int(cur.leaves()+cur.filled)))
			if g.r.IntN(10) == 0 {
				c.Display = -1
			}
		}
		if cur != nil && (cur.parked && g.r.IntN(3) == 0 || g.r.IntN(100) == 0) {
			ri := m.insts[cur.inst]
			off := engine.Price(1 + g.r.IntN(15))
			if g.r.IntN(10) == 0 {
				off = -off
			}
			if cur.side == engine.Buy {
				c.StopPrice = ri.ref + off
			} else {
				c.StopPrice = ri.ref - off
			}
			if cur.typ == engine.Stop {
				c.Price = 0
			}
		}
		c.Ref = ref()
	case 3:
		c.Kind = engine.CmdMassCancel
		if g.r.IntN(2) == 0 {
			c.Instrument = inst
		}
		c.SessionOnly = g.r.IntN(2) == 0
		if g.r.IntN(20) == 0 {
			c.Instrument = 99
		}
	case 4:
		c.Kind = engine.CommandKind(7 + g.r.IntN(3))
	case 5: // the pipeline's clock: time passes
		c.Kind = engine.CmdClock
		g.time += int64(g.r.IntN(5000))
		c.Time = g.time
	case 6: // an operator's phase change, mostly back to continuous
		c.Kind = engine.CmdPhase
		c.Account = 9
		if g.r.IntN(20) == 0 {
			c.Account = engine.AccountID(1 + g.r.IntN(4)) // not an operator
		}
		c.Instrument = inst
		if g.r.IntN(50) == 0 {
			c.Instrument = 99
		}
		switch ph := m.insts[inst].phase; {
		case ph == engine.PhaseHalted:
			c.Action = engine.ActResume
		case ph == engine.PhaseClosed && inst != 3:
			c.Action = engine.ActOpenAuction
		case ph == engine.PhaseAuction || ph == engine.PhaseVolatility:
			c.Action = engine.ActUncross
		case g.r.IntN(3) == 0:
			c.Action = []engine.PhaseAction{engine.ActHalt, engine.ActOpenAuction, engine.ActClose}[g.r.IntN(3)]
		default:
			c.Action = engine.PhaseAction(g.r.IntN(7)) // mostly not allowed now
		}
	}
	return c
}

func eventsEqual(a, b []engine.Event) bool { return slices.Equal(a, b) }

// TestDifferential runs the engine and the reference model side by side on
// random commands and demands identical events, checks invariants and state
// regularly, and swaps the engine for one restored from a snapshot at random
// points.
func TestDifferential(t *testing.T) {
	n := *diffCommands
	if testing.Short() {
		n = min(n, 100_000)
	}
	seed := *diffSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -diff.seed=%d), %d commands", seed, seed, n)
	runDifferential(t, seed, n)
}

func runDifferential(t *testing.T, seed uint64, n int) {
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format, append([]any{seed}, args...)...)
	}
	cfg := diffConfig()
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := newRefModel(cfg)
	g := newGen(seed)
	var out []engine.Event
	var history []engine.Command // since the last restore, for failure reports
	nextSnap := 1 + g.r.IntN(50_000)
	kinds := map[engine.EventKind]int{}
	rejects := map[engine.RejectReason]int{}
	cancels := map[engine.CancelReason]int{}
	maxOpen, sumOpen := 0, 0
	for i := range n {
		c := g.next(m)
		history = append(history, c)
		out = e.Apply(&c, out[:0])
		want := m.Apply(&c)
		if !eventsEqual(out, want) {
			msg := fmt.Sprintf("command %d: %s\n", i, c.Describe())
			for _, ev := range out {
				msg += "  engine: " + ev.Describe() + "\n"
			}
			for _, ev := range want {
				msg += "  model:  " + ev.Describe() + "\n"
			}
			if len(out) == len(want) {
				for j := range out {
					if out[j] != want[j] {
						msg += fmt.Sprintf("  first difference at %d:\n  engine %+v\n  model  %+v\n", j, out[j], want[j])
						break
					}
				}
			}
			fail("%s", msg)
		}
		for _, ev := range out {
			kinds[ev.Kind]++
			switch ev.Kind {
			case engine.EvRejected:
				rejects[engine.RejectReason(ev.Reason)]++
			case engine.EvCanceled:
				cancels[engine.CancelReason(ev.Reason)]++
			}
		}
		maxOpen = max(maxOpen, len(m.orders))
		sumOpen += len(m.orders)
		if i%1000 == 0 || i == n-1 {
			if err := e.CheckInvariants(); err != nil {
				fail("after command %d (%s): %v", i, c.Describe(), err)
			}
			compareState(t, seed, e, m)
		}
		if i == nextSnap {
			data := e.Snapshot(nil)
			r, err := engine.Restore(data)
			if err != nil {
				fail("restore at command %d: %v", i, err)
			}
			if r.StateHash() != e.StateHash() {
				fail("state hash differs after restore at command %d", i)
			}
			e = r
			history = history[:0]
			nextSnap = i + 1 + g.r.IntN(100_000)
		}
	}
	for k := engine.EvAccepted; k <= engine.EvIndicative; k++ {
		if kinds[k] == 0 && n >= 10_000 {
			t.Errorf("seed %d: no %s events: the generator does not cover them", seed, k)
		}
	}
	if n >= 100_000 {
		for r := engine.RejectUnknownCommand; r <= engine.RejectBadPhaseAction; r++ {
			if rejects[r] == 0 {
				t.Errorf("seed %d: no %s rejects: the generator does not cover them", seed, r)
			}
		}
		for r := engine.CancelUser; r <= engine.CancelExpired; r++ {
			if cancels[r] == 0 {
				t.Errorf("seed %d: no %s cancels: the generator does not cover them", seed, r)
			}
		}
	}
	t.Logf("events by kind: %v", kinds)
	t.Logf("rejects: %v", rejects)
	t.Logf("cancels: %v", cancels)
	t.Logf("open orders: max %d, mean %.1f", maxOpen, float64(sumOpen)/float64(max(n, 1)))
}

// compareState checks the engine's queries against the model.
func compareState(t *testing.T, seed uint64, e *engine.Engine, m *refModel) {
	t.Helper()
	for _, id := range m.instOrder {
		got, _ := e.Top(id)
		if want := m.top(id); got != want {
			t.Fatalf("seed %d: instrument %d top %+v, model %+v", seed, id, got, want)
		}
		in, _ := e.Instrument(id)
		ri := m.insts[id]
		if in.Phase != ri.phase || in.RefPrice != ri.ref || in.IndicativePrice != ri.ind.price || in.IndicativeQty != ri.ind.qty {
			t.Fatalf("seed %d: instrument %d is %s at %d (indicative %d@%d), model %s at %d (%d@%d)", seed, id,
				in.Phase, in.RefPrice, in.IndicativeQty, in.IndicativePrice, ri.phase, ri.ref, ri.ind.qty, ri.ind.price)
		}
	}
	if e.OpenOrderCount() != len(m.orders) {
		t.Fatalf("seed %d: %d open orders, model %d", seed, e.OpenOrderCount(), len(m.orders))
	}
	for _, o := range m.orders {
		got, ok := e.Order(o.id)
		want := engine.OrderInfo{ID: o.id, Account: o.acct, Instrument: o.inst, Side: o.side, TIF: o.tif,
			Type: o.typ, Price: o.price, StopPrice: o.stop, Display: o.display, Expire: o.expire,
			Leaves: o.leaves(), Filled: o.filled, Ref: o.ref, Time: o.time, Session: o.sess}
		if !ok || got != want {
			t.Fatalf("seed %d: order %d is %+v, model %+v", seed, o.id, got, want)
		}
	}
}
