package engine

import (
	"errors"
	"fmt"
)

// CheckInvariants walks the whole state and reports every broken invariant:
// a book crossed at rest, a level whose total or count disagrees with its
// orders, a FIFO out of arrival order, a cached best level that is not the
// best, a top of book other than the one last published, an order index
// or account list that disagrees with the books. It is
// for tests and debugging: it costs time proportional to the state.
func (e *Engine) CheckInvariants() error {
	var errs []error
	bad := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf("engine: invariant: "+format, args...))
		}
	}
	resting, auctions := 0, int32(0)
	perAcct := map[*account][]int32{}
	for _, b := range e.books {
		if t := b.top(); t != b.published {
			bad("%s: top of book %+v, last published %+v", b.inst.Symbol, t, b.published)
		}
		if b.topDirty {
			bad("%s: top of book marked changed between commands", b.inst.Symbol)
		}
		for _, s := range []*bookSide{&b.bids, &b.asks} {
			var prev, prevLive *level
			empties, inTree := 0, 0
			s.levels.Scan(func(k Price, l *level) bool {
				if k != s.key(l.price) {
					bad("%s side %d: level %d under key %d", b.inst.Symbol, s.side, l.price, k)
				}
				if prev != nil && !s.better(prev.price, l.price) {
					bad("%s side %d: levels out of order", b.inst.Symbol, s.side)
				}
				if id := s.byPrice.find(l.price); id != l.id+1 {
					bad("%s side %d: level %d found by price as level #%d", b.inst.Symbol, s.side, l.price, id-1)
				}
				inTree++
				if l.better != prev || prev != nil && prev.worse != l {
					bad("%s side %d: level %d not linked to its better neighbour", b.inst.Symbol, s.side, l.price)
				}
				prev = l
				if l.count == 0 {
					empties++
					if l.qty != 0 || l.hidden != 0 || l.head != nil || l.tail != nil || l.gen == 0 {
						bad("%s side %d: empty level %d kept with qty %d, hidden %d, gen %d", b.inst.Symbol, s.side, l.price, l.qty, l.hidden, l.gen)
					}
					return true
				}
				if l.gen != 0 {
					bad("%s side %d: level %d in use still marked empty", b.inst.Symbol, s.side, l.price)
				}
				if prevLive == nil && s.best != l {
					bad("%s side %d: cached best is not the best level %d", b.inst.Symbol, s.side, l.price)
				}
				prevLive = l
				var sum, hidden Qty
				var n int32
				var last *order
				for o := l.head; o != nil; o = o.next {
					if o.prev != last {
						bad("order %d: broken back link", o.id)
					}
					if o.level != l || o.price != l.price || o.side != s.side || e.books[o.bookIdx] != b {
						bad("order %d: does not belong at %s %d", o.id, b.inst.Symbol, l.price)
					}
					if o.qty <= 0 {
						bad("order %d: resting with quantity %d", o.id, o.qty)
					}
					if last != nil && (last.time > o.time) {
						bad("order %d: queued after later order %d", last.id, o.id)
					}
					if e.orders.get(o.id) != o {
						bad("order %d: resting but not indexed", o.id)
					}
					if int(o.acct) >= len(e.accts) {
						bad("order %d: account index %d out of range", o.id, o.acct)
						continue
					}
					a := e.accts[o.acct]
					if perAcct[a] == nil {
						perAcct[a] = make([]int32, len(e.books))
					}
					perAcct[a][b.idx]++
					sum += o.qty
					hidden += e.hidden(o)
					if x := e.extOf(o); x != nil && (x.stop != 0 || x.hidden < 0 || x.hidden > 0 && x.display == 0) {
						bad("order %d: resting with stop %d, hidden %d, display %d", o.id, x.stop, x.hidden, x.display)
					}
					n++
					resting++
					last = o
				}
				if l.tail != last {
					bad("level %d: tail is not the last order", l.price)
				}
				if hidden != l.hidden {
					bad("%s level %d: hidden %d, orders hide %d", b.inst.Symbol, l.price, l.hidden, hidden)
				}
				if sum != l.qty || n != l.count {
					bad("%s level %d: qty %d count %d, orders sum to %d in %d", b.inst.Symbol, l.price, l.qty, l.count, sum, n)
				}
				return true
			})
			if inTree != s.byPrice.n {
				bad("%s side %d: %d levels in the tree, %d by price", b.inst.Symbol, s.side, inTree, s.byPrice.n)
			}
			if s.last != prev || prev != nil && prev.worse != nil {
				bad("%s side %d: last level not linked as the last", b.inst.Symbol, s.side)
			}
			if prevLive == nil && s.best != nil {
				bad("%s side %d: best level set on an empty side", b.inst.Symbol, s.side)
			}
			if empties > emptyKeep {
				bad("%s side %d: %d empty levels kept, at most %d", b.inst.Symbol, s.side, empties, emptyKeep)
			}
		}
		if bb, ba := b.bids.best, b.asks.best; bb != nil && ba != nil && bb.price >= ba.price && b.phase == PhaseContinuous {
			bad("%s: crossed at rest in continuous trading: bid %d >= ask %d", b.inst.Symbol, bb.price, ba.price)
		}
		for i, t := range b.stops {
			side := []Side{Buy, Sell}[i]
			t.Scan(func(k stopKey) bool {
				o := k.o
				x := e.extOf(o)
				switch {
				case x == nil || x.stop == 0 || o.level != nil || o.side != side || e.books[o.bookIdx] != b:
					bad("order %d: among %s's stops but not a parked stop of that side", o.id, b.inst.Symbol)
					return true
				case k != stopKeyOf(o, x):
					bad("order %d: parked under a stale key", o.id)
				case o.typ != Stop && o.typ != StopLimit:
					bad("order %d: parked with type %s", o.id, o.typ)
				case e.orders.get(o.id) != o:
					bad("order %d: parked but not indexed", o.id)
				case b.phase == PhaseContinuous && !b.cascade && stopReached(side, x.stop, b.refPrice):
					bad("order %d: parked at stop %d though the last price is %d", o.id, x.stop, b.refPrice)
				}
				a := e.accts[o.acct]
				if perAcct[a] == nil {
					perAcct[a] = make([]int32, len(e.books))
				}
				perAcct[a][b.idx]++
				resting++
				return true
			})
		}
		if int(b.parked) != b.stops[0].Len()+b.stops[1].Len() {
			bad("%s: %d stops counted, %d parked", b.inst.Symbol, b.parked, b.stops[0].Len()+b.stops[1].Len())
		}
		if b.auction() {
			auctions++
		}
		if b.phase == PhaseVolatility && b.phaseEnd == 0 || b.phase != PhaseVolatility && b.phaseEnd != 0 {
			bad("%s: phase %s with end %d", b.inst.Symbol, b.phase, b.phaseEnd)
		}
	}
	if auctions != e.auctions {
		bad("%d books in auctions, %d counted", auctions, e.auctions)
	}
	if e.orders.len() != resting {
		bad("index holds %d orders, books %d", e.orders.len(), resting)
	}
	listed, expiring := 0, 0
	for i, a := range e.accts {
		if a.idx != int32(i) || e.lookupAccount(a.id) != a {
			bad("account %d: not findable by ID", a.id)
		}
		var last *order
		counts := make([]int32, len(e.books))
		for o := a.head; o != nil; o = o.anext {
			if o.aprev != last || o.acct != a.idx {
				bad("account %d: broken order list at order %d", a.id, o.id)
				break
			}
			if o.level == nil && !e.parked(o) {
				bad("account %d: order %d listed but not resting or parked", a.id, o.id)
			}
			if x := e.extOf(o); x != nil && x.expire != 0 {
				if _, ok := e.expiries.Get(expKey{at: x.expire, id: o.id}); !ok {
					bad("order %d: expires at %d but is not among the expiries", o.id, x.expire)
				}
				expiring++
			}
			counts[o.bookIdx]++
			last = o
			listed++
		}
		if a.tail != last {
			bad("account %d: tail is not the last order", a.id)
		}
		want := perAcct[a]
		for i := range counts {
			w := int32(0)
			if want != nil {
				w = want[i]
			}
			if counts[i] != w || a.open[i] != w {
				bad("account %d instrument #%d: open count %d, listed %d, resting %d", a.id, i, a.open[i], counts[i], w)
			}
		}
	}
	if listed != resting {
		bad("accounts list %d orders, books %d", listed, resting)
	}
	if e.expiries.Len() != expiring {
		bad("%d expiries kept, %d open orders expire", e.expiries.Len(), expiring)
	}
	if k, ok := e.expiries.Min(); ok && k.at <= e.now {
		bad("order %d expired at %d, still open at %d", k.id, k.at, e.now)
	}
	return errors.Join(errs...)
}
