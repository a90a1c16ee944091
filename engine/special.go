package engine

import (
	"cmp"
	"math"
	"slices"

	"github.com/tidwall/btree"
)

// This file holds the order types beyond plain limit and market orders:
// parked stops and their triggering, iceberg slices, and expiry.

// MaxStopCascade bounds the stops one command triggers (over all
// instruments). Stops still triggered when it is reached stay parked and
// trigger, in the same order, at the start of the next command; NextWake
// then asks for a CmdClock at once.
const MaxStopCascade = 1000

// expKey orders expiring orders by expiry, then order ID.
type expKey struct {
	at int64
	id OrderID
	o  *order
}

func expLess(a, b expKey) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.id < b.id
}

func newExpiries() *btree.BTreeG[expKey] {
	return btree.NewBTreeGOptions(expLess, btree.Options{NoLocks: true})
}

// noWake is NextWake's answer when nothing is due.
const noWake = math.MaxInt64

// allocExt gives o an orderExt, zeroed.
func (e *Engine) allocExt(o *order) *orderExt {
	if o.ext == 0 {
		if n := len(e.extFree); n > 0 {
			o.ext = e.extFree[n-1]
			e.extFree = e.extFree[:n-1]
		} else {
			e.exts = append(e.exts, orderExt{})
			o.ext = int32(len(e.exts))
		}
		e.exts[o.ext-1] = orderExt{}
	}
	return &e.exts[o.ext-1]
}

// extOf returns o's orderExt, or nil for a plain order.
func (e *Engine) extOf(o *order) *orderExt {
	if o.ext == 0 {
		return nil
	}
	return &e.exts[o.ext-1]
}

// hidden returns o's iceberg reserve.
func (e *Engine) hidden(o *order) Qty {
	if o.ext == 0 {
		return 0
	}
	return e.exts[o.ext-1].hidden
}

// leaves returns o's whole open quantity: shown and hidden.
func (e *Engine) leaves(o *order) Qty { return o.qty + e.hidden(o) }

// parked reports whether o is a stop waiting for its trigger.
func (e *Engine) parked(o *order) bool {
	return o.level == nil && o.ext != 0 && e.exts[o.ext-1].stop != 0
}

// rests reports whether an order with this TIF rests on the book.
func rests(t TimeInForce) bool { return t == GTC || t == PostOnly || t == GTD || t == Day }

// stopTree returns the parked stops of side s.
func (b *book) stopTree(s Side) *btree.BTreeG[stopKey] {
	if s == Buy {
		return b.stops[0]
	}
	return b.stops[1]
}

func stopKeyOf(o *order, x *orderExt) stopKey {
	k := x.stop
	if o.side == Sell {
		k = -k
	}
	return stopKey{key: k, arrival: x.arrival, o: o}
}

// park puts a stop among its book's parked stops, behind those of its
// trigger price that came before it.
func (e *Engine) park(b *book, o *order) {
	x := e.extOf(o)
	e.arrivals++
	x.arrival = e.arrivals
	b.stopTree(o.side).Set(stopKeyOf(o, x))
	b.parked++
}

func (e *Engine) unpark(o *order) {
	b := e.books[o.bookIdx]
	b.stopTree(o.side).Delete(stopKeyOf(o, e.extOf(o)))
	b.parked--
}

// stopReached reports whether the last trade price ref has reached a stop
// on side s at price stop.
func stopReached(s Side, stop, ref Price) bool {
	if s == Buy {
		return ref >= stop
	}
	return ref <= stop
}

// nextTriggered returns the first parked stop the last trade price has
// reached: buys (lowest stop first) before sells (highest first), each in
// arrival order within a price.
func (e *Engine) nextTriggered(b *book) *order {
	for _, s := range [2]Side{Buy, Sell} {
		if k, ok := b.stopTree(s).Min(); ok && stopReached(s, e.exts[k.o.ext-1].stop, b.refPrice) {
			return k.o
		}
	}
	return nil
}

// triggerStops triggers, one at a time, every parked stop of b that the
// last trade price has reached, including those the triggered stops'
// own trades reach. It runs only in continuous trading.
func (e *Engine) triggerStops(b *book) {
	if e.triggering || b.parked == 0 {
		return // the running loop picks up what this order's trades reached
	}
	e.triggering = true
	if e.trigEpoch != e.epoch { // the first trigger run of this command
		e.trigEpoch, e.triggered = e.epoch, 0
	}
	for b.phase == PhaseContinuous {
		o := e.nextTriggered(b)
		if o == nil {
			break
		}
		if e.triggered == MaxStopCascade {
			b.cascade = true
			e.wake = min(e.wake, e.now)
			break
		}
		e.triggered++
		e.trigger(b, o)
	}
	e.triggering = false
}

// trigger turns the parked stop o into a market or limit order and enters
// it, keeping its ID and place among its account's orders.
func (e *Engine) trigger(b *book, o *order) {
	e.touch(b)
	e.unpark(o)
	e.exts[o.ext-1].stop = 0
	if o.typ == Stop {
		o.typ = Market
		o.price = b.protection(o.side)
	} else {
		o.typ = Limit
	}
	o.time = e.time
	ev := e.event(EvTriggered)
	ev.Side, ev.Instrument, ev.Account, ev.OrderID, ev.Ref = o.side, b.inst.ID, e.accts[o.acct].id, o.id, o.ref
	ev.Price, ev.Qty, ev.Leaves = o.eventPrice(), e.leaves(o), e.leaves(o)
	ev.Session, ev.SessSeq = e.to(o.sess)
	e.consolidate(o)
	e.enter(b, o, true)
}

