// Package workload generates the reproducible command streams used by the
// engine, pipeline and journal benchmarks and by tests.
//
// Generation runs the commands through a real engine once, so that cancels
// name orders that are really open at that point. Replaying the same
// commands on a fresh engine built from the returned Config reproduces the
// same state, so benchmarks can time the replay alone.
package workload

import (
	"math/rand/v2"

	"github.com/matchd/matchd/engine"
)

// Instrument is the single instrument of the workloads.
const Instrument engine.InstrumentID = 1

// Config returns the engine configuration the workloads run on: one
// instrument, a 10% band around 100,000 ticks, generous limits, room
// reserved for reserve open orders. The generators return it with the
// reservation set to the workload's peak of open orders.
func Config(reserve int) engine.Config {
	return engine.Config{
		Instruments: []engine.Instrument{{
			ID: Instrument, Symbol: "BENCH", TickSize: "0.01", LotSize: "1",
			BandBps: 1000, StartPrice: 100_000, MaxOpenPerAccount: 1 << 30,
		}},
		ReserveOrders: reserve,
	}
}

// live tracks the open orders, with O(1) removal and uniform choice.
type live struct {
	ids   []engine.OrderID
	owner []engine.AccountID
	pos   map[engine.OrderID]int
}

func (l *live) add(id engine.OrderID, a engine.AccountID) {
	l.pos[id] = len(l.ids)
	l.ids = append(l.ids, id)
	l.owner = append(l.owner, a)
}

func (l *live) remove(id engine.OrderID) {
	i, ok := l.pos[id]
	if !ok {
		return
	}
	last := len(l.ids) - 1
	l.ids[i], l.owner[i] = l.ids[last], l.owner[last]
	l.pos[l.ids[i]] = i
	l.ids, l.owner = l.ids[:last], l.owner[:last]
	delete(l.pos, id)
}

// track updates the live set from one command's events.
func (l *live) track(e *engine.Engine, out []engine.Event) {
	for i := range out {
		ev := &out[i]
		switch ev.Kind {
		case engine.EvAccepted:
			if _, ok := e.Order(ev.OrderID); ok {
				l.add(ev.OrderID, ev.Account)
			}
		case engine.EvFill:
			if ev.MakerLeaves == 0 {
				l.remove(ev.MakerOrder)
			}
		case engine.EvCanceled:
			l.remove(ev.OrderID)
		}
	}
}

// recorder applies generated commands to an engine, stamping sequence, time
// and per-account client refs.
type recorder struct {
	e    *engine.Engine
	cmds []engine.Command
	refs map[engine.AccountID]engine.ClientRef
	live live
	out  []engine.Event
	peak int // most open orders at once
}

func newRecorder(cfg engine.Config, n int) *recorder {
	e, err := engine.New(cfg)
	if err != nil {
		panic(err) // the workload configs are constants
	}
	return &recorder{
		e: e, cmds: make([]engine.Command, 0, n), refs: map[engine.AccountID]engine.ClientRef{},
		live: live{pos: map[engine.OrderID]int{}},
	}
}

func (r *recorder) add(c engine.Command) {
	c.Seq = engine.Seq(len(r.cmds) + 1)
	c.Time = int64(c.Seq) * 1000
	if c.Kind == engine.CmdNewOrder || c.Kind == engine.CmdReplace {
		r.refs[c.Account]++
		c.Ref = r.refs[c.Account]
	}
	r.out = r.e.Apply(&c, r.out[:0])
	r.live.track(r.e, r.out)
	r.cmds = append(r.cmds, c)
	r.peak = max(r.peak, len(r.live.ids))
}

// Accounts is the number of accounts the workloads spread orders over.
const Accounts = 100

// A returns workload A: n commands (the benchmark uses 1,000,000) from
// seed. The mid starts at 100,000 ticks and moves one tick up or down every
// 100 commands; 60% are passive limit orders at mid ± U[1,50] ticks (buys
// below, sells above) for U[1,100] lots; 30% cancel a uniformly chosen open
// order; 10% are aggressive, half market orders and half IOC limits at
// mid ± 60, for U[1,100] lots.
func A(seed uint64, n int) (engine.Config, []engine.Command) {
	cfg := Config(0)
	r := newRecorder(cfg, n)
	rng := rand.New(rand.NewPCG(seed, 0xa))
	mid := engine.Price(100_000)
	for i := 0; i < n; i++ {
		if i > 0 && i%100 == 0 {
			mid += engine.Price(2*rng.IntN(2) - 1)
		}
		side := engine.Side(1 + rng.IntN(2))
		acct := engine.AccountID(1 + rng.IntN(Accounts))
		qty := engine.Qty(1 + rng.IntN(100))
		p := rng.IntN(100)
		switch {
		case p < 30 && len(r.live.ids) > 0:
			k := rng.IntN(len(r.live.ids))
			r.add(engine.Command{Kind: engine.CmdCancel, Account: r.live.owner[k], OrderID: r.live.ids[k]})
		case p >= 90:
			c := engine.Command{Kind: engine.CmdNewOrder, Account: acct, Instrument: Instrument,
				Side: side, Qty: qty, TIF: engine.IOC}
			if rng.IntN(2) == 0 {
				c.Type = engine.Market
			} else {
				c.Type = engine.Limit
				c.Price = mid + 60
				if side == engine.Sell {
					c.Price = mid - 60
				}
			}
			r.add(c)
		default:
			off := engine.Price(1 + rng.IntN(50))
			price := mid - off
			if side == engine.Sell {
				price = mid + off
			}
			r.add(engine.Command{Kind: engine.CmdNewOrder, Account: acct, Instrument: Instrument,
				Side: side, Type: engine.Limit, TIF: engine.GTC, Price: price, Qty: qty})
		}
	}
	cfg.ReserveOrders = r.peak + 1 // the incoming order needs one more
	return cfg, r.cmds
}

