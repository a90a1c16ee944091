package api

import (
	"math/bits"
	"slices"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/pipeline"
)

// This file keeps what orders became — open, filled or canceled, found by
// order id or by (session, reference) — and each account's latest fills,
// for the OrderStatus and Executions queries. Like the streams, it is
// derived from the journal's events: the release stage applies each
// durable batch, and at start the node's replay rebuilds it (Observe).
//
// It is on the release stage's path for every order, so it uses no map
// there: the engine numbers orders 1, 2, 3…, so the latest orders live in
// a ring indexed by order id; an order older than the ring that is still
// open is asked of the engine (a QueryOrder through the pipeline) instead
// (keeping such orders in a map cost 3 % of the server under the TCP
// benchmark, which leaves many orders resting); references increase per
// session, so each session's (reference, order) pairs form a sorted list
// searched by bisection.

// keptFills is how many of its latest fills each account's history
// keeps.
const keptFills = 1000

// histOrder is one order's status.
type histOrder struct {
	acct engine.AccountID
	st   wire.OrderStatus // Request is unused
}

// refEntry finds an order by its session's reference.
type refEntry struct {
	ref engine.ClientRef
	id  engine.OrderID
}

// acctFills is a ring of an account's latest fills.
type acctFills struct {
	fills []wire.Fill
	next  int
}

// history is every account's (under Server.mu).
type history struct {
	ring  []histOrder // by order id & mask
	mask  engine.OrderID
	strm  *streams // whose streams hold each named session's references
	keep  int      // reference entries kept per session
	fills map[engine.AccountID]*acctFills
	last  *stream // the stream addRef used last
}

// newHistory keeps at least keep orders (rounded up to a power of two)
// and each session's latest keepRefs references.
func newHistory(keep, keepRefs int, strm *streams) history {
	n := 1 << bits.Len(uint(max(keep, 2)-1))
	return history{ring: make([]histOrder, n), mask: engine.OrderID(n - 1),
		strm: strm, keep: max(keepRefs, 1), fills: map[engine.AccountID]*acctFills{}}
}

// find returns where order id's status is, or nil.
func (h *history) find(id engine.OrderID) *histOrder {
	if o := &h.ring[id&h.mask]; o.st.OrderID == id && id != 0 {
		return o
	}
	return nil
}

// apply takes one command's events.
func (h *history) apply(c *engine.Command, evs []engine.Event) {
	for j := range evs {
		ev := &evs[j]
		switch ev.Kind {
		case engine.EvAccepted:
			slot := &h.ring[ev.OrderID&h.mask]
			*slot = histOrder{acct: ev.Account, st: wire.OrderStatus{Found: true, OrderID: ev.OrderID,
				Session: wire.NameOf(c.Session), Ref: ev.Ref, Instrument: ev.Instrument, Side: ev.Side,
				State: wire.OrderOpen, Price: ev.Price, Qty: ev.Qty, Leaves: ev.Qty, Seq: ev.Seq, Time: ev.Time}}
			h.addRef(streamKey{ev.Account, c.Session}, ev.Ref, ev.OrderID)
		case engine.EvFill:
			h.fill(ev.Account, ev.OrderID, ev.Leaves, ev, wire.LiquidityRemoved)
			h.fill(ev.MakerAccount, ev.MakerOrder, ev.MakerLeaves, ev, wire.LiquidityAdded)
		case engine.EvCanceled:
			if o := h.find(ev.OrderID); o != nil {
				o.st.Leaves, o.st.State = 0, wire.OrderCanceled
				if ev.Reason == uint8(engine.CancelReplaced) {
					o.st.Ref = ev.Ref
				}
				h.stamp(o, ev)
			}
		case engine.EvReplaced:
			if o := h.find(ev.OrderID); o != nil {
				o.st.Price, o.st.Qty, o.st.Leaves, o.st.Ref = ev.Price, ev.Qty, ev.Leaves, ev.Ref
				h.addRef(streamKey{o.acct, o.st.Session.ID()}, ev.Ref, ev.OrderID)
				h.stamp(o, ev)
			}
		}
	}
}

// addRef records an order's (new) reference in its named session's
// list (the unnamed session's references are shared by its connections:
// not findable by reference).
func (h *history) addRef(k streamKey, ref engine.ClientRef, id engine.OrderID) {
	if k.name == 0 {
		return
	}
	st := h.last
	if st == nil || st.key != k {
		st = h.strm.get(k, true)
		h.last = st
	}
	if n := len(st.refs); n > 0 && st.refs[n-1].ref >= ref {
		return
	}
	st.refs = append(st.refs, refEntry{ref, id})
	if len(st.refs) > h.keep+h.keep/4 {
		st.refs = append(st.refs[:0], st.refs[len(st.refs)-h.keep:]...)
	}
}

// stamp records the command that last changed an order.
func (h *history) stamp(o *histOrder, ev *engine.Event) {
	o.st.Seq, o.st.Time = ev.Seq, ev.Time
}