// consolidate moves an iceberg's reserve into its shown quantity, for an
// order about to match as a taker.
func (e *Engine) consolidate(o *order) {
	if x := e.extOf(o); x != nil && x.hidden != 0 {
		o.qty += x.hidden
		x.hidden = 0
	}
}

// enter matches the incoming order o (in continuous trading), then rests
// what is left or cancels it as its TIF says, then triggers the stops its
// trades reached. indexed says o is already among the open orders (a
// triggered stop, a replaced order).
func (e *Engine) enter(b *book, o *order, indexed bool) {
	if b.phase == PhaseContinuous {
		e.match(b, o)
	}
	switch {
	case o.qty == 0:
		if indexed {
			e.removeOpen(o)
		}
		e.freeOrder(o)
	case o.tif == GTC || rests(o.tif):
		if o.ext != 0 {
			e.rest(b, o)
		} else {
			e.addToLevel(b.sideOf(o.side), o)
		}
		if !indexed {
			e.addOpen(o)
		}
	default:
		e.cancelRemainder(o, CancelUnfilled, o.sess)
		if indexed {
			e.removeOpen(o)
		}
		e.freeOrder(o)
	}
	if b.parked != 0 && b.phase == PhaseContinuous {
		e.triggerStops(b)
	}
}

// rest puts o on the book: an iceberg shows one slice and keeps the rest
// hidden.
func (e *Engine) rest(b *book, o *order) {
	if x := e.extOf(o); x != nil && x.display != 0 && o.qty > x.display {
		x.hidden += o.qty - x.display
		o.qty = x.display
	}
	e.addToLevel(b.sideOf(o.side), o)
}

// replenish shows the next slice of an iceberg whose shown quantity has
// traded away, at the back of its level: a new slice has no time priority.
func (e *Engine) replenish(m *order) {
	x := &e.exts[m.ext-1]
	slice := min(x.display, x.hidden)
	x.hidden -= slice
	l := m.level
	l.hidden -= slice
	l.qty += slice
	m.qty = slice
	m.time = e.time
	if l.tail == m {
		return
	}
	if m.prev != nil {
		m.prev.next = m.next
	} else {
		l.head = m.next
	}
	m.next.prev = m.prev
	m.prev, m.next = l.tail, nil
	l.tail.next = m
	l.tail = m
}

// drained handles a resting order after a trade: one with nothing shown
// either shows its next iceberg slice or leaves the book.
func (e *Engine) drained(m *order) {
	if m.qty != 0 {
		return
	}
	if m.ext != 0 && e.exts[m.ext-1].hidden > 0 {
		e.replenish(m)
		return
	}
	e.retire(m)
}

// runTimers does what is due by the engine's time: expiries (by expiry,
// then order ID), then per instrument in configuration order the end of a
// volatility interruption, the schedule, and a stop cascade the bound cut
// short. It then works out the next wake.
func (e *Engine) runTimers() {
	for {
		k, ok := e.expiries.Min()
		if !ok || k.at > e.now {
			break
		}
		e.touch(e.books[k.o.bookIdx])
		e.cancelResting(k.o, CancelExpired, k.o.sess)
	}
	for _, b := range e.books {
		if b.phase == PhaseVolatility && b.phaseEnd <= e.now {
			e.uncross(b, -1)
		}
		if b.nextSched != 0 && b.nextSched <= e.now {
			e.schedule(b)
		}
		if b.cascade {
			b.cascade = false
			e.triggerStops(b)
		}
	}
	e.computeWake()
}

// computeWake sets wake to the earliest time something is due.
func (e *Engine) computeWake() {
	e.wake = noWake
	if k, ok := e.expiries.Min(); ok {
		e.wake = k.at
	}
	for _, b := range e.books {
		if b.phase == PhaseVolatility {
			e.wake = min(e.wake, b.phaseEnd)
		}
		if b.nextSched != 0 {
			e.wake = min(e.wake, b.nextSched)
		}
		if b.cascade {
			e.wake = min(e.wake, e.now)
		}
	}
}

// NextWake returns the engine time at which something is due (an expiry,
// the end of a volatility interruption, a scheduled phase change, a
// leftover stop cascade), or math.MaxInt64 if nothing is. The pipeline
// sends a CmdClock when its clock passes it.
func (e *Engine) NextWake() int64 { return e.wake }

// expireDay cancels b's Day orders, parked stops included, in order ID
// order.
func (e *Engine) expireDay(b *book) {
	day := e.scratch[:0]
	collect := func(o *order) {
		if o.tif == Day {
			day = append(day, o)
		}
	}
	for _, s := range []*bookSide{&b.bids, &b.asks} {
		s.scan(func(l *level) bool {
			for o := l.head; o != nil; o = o.next {
				collect(o)
			}
			return true
		})
	}
	for _, t := range b.stops {
		t.Scan(func(k stopKey) bool { collect(k.o); return true })
	}
	slices.SortFunc(day, func(a, b *order) int { return cmp.Compare(a.id, b.id) })
	for _, o := range day {
		e.cancelResting(o, CancelExpired, o.sess)
	}
	clear(day)
	e.scratch = day[:0]
}