// B returns workload B: inserts non-crossing limit orders spread evenly
// over 1,000 levels (bids 99,500–99,999, asks 100,001–100,500), then
// cancels them all in random order: 2*inserts commands.
func B(seed uint64, inserts int) (engine.Config, []engine.Command) {
	cfg := Config(0)
	r := newRecorder(cfg, 2*inserts)
	rng := rand.New(rand.NewPCG(seed, 0xb))
	for i := 0; i < inserts; i++ {
		lvl := engine.Price(i % 1000)
		c := engine.Command{Kind: engine.CmdNewOrder, Account: engine.AccountID(1 + rng.IntN(Accounts)),
			Instrument: Instrument, Type: engine.Limit, TIF: engine.GTC, Qty: engine.Qty(1 + rng.IntN(100))}
		if lvl < 500 {
			c.Side, c.Price = engine.Buy, 99_500+lvl
		} else {
			c.Side, c.Price = engine.Sell, 100_001+lvl-500
		}
		r.add(c)
	}
	ids := append([]engine.OrderID(nil), r.live.ids...)
	owners := append([]engine.AccountID(nil), r.live.owner...)
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i]; owners[i], owners[j] = owners[j], owners[i] })
	for i, id := range ids {
		r.add(engine.Command{Kind: engine.CmdCancel, Account: owners[i], OrderID: id})
	}
	cfg.ReserveOrders = r.peak + 1 // the incoming order needs one more
	return cfg, r.cmds
}

// C returns workload C, deep sweeps: resting limit orders spread evenly
// over levels levels a side (perLevel each, U[1,100] lots; bids 99,999
// down, asks 100,001 up), then sweeps aggressive IOC limit orders, each
// on a random side, priced at the level 5 to 50 levels deep and sized to
// take exactly those levels whole; after each sweep every price it
// emptied is replenished with one resting order of the quantity it had,
// so the book keeps its shape. The benchmark uses 20,000 levels, 5 a
// level (200 k resting) and 100 k sweeps. The instrument has no price
// band, so no order is refused for its distance from the last trade.
func C(seed uint64, levels, perLevel, sweeps int) (engine.Config, []engine.Command) {
	cfg := Config(0)
	cfg.Instruments[0].BandBps, cfg.Instruments[0].StartPrice = 0, 0
	r := newRecorder(cfg, 2*levels*perLevel+sweeps*29)
	rng := rand.New(rand.NewPCG(seed, 0xc))
	acct := func() engine.AccountID { return engine.AccountID(1 + rng.IntN(Accounts)) }
	for l := 0; l < levels; l++ {
		for k := 0; k < perLevel; k++ {
			for _, side := range []engine.Side{engine.Buy, engine.Sell} {
				price := 100_001 + engine.Price(l)
				if side == engine.Buy {
					price = 99_999 - engine.Price(l)
				}
				r.add(engine.Command{Kind: engine.CmdNewOrder, Account: acct(), Instrument: Instrument, Side: side,
					Type: engine.Limit, TIF: engine.GTC, Price: price, Qty: engine.Qty(1 + rng.IntN(100))})
			}
		}
	}
	var depth []engine.LevelInfo
	for i := 0; i < sweeps; i++ {
		side := engine.Side(1 + rng.IntN(2))
		resting := engine.Sell // a buy sweeps the asks
		if side == engine.Sell {
			resting = engine.Buy
		}
		depth = r.e.Depth(Instrument, resting, 5+rng.IntN(46), depth[:0])
		if len(depth) == 0 {
			continue
		}
		var qty engine.Qty
		for _, l := range depth {
			qty += l.Qty
		}
		// Stay away from one's own orders: the sweeping account is one no
		// resting order belongs to.
		r.add(engine.Command{Kind: engine.CmdNewOrder, Account: Accounts + 1, Instrument: Instrument, Side: side,
			Type: engine.Limit, TIF: engine.IOC, Price: depth[len(depth)-1].Price, Qty: qty})
		for _, l := range depth {
			r.add(engine.Command{Kind: engine.CmdNewOrder, Account: acct(), Instrument: Instrument, Side: resting,
				Type: engine.Limit, TIF: engine.GTC, Price: l.Price, Qty: l.Qty})
		}
	}
	cfg.ReserveOrders = r.peak + 1
	return cfg, r.cmds
}
