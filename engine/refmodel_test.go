package engine_test

import (
	"slices"

	. "github.com/matchd/matchd/engine" //nolint:staticcheck // the model reads like the spec
)

// refModel is a deliberately naive order book: every open order in one slice
// in arrival order, linear scans, a sort per match. It shares no code with
// the engine; the differential test demands identical events from both.
type refModel struct {
	insts      map[InstrumentID]*refInst
	instOrder  []InstrumentID
	orders     []*refOrder           // open orders, in order of ID
	lastRef    map[refSess]ClientRef // per session
	msgs       map[refSess]uint64    // messages numbered per session
	sessions   map[AccountID]int     // sessions seen per account
	feed       map[InstrumentID]uint64
	acctSTP    map[AccountID]STPMode
	defaultSTP STPMode
	nextOrder  OrderID
	nextTrade  TradeID
	prio       int64
}

// refSess names one session of one account.
type refSess struct {
	acct AccountID
	sess SessionID
}

type refInst struct {
	spec Instrument
	ref  Price
}

type refOrder struct {
	id     OrderID
	acct   AccountID
	sess   SessionID
	inst   InstrumentID
	side   Side
	tif    TimeInForce
	stp    STPMode
	ref    ClientRef
	price  Price
	qty    Qty
	filled Qty
	prio   int64 // smaller is earlier in the queue
	time   int64
}

func newRefModel(cfg Config) *refModel {
	cfg.Instruments = slices.Clone(cfg.Instruments)
	cfg.Accounts = slices.Clone(cfg.Accounts)
	cfg.EnsureDefaults()
	m := &refModel{
		insts:      map[InstrumentID]*refInst{},
		lastRef:    map[refSess]ClientRef{},
		msgs:       map[refSess]uint64{},
		sessions:   map[AccountID]int{},
		feed:       map[InstrumentID]uint64{},
		acctSTP:    map[AccountID]STPMode{},
		defaultSTP: cfg.DefaultSTP,
	}
	for _, in := range cfg.Instruments {
		m.insts[in.ID] = &refInst{spec: in, ref: in.StartPrice}
		m.instOrder = append(m.instOrder, in.ID)
	}
	for _, a := range cfg.Accounts {
		m.acctSTP[a.ID] = a.STP
	}
	return m
}

func (m *refModel) stpOf(a AccountID) STPMode {
	if s, ok := m.acctSTP[a]; ok {
		return s
	}
	return m.defaultSTP
}

func (m *refModel) find(id OrderID) *refOrder {
	for _, o := range m.orders {
		if o.id == id {
			return o
		}
	}
	return nil
}

func (m *refModel) remove(o *refOrder) {
	m.orders = slices.DeleteFunc(m.orders, func(x *refOrder) bool { return x == o })
}

func (m *refModel) openCount(a AccountID, inst InstrumentID) int {
	n := 0
	for _, o := range m.orders {
		if o.acct == a && o.inst == inst {
			n++
		}
	}
	return n
}

func (m *refModel) top(inst InstrumentID) TopOfBook {
	var t TopOfBook
	for _, o := range m.orders {
		if o.inst != inst {
			continue
		}
		if o.side == Buy && o.price > t.BidPrice {
			t.BidPrice = o.price
		}
		if o.side == Sell && (t.AskPrice == 0 || o.price < t.AskPrice) {
			t.AskPrice = o.price
		}
	}
	for _, o := range m.orders {
		if o.inst == inst && o.side == Buy && o.price == t.BidPrice {
			t.BidQty += o.qty
		}
		if o.inst == inst && o.side == Sell && o.price == t.AskPrice {
			t.AskQty += o.qty
		}
	}
	return t
}

type refLevelKey struct {
	inst  InstrumentID
	side  Side
	price Price
}

type refLevel struct {
	qty    Qty
	orders int32
}

// levels aggregates every open order into its price level.
func (m *refModel) levels() map[refLevelKey]refLevel {
	out := map[refLevelKey]refLevel{}
	for _, o := range m.orders {
		k := refLevelKey{o.inst, o.side, o.price}
		l := out[k]
		l.qty += o.qty
		l.orders++
		out[k] = l
	}
	return out
}

// makers returns the resting orders a taker on side s could meet, best
// price first, then arrival.
func (m *refModel) makers(inst InstrumentID, s Side) []*refOrder {
	var out []*refOrder
	for _, o := range m.orders {
		if o.inst == inst && o.side != s {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *refOrder) int {
		if a.price != b.price {
			if (s == Buy) == (a.price < b.price) {
				return -1
			}
			return 1
		}
		return int(a.prio - b.prio)
	})
	return out
}