func (h *history) fill(a engine.AccountID, id engine.OrderID, leaves engine.Qty, ev *engine.Event, liq uint8) {
	var sess wire.SessionName
	if o := h.find(id); o != nil {
		o.st.Filled += ev.Qty
		o.st.Leaves = leaves
		if leaves == 0 {
			o.st.State = wire.OrderFilled
		}
		sess = o.st.Session
		h.stamp(o, ev)
	}
	af := h.fills[a]
	if af == nil {
		af = &acctFills{}
		h.fills[a] = af
	}
	f := wire.Fill{Trade: ev.TradeID, OrderID: id, Session: sess, Instrument: ev.Instrument, Side: ev.Side,
		Liquidity: liq, Price: ev.Price, Qty: ev.Qty, Seq: ev.Seq, Time: ev.Time}
	if liq == wire.LiquidityAdded {
		f.Side = 3 - ev.Side // the maker's side
	}
	if len(af.fills) < keptFills {
		af.fills = append(af.fills, f)
	} else {
		af.fills[af.next] = f
	}
	af.next = (af.next + 1) % keptFills
}

// status finds an order of account a by id, or (id 0) by the session and
// reference. When the ring no longer holds the order it returns the id to
// ask the engine about (it may still be open).
func (h *history) status(a engine.AccountID, id engine.OrderID, sess engine.SessionID, ref engine.ClientRef) (wire.OrderStatus, engine.OrderID) {
	if id == 0 {
		st := h.strm.get(streamKey{a, sess}, false)
		if st == nil {
			return wire.OrderStatus{}, 0
		}
		l := st.refs
		i, ok := slices.BinarySearchFunc(l, ref, func(e refEntry, r engine.ClientRef) int {
			switch {
			case e.ref < r:
				return -1
			case e.ref > r:
				return 1
			}
			return 0
		})
		if !ok {
			return wire.OrderStatus{}, 0
		}
		id = l[i].id
	}
	o := h.find(id)
	switch {
	case o == nil:
		return wire.OrderStatus{}, id
	case o.acct != a:
		return wire.OrderStatus{}, 0
	}
	return o.st, 0
}

// recentFills appends account a's latest n fills, newest first.
func (h *history) recentFills(a engine.AccountID, n int, out []wire.Fill) []wire.Fill {
	af := h.fills[a]
	if af == nil {
		return out
	}
	for i := 1; i <= min(n, len(af.fills)); i++ {
		out = append(out, af.fills[(af.next-i+len(af.fills))%len(af.fills)])
	}
	return out
}

// statusMark in Query.From marks a QueryOrder asked for an OrderStatus
// answer (an order older than the history's ring: the engine says
// whether it is still open).
const statusMark = 1

// answerHistory answers an order status or executions query from the
// history: everything sent to sessions so far (each command's outcome is
// in it once its answers are out). For an order the history no longer
// holds it returns the engine query to ask instead.
func (s *Server) answerHistory(ss *session, q *wire.Query) (pipeline.Request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// What Deliver has not handed over yet goes first, so the answer never
	// overtakes the messages it describes.
	s.feed.flush()
	s.flush()
	var f []byte
	switch q.Kind {
	case wire.QueryOrderStatus, wire.QueryOrderByRef:
		var st wire.OrderStatus
		var ask engine.OrderID
		if q.Kind == wire.QueryOrderStatus {
			st, ask = s.hist.status(ss.acct, q.OrderID, 0, 0)
		} else {
			st, ask = s.hist.status(ss.acct, 0, ss.name, engine.ClientRef(q.OrderID))
		}
		if ask != 0 {
			return pipeline.Request{Token: uint64(newRoute(ss.id, q.Request)), Query: pipeline.Query{
				Kind: pipeline.QueryOrder, Account: ss.acct, OrderID: ask, From: statusMark}}, true
		}
		st.Request = q.Request
		f = st.Append(nil)
	case wire.QueryExecutions:
		n := int(q.Levels)
		if n == 0 {
			n = 100
		}
		s.fills = s.hist.recentFills(ss.acct, n, s.fills[:0])
		f = (&wire.Fills{Request: q.Request}).Append(nil, s.fills)
	}
	ss.send(f)
	return pipeline.Request{}, false
}

// openStatus is the OrderStatus of an order the engine says is open (or
// not found, for nil or another account's).
func openStatus(req uint32, o *engine.OrderInfo, acct engine.AccountID) wire.OrderStatus {
	if o == nil || o.Account != acct {
		return wire.OrderStatus{Request: req}
	}
	return wire.OrderStatus{Request: req, Found: true, OrderID: o.ID, Session: wire.NameOf(o.Session), Ref: o.Ref,
		Instrument: o.Instrument, Side: o.Side, State: wire.OrderOpen, Price: o.Price, Qty: o.Leaves + o.Filled,
		Filled: o.Filled, Leaves: o.Leaves, Time: o.Time}
}