func canTrade(s Side, maker, limit Price) bool {
	if s == Buy {
		return maker <= limit
	}
	return maker >= limit
}

func (ri *refInst) band() (lo, hi Price, ok bool) {
	if ri.spec.BandBps == 0 || ri.ref == 0 {
		return 0, 0, false
	}
	w := ri.ref * Price(ri.spec.BandBps) / 10000
	return ri.ref - w, ri.ref + w, true
}

// refRun is the state of one command being applied.
type refRun struct {
	m       *refModel
	c       *Command
	out     []Event
	touched []InstrumentID
	before  map[InstrumentID]TopOfBook
	// The account's last reference before this command took its own, so
	// that a reject can put it back.
	prevRef  ClientRef
	refTaken bool
}

func (r *refRun) touch(inst InstrumentID) {
	if _, ok := r.before[inst]; !ok {
		r.before[inst] = r.m.top(inst)
		r.touched = append(r.touched, inst)
	}
}

func (r *refRun) emit(ev Event) {
	ev.Seq, ev.Time = r.c.Seq, r.c.Time
	r.out = append(r.out, ev)
}

// own returns the command's session.
func (r *refRun) own() refSess { return refSess{r.c.Account, r.c.Session} }

// tell emits ev as the next message of session to.
func (r *refRun) tell(to refSess, ev Event) {
	r.m.msgs[to]++
	ev.Session, ev.SessSeq = to.sess, r.m.msgs[to]
	r.emit(ev)
}

func (r *refRun) reject(reason RejectReason) {
	c := r.c
	if r.refTaken {
		r.m.lastRef[r.own()] = r.prevRef
	}
	r.tell(r.own(), Event{Kind: EvRejected, Reason: uint8(reason), Side: c.Side, Instrument: c.Instrument,
		Account: c.Account, OrderID: c.OrderID, Ref: c.Ref, Price: c.Price, Qty: c.Qty})
}

func (r *refRun) canceled(o *refOrder, reason CancelReason, price Price, to refSess) {
	r.tell(to, Event{Kind: EvCanceled, Reason: uint8(reason), Side: o.side, Instrument: o.inst,
		Account: o.acct, OrderID: o.id, Ref: o.ref, Price: price, Qty: o.qty})
}

func (o *refOrder) owner() refSess { return refSess{o.acct, o.sess} }

// Apply mirrors engine.Apply.
func (m *refModel) Apply(c *Command) []Event {
	r := &refRun{m: m, c: c, before: map[InstrumentID]TopOfBook{}}
	if _, ok := m.msgs[r.own()]; !ok {
		if m.sessions[c.Account] == MaxSessionsPerAccount {
			r.emit(Event{Kind: EvRejected, Reason: uint8(RejectTooManySessions), Side: c.Side, Instrument: c.Instrument,
				Account: c.Account, Session: c.Session, OrderID: c.OrderID, Ref: c.Ref, Price: c.Price, Qty: c.Qty})
			return r.out
		}
		m.sessions[c.Account]++
		m.msgs[r.own()] = 0
	}
	levelsBefore := m.levels()
	switch c.Kind {
	case CmdNewOrder:
		r.newOrder()
	case CmdCancel:
		r.cancel()
	case CmdReplace:
		r.replace()
	case CmdMassCancel:
		r.massCancel()
	default:
		r.reject(RejectUnknownCommand)
	}
	levelsAfter := m.levels()
	var changed []refLevelKey
	for k, v := range levelsAfter {
		if levelsBefore[k] != v {
			changed = append(changed, k)
		}
	}
	for k := range levelsBefore {
		if _, ok := levelsAfter[k]; !ok {
			changed = append(changed, k)
		}
	}
	slices.SortFunc(changed, func(a, b refLevelKey) int {
		if a.inst != b.inst {
			return int(a.inst) - int(b.inst)
		}
		if a.side != b.side {
			return int(a.side) - int(b.side)
		}
		return int(a.price - b.price)
	})
	for _, k := range changed {
		v := levelsAfter[k]
		m.feed[k.inst]++
		r.emit(Event{Kind: EvLevel, Instrument: k.inst, Side: k.side, Price: k.price, Qty: v.qty, Orders: v.orders,
			FeedSeq: m.feed[k.inst]})
	}
	for _, inst := range r.touched {
		if t := m.top(inst); t != r.before[inst] {
			r.emit(Event{Kind: EvTopOfBook, Instrument: inst, BidPrice: t.BidPrice, BidQty: t.BidQty,
				AskPrice: t.AskPrice, AskQty: t.AskQty})
		}
	}
	return r.out
}

func (r *refRun) newOrder() {
	m, c := r.m, r.c
	if c.Ref <= m.lastRef[r.own()] {
		r.reject(RejectStaleClientRef)
		return
	}
	// A rejected command does not use up its reference: reject puts the
	// last one back.
	r.prevRef, r.refTaken = m.lastRef[r.own()], true
	m.lastRef[r.own()] = c.Ref
	ri := m.insts[c.Instrument]
	switch {
	case ri == nil:
		r.reject(RejectUnknownInstrument)
		return
	case c.Side != Buy && c.Side != Sell:
		r.reject(RejectBadSide)
		return
	case c.Type != Limit && c.Type != Market:
		r.reject(RejectBadType)
		return
	case c.Type == Limit && !slices.Contains([]TimeInForce{GTC, IOC, FOK, PostOnly}, c.TIF),
		c.Type == Market && c.TIF != IOC && c.TIF != FOK:
		r.reject(RejectBadTimeInForce)
		return
	case c.STP > STPCancelBoth:
		r.reject(RejectBadSTP)
		return
	case c.Qty <= 0:
		r.reject(RejectBadQuantity)
		return
	case c.Qty > ri.spec.MaxQty:
		r.reject(RejectOverMaxQuantity)
		return
	}
	limit := c.Price
	if c.Type == Limit {
		if c.Price < 1 || c.Price > MaxPrice {
			r.reject(RejectBadPrice)
			return
		}
		if lo, hi, ok := ri.band(); ok && (c.Price < lo || c.Price > hi) {
			r.reject(RejectOutsidePriceBand)
			return
		}
		if (c.TIF == GTC || c.TIF == PostOnly) && m.openCount(c.Account, c.Instrument) >= int(ri.spec.MaxOpenPerAccount) {
			r.reject(RejectTooManyOpenOrders)
			return
		}
	} else {
		lo, hi, ok := ri.band()
		switch {
		case !ok && c.Side == Buy:
			limit = MaxPrice
		case !ok:
			limit = 1
		case c.Side == Buy:
			limit = hi
		default:
			limit = max(lo, 1)
		}
	}
	stp := c.STP
	if stp == STPDefault {
		stp = m.stpOf(c.Account)
	}
	makers := m.makers(c.Instrument, c.Side)
	if c.TIF == PostOnly && len(makers) > 0 && canTrade(c.Side, makers[0].price, limit) {
		r.reject(RejectWouldCross)
		return
	}
	if c.TIF == FOK {
		avail := Qty(0)
		for _, o := range makers {
			if !canTrade(c.Side, o.price, limit) {
				break
			}
			if o.acct == c.Account {
				if stp == STPCancelResting {
					continue
				}
				break
			}
			avail += o.qty
		}
		if avail < c.Qty {
			r.reject(RejectFOKUnfillable)
			return
		}
	}
	r.touch(c.Instrument)
	m.nextOrder++
	t := &refOrder{id: m.nextOrder, acct: c.Account, sess: c.Session, inst: c.Instrument, side: c.Side, tif: c.TIF,
		stp: stp, ref: c.Ref, price: limit, qty: c.Qty, time: c.Time}
	evPrice := c.Price
	if c.Type == Market {
		evPrice = 0
	}
	r.tell(r.own(), Event{Kind: EvAccepted, Side: c.Side, Instrument: c.Instrument, Account: c.Account,
		OrderID: t.id, Ref: t.ref, Price: evPrice, Qty: c.Qty, Leaves: c.Qty})
	r.match(t, makers, evPrice)
	switch {
	case t.qty == 0:
	case c.TIF == GTC || c.TIF == PostOnly:
		m.prio++
		t.prio = m.prio
		m.orders = append(m.orders, t) // the newest ID: the slice stays in ID order
	default:
		r.canceled(t, CancelUnfilled, evPrice, t.owner())
		t.qty = 0
	}
}

// match trades t against makers (sorted best first). t is not in m.orders.
func (r *refRun) match(t *refOrder, makers []*refOrder, evPrice Price) {
	m := r.m
	for _, mk := range makers {
		if t.qty == 0 || !canTrade(t.side, mk.price, t.price) {
			return
		}
		if mk.acct == t.acct {
			switch t.stp {
			case STPCancelIncoming:
				r.canceled(t, CancelSelfTrade, evPrice, t.owner())
				t.qty = 0
				return
			case STPCancelBoth:
				r.canceled(mk, CancelSelfTrade, mk.price, mk.owner())
				m.remove(mk)
				r.canceled(t, CancelSelfTrade, evPrice, t.owner())
				t.qty = 0
				return
			default:
				r.canceled(mk, CancelSelfTrade, mk.price, mk.owner())
				m.remove(mk)
				continue
			}
		}
		q := min(t.qty, mk.qty)
		t.qty -= q
		t.filled += q
		mk.qty -= q
		mk.filled += q
		m.insts[t.inst].ref = mk.price
		m.nextTrade++
		m.feed[t.inst]++
		m.msgs[t.owner()]++
		m.msgs[mk.owner()]++
		r.emit(Event{Kind: EvFill, Side: t.side, Instrument: t.inst, Account: t.acct, OrderID: t.id,
			Ref: t.ref, Price: mk.price, Qty: q, Leaves: t.qty, MakerAccount: mk.acct,
			MakerOrder: mk.id, MakerRef: mk.ref, MakerLeaves: mk.qty, TradeID: m.nextTrade,
			Session: t.sess, SessSeq: m.msgs[t.owner()], MakerSession: mk.sess, MakerSessSeq: m.msgs[mk.owner()],
			FeedSeq: m.feed[t.inst]})
		if mk.qty == 0 {
			m.remove(mk)
		}
	}
}

func (r *refRun) owned() *refOrder {
	o := r.m.find(r.c.OrderID)
	if o == nil {
		r.reject(RejectUnknownOrder)
		return nil
	}
	if o.acct != r.c.Account {
		r.reject(RejectNotOwner)
		return nil
	}
	return o
}

func (r *refRun) cancel() {
	if o := r.owned(); o != nil {
		r.touch(o.inst)
		r.canceled(o, CancelUser, o.price, r.own())
		r.m.remove(o)
	}
}

func (r *refRun) replace() {
	m, c := r.m, r.c
	if c.Ref <= m.lastRef[r.own()] {
		r.reject(RejectStaleClientRef)
		return
	}
	// A rejected command does not use up its reference: reject puts the
	// last one back.
	r.prevRef, r.refTaken = m.lastRef[r.own()], true
	m.lastRef[r.own()] = c.Ref
	o := r.owned()
	if o == nil {
		return
	}
	ri := m.insts[o.inst]
	price, total := o.price, o.qty+o.filled
	if c.Price != 0 {
		price = c.Price
	}
	if c.Qty != 0 {
		total = c.Qty
	}
	lo, hi, banded := ri.band()
	switch {
	case c.Price < 0 || price > MaxPrice:
		r.reject(RejectBadPrice)
		return
	case c.Qty < 0:
		r.reject(RejectBadQuantity)
		return
	case total > ri.spec.MaxQty:
		r.reject(RejectOverMaxQuantity)
		return
	case price != o.price && banded && (price < lo || price > hi):
		r.reject(RejectOutsidePriceBand)
		return
	}
	makers := m.makers(o.inst, o.side)
	if o.tif == PostOnly && len(makers) > 0 && canTrade(o.side, makers[0].price, price) {
		r.reject(RejectWouldCross)
		return
	}
	r.touch(o.inst)
	orig := o.ref
	o.ref = c.Ref
	if total <= o.filled {
		r.tell(r.own(), Event{Kind: EvCanceled, Reason: uint8(CancelReplaced), Side: o.side, Instrument: o.inst,
			Account: o.acct, OrderID: o.id, Ref: o.ref, OrigRef: orig, Price: o.price, Qty: o.qty})
		m.remove(o)
		return
	}
	leaves := total - o.filled
	r.tell(r.own(), Event{Kind: EvReplaced, Side: o.side, Instrument: o.inst, Account: o.acct, OrderID: o.id,
		Ref: o.ref, OrigRef: orig, Price: price, Qty: total, Leaves: leaves})
	switch {
	case price == o.price && leaves <= o.qty:
		o.qty = leaves
	case price == o.price:
		o.qty, o.time = leaves, c.Time
		m.prio++
		o.prio = m.prio
	default:
		o.price, o.qty, o.time = price, leaves, c.Time
		m.remove(o)
		r.match(o, makers, price)
		if o.qty > 0 {
			m.prio++
			o.prio = m.prio
			m.orders = append(m.orders, o)
			slices.SortFunc(m.orders, func(a, b *refOrder) int { return int(a.id) - int(b.id) })
		}
	}
}

func (r *refRun) massCancel() {
	m, c := r.m, r.c
	if c.Instrument != 0 && m.insts[c.Instrument] == nil {
		r.reject(RejectUnknownInstrument)
		return
	}
	n := Qty(0)
	for _, o := range slices.Clone(m.orders) {
		if o.acct == c.Account && (c.Instrument == 0 || o.inst == c.Instrument) && (!c.SessionOnly || o.sess == c.Session) {
			r.touch(o.inst)
			r.canceled(o, CancelMass, o.price, o.owner())
			m.remove(o)
			n++
		}
	}
	r.tell(r.own(), Event{Kind: EvMassCanceled, Instrument: c.Instrument, Account: c.Account, Qty: n})
}
