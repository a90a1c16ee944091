package engine_test

import (
	"slices"

	. "github.com/matchd/matchd/engine" //nolint:staticcheck // the model reads like the spec
)

// refModel is a deliberately naive order book: every open order (resting
// or parked) in one slice in ID order, linear scans, a sort per step. It
// shares no code with the engine; the differential test demands identical
// events from both.
type refModel struct {
	insts      map[InstrumentID]*refInst
	instOrder  []InstrumentID
	orders     []*refOrder           // open orders, in order of ID
	lastRef    map[refSess]ClientRef // per session
	msgs       map[refSess]uint64    // messages numbered per session
	sessions   map[AccountID]int     // sessions seen per account
	acctSTP    map[AccountID]STPMode
	operators  map[AccountID]bool
	defaultSTP STPMode
	nextOrder  OrderID
	nextTrade  TradeID
	prio       int64  // queue positions handed out
	arrivals   uint64 // stop arrivals numbered
	now        int64
	triggering bool
	triggered  int
}

// refSess names one session of one account.
type refSess struct {
	acct AccountID
	sess SessionID
}

type refInst struct {
	spec      Instrument
	ref       Price
	feed      uint64
	phase     Phase
	phaseEnd  int64
	nextSched int64
	viRef     Price
	cascade   bool
	ind       refInd // last published indicative
}

type refInd struct {
	price Price
	qty   Qty
	sur   Qty
	side  Side
}

type refOrder struct {
	id      OrderID
	acct    AccountID
	sess    SessionID
	inst    InstrumentID
	side    Side
	typ     OrderType
	tif     TimeInForce
	stp     STPMode
	ref     ClientRef
	price   Price
	qty     Qty // shown (for a parked stop or an order matching: all of it)
	hidden  Qty
	display Qty
	filled  Qty
	stop    Price // while parked
	expire  int64
	parked  bool
	away    bool   // taken off the book while it matches (a replace to a new price, a trigger)
	prio    int64  // smaller is earlier in the queue
	arrival uint64 // among stops
	time    int64
}

func (o *refOrder) leaves() Qty { return o.qty + o.hidden }

func (o *refOrder) resting() bool { return !o.parked && !o.away }

func (o *refOrder) evPrice() Price {
	if o.typ == Market {
		return 0
	}
	return o.price
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
		acctSTP:    map[AccountID]STPMode{},
		operators:  map[AccountID]bool{},
		defaultSTP: cfg.DefaultSTP,
	}
	for _, in := range cfg.Instruments {
		ri := &refInst{spec: in, ref: in.StartPrice, phase: PhaseContinuous}
		if in.AuctionAt != 0 || in.OpenAt != 0 || in.CloseAt != 0 {
			ri.phase, ri.nextSched = PhaseClosed, 1
		}
		m.insts[in.ID] = ri
		m.instOrder = append(m.instOrder, in.ID)
	}
	for _, a := range cfg.Accounts {
		m.acctSTP[a.ID] = a.STP
		m.operators[a.ID] = a.Operator
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

// add puts o among the open orders, keeping them in ID order.
func (m *refModel) add(o *refOrder) {
	i, _ := slices.BinarySearchFunc(m.orders, o.id, func(x *refOrder, id OrderID) int { return int(x.id) - int(id) })
	m.orders = slices.Insert(m.orders, i, o)
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
		if o.inst != inst || !o.resting() {
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
		if o.inst == inst && o.resting() && o.side == Buy && o.price == t.BidPrice {
			t.BidQty += o.qty
		}
		if o.inst == inst && o.resting() && o.side == Sell && o.price == t.AskPrice {
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

// levels aggregates every resting order's shown quantity into its price
// level.
func (m *refModel) levels() map[refLevelKey]refLevel {
	out := make(map[refLevelKey]refLevel, len(m.orders))
	for _, o := range m.orders {
		if !o.resting() {
			continue
		}
		k := refLevelKey{o.inst, o.side, o.price}
		l := out[k]
		l.qty += o.qty
		l.orders++
		out[k] = l
	}
	return out
}

// side returns the resting orders of one side, best price first, then
// queue position.
func (m *refModel) side(inst InstrumentID, s Side) []*refOrder {
	var out []*refOrder
	for _, o := range m.orders {
		if o.inst == inst && o.side == s && o.resting() {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *refOrder) int {
		if a.price != b.price {
			if (s == Sell) == (a.price < b.price) {
				return -1
			}
			return 1
		}
		return int(a.prio - b.prio)
	})
	return out
}

// makers returns the resting orders a taker on side s could meet.
func (m *refModel) makers(inst InstrumentID, s Side) []*refOrder {
	if s == Buy {
		return m.side(inst, Sell)
	}
	return m.side(inst, Buy)
}

func canTrade(s Side, maker, limit Price) bool {
	if s == Buy {
		return maker <= limit
	}
	return maker >= limit
}

func within(ref Price, bps int64, p Price) bool {
	if bps == 0 || ref == 0 {
		return true
	}
	w := ref * Price(bps) / 10000
	return p >= ref-w && p <= ref+w
}

func (ri *refInst) band() (lo, hi Price, ok bool) {
	if ri.spec.BandBps == 0 || ri.ref == 0 {
		return 0, 0, false
	}
	w := ri.ref * Price(ri.spec.BandBps) / 10000
	return ri.ref - w, ri.ref + w, true
}

func (ri *refInst) protection(s Side) Price {
	lo, hi, ok := ri.band()
	switch {
	case !ok && s == Buy:
		return MaxPrice
	case !ok:
		return 1
	case s == Buy:
		return hi
	default:
		return max(lo, 1)
	}
}

func (ri *refInst) auction() bool { return ri.phase == PhaseAuction || ri.phase == PhaseVolatility }

func reached(s Side, stop, last Price) bool {
	if s == Buy {
		return last >= stop
	}
	return last <= stop
}

func restingTIF(t TimeInForce) bool { return t == GTC || t == PostOnly || t == GTD || t == Day }

// refRun is the state of one command being applied.
type refRun struct {
	m       *refModel
	c       *Command
	out     []Event
	touched []InstrumentID
	before  map[InstrumentID]TopOfBook
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
	r.tell(r.own(), Event{Kind: EvRejected, Reason: uint8(reason), Side: c.Side, Instrument: c.Instrument,
		Account: c.Account, OrderID: c.OrderID, Ref: c.Ref, Price: c.Price, Qty: c.Qty})
}

func (r *refRun) canceled(o *refOrder, reason CancelReason, to refSess) {
	r.tell(to, Event{Kind: EvCanceled, Reason: uint8(reason), Side: o.side, Instrument: o.inst,
		Account: o.acct, OrderID: o.id, Ref: o.ref, Price: o.evPrice(), Qty: o.leaves()})
}

// kill cancels an open order and forgets it.
func (r *refRun) kill(o *refOrder, reason CancelReason, to refSess) {
	r.canceled(o, reason, to)
	r.m.remove(o)
}

func (o *refOrder) owner() refSess { return refSess{o.acct, o.sess} }

// Apply mirrors engine.Apply.
func (m *refModel) Apply(c *Command) []Event {
	r := &refRun{m: m, c: c, before: map[InstrumentID]TopOfBook{}}
	levelsBefore := m.levels()
	m.triggered = 0
	m.now = max(m.now, c.Time)
	r.timers()
	switch {
	case c.Kind == CmdClock:
	case !r.openSession():
		r.emit(Event{Kind: EvRejected, Reason: uint8(RejectTooManySessions), Side: c.Side, Instrument: c.Instrument,
			Account: c.Account, Session: c.Session, OrderID: c.OrderID, Ref: c.Ref, Price: c.Price, Qty: c.Qty})
	case c.Kind == CmdNewOrder:
		r.newOrder()
	case c.Kind == CmdCancel:
		r.cancel()
	case c.Kind == CmdReplace:
		r.replace()
	case c.Kind == CmdMassCancel:
		r.massCancel()
	case c.Kind == CmdPhase:
		r.phase()
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
		ri := m.insts[k.inst]
		ri.feed++
		r.emit(Event{Kind: EvLevel, Instrument: k.inst, Side: k.side, Price: k.price, Qty: v.qty, Orders: v.orders,
			FeedSeq: ri.feed})
	}
	for _, inst := range r.touched {
		ri := m.insts[inst]
		if !ri.auction() {
			continue
		}
		if ind := m.indicative(inst); ind != ri.ind {
			ri.ind = ind
			ri.feed++
			r.emit(Event{Kind: EvIndicative, Instrument: inst, Side: ind.side, Price: ind.price, Qty: ind.qty,
				Leaves: ind.sur, FeedSeq: ri.feed})
		}
	}
	for _, inst := range r.touched {
		if t := m.top(inst); t != r.before[inst] {
			r.emit(Event{Kind: EvTopOfBook, Instrument: inst, BidPrice: t.BidPrice, BidQty: t.BidQty,
				AskPrice: t.AskPrice, AskQty: t.AskQty})
		}
	}
	return r.out
}

// openSession makes the command's session known, or reports that its
// account has no room for another.
func (r *refRun) openSession() bool {
	m, c := r.m, r.c
	if _, ok := m.msgs[r.own()]; ok {
		return true
	}
	if m.sessions[c.Account] == MaxSessionsPerAccount {
		return false
	}
	m.sessions[c.Account]++
	m.msgs[r.own()] = 0
	return true
}

// timers does what the engine's time has made due.
func (r *refRun) timers() {
	m := r.m
	for {
		var first *refOrder
		for _, o := range m.orders {
			if o.expire != 0 && o.expire <= m.now && (first == nil || o.expire < first.expire) {
				first = o
			}
		}
		if first == nil {
			break
		}
		r.touch(first.inst)
		r.kill(first, CancelExpired, first.owner())
	}
	for _, id := range m.instOrder {
		ri := m.insts[id]
		if ri.phase == PhaseVolatility && ri.phaseEnd <= m.now {
			r.uncross(id, nil)
		}
		if ri.nextSched != 0 && ri.nextSched <= m.now {
			r.schedule(id)
		}
		if ri.cascade {
			ri.cascade = false
			r.triggerStops(id)
		}
	}
}

const day = int64(24 * 3600 * 1e9)

// schedule applies the daily schedule: the phase of the latest transition
// at or before now (looking back a day at most).
func (r *refRun) schedule(id InstrumentID) {
	m, ri := r.m, r.m.insts[id]
	tod := ((m.now % day) + day) % day
	type tr struct {
		at int64
		p  Phase
	}
	var trs []tr
	for _, x := range []tr{{ri.spec.AuctionAt, PhaseAuction}, {ri.spec.OpenAt, PhaseContinuous}, {ri.spec.CloseAt, PhaseClosed}} {
		if x.at != 0 {
			trs = append(trs, x, tr{x.at - day, x.p}, tr{x.at + day, x.p})
		}
	}
	var target Phase
	bestAt, next := int64(-2*day), int64(2*day)
	for _, x := range trs {
		if x.at <= tod && x.at > bestAt {
			bestAt, target = x.at, x.p
		}
		if x.at > tod && x.at < next {
			next = x.at
		}
	}
	ri.nextSched = m.now - tod + next
	switch {
	case target == ri.phase:
	case ri.phase == PhaseHalted && target != PhaseClosed:
	case target == PhaseClosed:
		r.setPhase(id, PhaseClosed, 0, nil)
		r.expireDay(id)
	case target == PhaseAuction:
		r.setPhase(id, PhaseAuction, 0, nil)
	default:
		r.uncross(id, nil)
	}
}

func (r *refRun) expireDay(id InstrumentID) {
	for _, o := range slices.Clone(r.m.orders) {
		if o.inst == id && o.tif == Day {
			r.kill(o, CancelExpired, o.owner())
		}
	}
}

func (r *refRun) setPhase(id InstrumentID, p Phase, price Price, to *refSess) {
	ri := r.m.insts[id]
	r.touch(id)
	ri.phase, ri.phaseEnd = p, 0
	if !ri.auction() {
		ri.ind = refInd{}
	}
	ri.feed++
	ev := Event{Kind: EvPhase, Reason: uint8(p), Instrument: id, Price: price, FeedSeq: ri.feed}
	if to == nil {
		r.emit(ev)
		return
	}
	ev.Account = to.acct
	r.tell(*to, ev)
}

func (r *refRun) phase() {
	m, c := r.m, r.c
	if !m.operators[c.Account] {
		r.reject(RejectNotOperator)
		return
	}
	ri := m.insts[c.Instrument]
	if ri == nil {
		r.reject(RejectUnknownInstrument)
		return
	}
	allowed := map[PhaseAction][]Phase{
		ActHalt:        {PhaseContinuous, PhaseAuction, PhaseVolatility},
		ActResume:      {PhaseHalted},
		ActOpenAuction: {PhaseContinuous, PhaseHalted, PhaseClosed},
		ActUncross:     {PhaseAuction, PhaseVolatility},
		ActClose:       {PhaseContinuous, PhaseHalted, PhaseAuction, PhaseVolatility},
	}
	if !slices.Contains(allowed[c.Action], ri.phase) {
		r.reject(RejectBadPhaseAction)
		return
	}
	own := r.own()
	switch c.Action {
	case ActHalt:
		r.setPhase(c.Instrument, PhaseHalted, 0, &own)
	case ActResume, ActUncross:
		r.uncross(c.Instrument, &own)
	case ActOpenAuction:
		r.setPhase(c.Instrument, PhaseAuction, 0, &own)
	case ActClose:
		r.setPhase(c.Instrument, PhaseClosed, 0, &own)
		r.expireDay(c.Instrument)
	}
}

// indicative computes the uncrossing price by brute force: every candidate
// price, every resting order summed.
func (m *refModel) indicative(id InstrumentID) refInd {
	bids, asks := m.side(id, Buy), m.side(id, Sell)
	if len(bids) == 0 || len(asks) == 0 || bids[0].price < asks[0].price {
		return refInd{}
	}
	lo, hi := asks[0].price, bids[0].price
	ref := m.insts[id].ref
	var cands []Price
	for _, o := range append(slices.Clone(bids), asks...) {
		if o.price >= lo && o.price <= hi {
			cands = append(cands, o.price)
		}
	}
	if ref >= lo && ref <= hi {
		cands = append(cands, ref)
	}
	var best refInd
	dist := func(p Price) Price {
		if p > ref {
			return p - ref
		}
		return ref - p
	}
	for _, p := range cands {
		var buy, sell Qty
		for _, o := range bids {
			if o.price >= p {
				buy += o.leaves()
			}
		}
		for _, o := range asks {
			if o.price <= p {
				sell += o.leaves()
			}
		}
		x := refInd{price: p, qty: min(buy, sell)}
		switch {
		case buy > sell:
			x.sur, x.side = buy-sell, Buy
		case sell > buy:
			x.sur, x.side = sell-buy, Sell
		}
		switch {
		case best.price == 0, x.qty > best.qty,
			x.qty == best.qty && x.sur < best.sur,
			x.qty == best.qty && x.sur == best.sur && dist(p) < dist(best.price),
			x.qty == best.qty && x.sur == best.sur && dist(p) == dist(best.price) && p < best.price:
			best = x
		}
	}
	if best.qty == 0 {
		return refInd{}
	}
	return best
}

// uncross trades the crossed book at its indicative price (again, should
// self-trade prevention leave it crossed), then trading is continuous.
func (r *refRun) uncross(id InstrumentID, to *refSess) {
	m := r.m
	r.touch(id)
	for {
		ind := m.indicative(id)
		if ind.qty == 0 {
			break
		}
		r.cross(id, ind.price)
	}
	r.setPhase(id, PhaseContinuous, 0, to)
	r.triggerStops(id)
}

func (r *refRun) cross(id InstrumentID, p Price) {
	m := r.m
	for {
		bids, asks := m.side(id, Buy), m.side(id, Sell)
		if len(bids) == 0 || len(asks) == 0 || bids[0].price < p || asks[0].price > p {
			return
		}
		bo, ao := bids[0], asks[0]
		t, mk := ao, bo
		if bo.time > ao.time || bo.time == ao.time && bo.id > ao.id {
			t, mk = bo, ao
		}
		if bo.acct == ao.acct {
			r.kill(t, CancelSelfTrade, t.owner())
			continue
		}
		q := min(bo.qty, ao.qty)
		for _, o := range []*refOrder{bo, ao} {
			o.qty -= q
			o.filled += q
		}
		m.insts[id].ref = p
		m.nextTrade++
		m.insts[id].feed++
		m.msgs[t.owner()]++
		m.msgs[mk.owner()]++
		r.emit(Event{Kind: EvFill, Reason: FillAuction, Side: t.side, Instrument: id, Account: t.acct, OrderID: t.id,
			Ref: t.ref, Price: p, Qty: q, Leaves: t.leaves(), MakerAccount: mk.acct, MakerOrder: mk.id,
			MakerRef: mk.ref, MakerLeaves: mk.leaves(), TradeID: m.nextTrade,
			Session: t.sess, SessSeq: m.msgs[t.owner()], MakerSession: mk.sess, MakerSessSeq: m.msgs[mk.owner()],
			FeedSeq: m.insts[id].feed})
		r.drained(bo)
		r.drained(ao)
	}
}

// drained shows the next iceberg slice of a resting order with nothing
// shown, at the back of the queue, or forgets the order.
func (r *refRun) drained(o *refOrder) {
	if o.qty > 0 {
		return
	}
	if o.hidden > 0 {
		o.qty = min(o.display, o.hidden)
		o.hidden -= o.qty
		r.m.prio++
		o.prio = r.m.prio
		o.time = r.c.Time
		return
	}
	r.m.remove(o)
}

func (r *refRun) newOrder() {
	m, c := r.m, r.c
	if c.Ref <= m.lastRef[r.own()] {
		r.reject(RejectStaleClientRef)
		return
	}
	ri := m.insts[c.Instrument]
	limitType := c.Type == Limit || c.Type == StopLimit
	stop := c.Type == Stop || c.Type == StopLimit
	tifs := map[OrderType][]TimeInForce{
		Limit:     {GTC, IOC, FOK, PostOnly, GTD, Day},
		Market:    {IOC, FOK},
		Stop:      {IOC},
		StopLimit: {GTC, IOC, GTD, Day},
	}
	switch {
	case ri == nil:
		r.reject(RejectUnknownInstrument)
		return
	case ri.phase == PhaseHalted:
		r.reject(RejectHalted)
		return
	case ri.phase == PhaseClosed:
		r.reject(RejectClosed)
		return
	case c.Side != Buy && c.Side != Sell:
		r.reject(RejectBadSide)
		return
	case tifs[c.Type] == nil:
		r.reject(RejectBadType)
		return
	case !slices.Contains(tifs[c.Type], c.TIF):
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
	case c.Type == Stop && c.Price != 0, limitType && (c.Price < 1 || c.Price > MaxPrice):
		r.reject(RejectBadPrice)
		return
	}
	if lo, hi, ok := ri.band(); limitType && ok && (c.Price < lo || c.Price > hi) {
		r.reject(RejectOutsidePriceBand)
		return
	}
	switch {
	case stop && (c.StopPrice < 1 || c.StopPrice > MaxPrice || reached(c.Side, c.StopPrice, ri.ref)),
		!stop && c.StopPrice != 0:
		r.reject(RejectBadStopPrice)
		return
	case c.Display < 0 || c.Display > c.Qty,
		c.Display > 0 && (!restingTIF(c.TIF) || c.Type == Market || c.Type == Stop):
		r.reject(RejectBadDisplay)
		return
	case c.TIF == GTD && c.Expire <= m.now, c.TIF != GTD && c.Expire != 0:
		r.reject(RejectBadExpiry)
		return
	case (stop || restingTIF(c.TIF)) && m.openCount(c.Account, c.Instrument) >= int(ri.spec.MaxOpenPerAccount):
		r.reject(RejectTooManyOpenOrders)
		return
	case ri.auction() && !stop && (c.Type == Market || !restingTIF(c.TIF) || c.TIF == PostOnly):
		r.reject(RejectNotInPhase)
		return
	}
	limit := c.Price
	if c.Type == Market {
		limit = ri.protection(c.Side)
	}
	stp := c.STP
	if stp == STPDefault {
		stp = m.stpOf(c.Account)
	}
	if ri.phase == PhaseContinuous {
		makers := m.makers(c.Instrument, c.Side)
		if c.TIF == PostOnly && len(makers) > 0 && canTrade(c.Side, makers[0].price, limit) {
			r.reject(RejectWouldCross)
			return
		}
		if c.TIF == FOK {
			avail := Qty(0)
			for _, o := range makers {
				if !canTrade(c.Side, o.price, limit) || !within(ri.ref, ri.spec.VolatilityBps, o.price) {
					break
				}
				if o.acct == c.Account {
					if stp == STPCancelResting {
						continue
					}
					break
				}
				avail += o.leaves()
			}
			if avail < c.Qty {
				r.reject(RejectFOKUnfillable)
				return
			}
		}
	}
	m.lastRef[r.own()] = c.Ref
	r.touch(c.Instrument)
	m.nextOrder++
	t := &refOrder{id: m.nextOrder, acct: c.Account, sess: c.Session, inst: c.Instrument, side: c.Side, typ: c.Type,
		tif: c.TIF, stp: stp, ref: c.Ref, price: limit, qty: c.Qty, display: c.Display, stop: c.StopPrice,
		expire: c.Expire, time: c.Time}
	r.tell(r.own(), Event{Kind: EvAccepted, Side: c.Side, Instrument: c.Instrument, Account: c.Account,
		OrderID: t.id, Ref: t.ref, Price: t.evPrice(), Qty: c.Qty, Leaves: c.Qty})
	if stop {
		t.parked = true
		m.arrivals++
		t.arrival = m.arrivals
		m.add(t)
		return
	}
	t.away = true
	m.add(t)
	r.enter(t)
}

// enter matches o (off the book, among the open orders) in continuous
// trading, then rests or cancels what is left, then triggers stops.
func (r *refRun) enter(o *refOrder) {
	m, ri := r.m, r.m.insts[o.inst]
	if ri.phase == PhaseContinuous {
		r.match(o)
	}
	switch {
	case o.qty == 0:
		m.remove(o)
	case restingTIF(o.tif):
		o.away = false
		if o.display > 0 && o.qty > o.display {
			o.hidden += o.qty - o.display
			o.qty = o.display
		}
		m.prio++
		o.prio = m.prio
	default:
		r.kill(o, CancelUnfilled, o.owner())
	}
	if ri.phase == PhaseContinuous {
		r.triggerStops(o.inst)
	}
}

// match trades t (off the book) against the best resting order, one fill
// at a time.
func (r *refRun) match(t *refOrder) {
	m, ri := r.m, r.m.insts[t.inst]
	ri.viRef = ri.ref
	makers := m.makers(t.inst, t.side)
	for t.qty > 0 {
		// The best resting order still there (earlier ones traded away
		// or were canceled by self-trade prevention).
		for len(makers) > 0 && (makers[0].qty == 0 || !slices.Contains(m.orders, makers[0])) {
			makers = makers[1:]
		}
		if len(makers) == 0 || !canTrade(t.side, makers[0].price, t.price) {
			return
		}
		mk := makers[0]
		if !within(ri.viRef, ri.spec.VolatilityBps, mk.price) {
			r.setPhase(t.inst, PhaseVolatility, mk.price, nil)
			ri.phaseEnd = m.now + ri.spec.VolatilityAuction
			return
		}
		if mk.acct == t.acct {
			switch t.stp {
			case STPCancelIncoming:
				r.canceled(t, CancelSelfTrade, t.owner())
				t.qty = 0
				return
			case STPCancelBoth:
				r.kill(mk, CancelSelfTrade, mk.owner())
				r.canceled(t, CancelSelfTrade, t.owner())
				t.qty = 0
				return
			default:
				r.kill(mk, CancelSelfTrade, mk.owner())
				continue
			}
		}
		q := min(t.qty, mk.qty)
		t.qty -= q
		t.filled += q
		mk.qty -= q
		mk.filled += q
		ri.ref = mk.price
		m.nextTrade++
		ri.feed++
		m.msgs[t.owner()]++
		m.msgs[mk.owner()]++
		r.emit(Event{Kind: EvFill, Side: t.side, Instrument: t.inst, Account: t.acct, OrderID: t.id,
			Ref: t.ref, Price: mk.price, Qty: q, Leaves: t.qty, MakerAccount: mk.acct,
			MakerOrder: mk.id, MakerRef: mk.ref, MakerLeaves: mk.leaves(), TradeID: m.nextTrade,
			Session: t.sess, SessSeq: m.msgs[t.owner()], MakerSession: mk.sess, MakerSessSeq: m.msgs[mk.owner()],
			FeedSeq: ri.feed})
		if mk.qty == 0 && mk.hidden > 0 {
			r.drained(mk) // a new slice at the back: the queue order changed
			makers = m.makers(t.inst, t.side)
			continue
		}
		r.drained(mk)
	}
}

// triggerStops triggers reached stops one at a time, buys (lowest stop,
// then arrival) before sells (highest stop, then arrival).
func (r *refRun) triggerStops(id InstrumentID) {
	m := r.m
	if m.triggering {
		return
	}
	m.triggering = true
	defer func() { m.triggering = false }()
	for m.insts[id].phase == PhaseContinuous {
		var next *refOrder
		for _, s := range []Side{Buy, Sell} {
			var first *refOrder
			for _, o := range m.orders {
				if o.inst != id || !o.parked || o.side != s {
					continue
				}
				if first == nil || (s == Buy) == (o.stop < first.stop) && o.stop != first.stop ||
					o.stop == first.stop && o.arrival < first.arrival {
					first = o
				}
			}
			if next == nil && first != nil && reached(s, first.stop, m.insts[id].ref) {
				next = first
			}
		}
		if next == nil {
			return
		}
		if m.triggered == MaxStopCascade {
			m.insts[id].cascade = true
			return
		}
		m.triggered++
		r.trigger(next)
	}
}

func (r *refRun) trigger(o *refOrder) {
	ri := r.m.insts[o.inst]
	r.touch(o.inst)
	o.parked, o.stop, o.away = false, 0, true
	if o.typ == Stop {
		o.typ, o.price = Market, ri.protection(o.side)
	} else {
		o.typ = Limit
	}
	o.time = r.c.Time
	r.tell(o.owner(), Event{Kind: EvTriggered, Side: o.side, Instrument: o.inst, Account: o.acct, OrderID: o.id,
		Ref: o.ref, Price: o.evPrice(), Qty: o.leaves(), Leaves: o.leaves()})
	r.enter(o)
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
		r.kill(o, CancelUser, r.own())
	}
}

func (r *refRun) replace() {
	m, c := r.m, r.c
	if c.Ref <= m.lastRef[r.own()] {
		r.reject(RejectStaleClientRef)
		return
	}
	o := r.owned()
	if o == nil {
		return
	}
	ri := m.insts[o.inst]
	price, total, display, stop := o.price, o.leaves()+o.filled, o.display, o.stop
	if c.Price != 0 {
		price = c.Price
	}
	if c.Qty != 0 {
		total = c.Qty
	}
	if c.Display != 0 {
		display = c.Display
	}
	if c.StopPrice != 0 {
		stop = c.StopPrice
	}
	lo, hi, banded := ri.band()
	switch {
	case ri.phase == PhaseHalted:
		r.reject(RejectHalted)
		return
	case ri.phase == PhaseClosed:
		r.reject(RejectClosed)
		return
	case c.Price < 0 || price > MaxPrice || c.Price != 0 && o.typ == Stop:
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
	case c.StopPrice < 0, c.StopPrice != 0 && (!o.parked || c.StopPrice > MaxPrice || reached(o.side, stop, ri.ref)):
		r.reject(RejectBadStopPrice)
		return
	case c.Display < 0, c.Display != 0 && (display > total || o.typ == Stop || !restingTIF(o.tif)):
		r.reject(RejectBadDisplay)
		return
	}
	if !o.parked && ri.phase == PhaseContinuous && o.tif == PostOnly {
		if makers := m.makers(o.inst, o.side); len(makers) > 0 && canTrade(o.side, makers[0].price, price) {
			r.reject(RejectWouldCross)
			return
		}
	}
	m.lastRef[r.own()] = c.Ref
	r.touch(o.inst)
	orig := o.ref
	o.ref = c.Ref
	if total <= o.filled {
		r.tell(r.own(), Event{Kind: EvCanceled, Reason: uint8(CancelReplaced), Side: o.side, Instrument: o.inst,
			Account: o.acct, OrderID: o.id, Ref: o.ref, OrigRef: orig, Price: o.evPrice(), Qty: o.leaves()})
		m.remove(o)
		return
	}
	leaves := total - o.filled
	replaced := func() {
		r.tell(r.own(), Event{Kind: EvReplaced, Side: o.side, Instrument: o.inst, Account: o.acct, OrderID: o.id,
			Ref: o.ref, OrigRef: orig, Price: o.evPrice(), Qty: total, Leaves: leaves})
	}
	switch {
	case o.parked:
		o.price, o.qty, o.stop, o.display, o.time = price, leaves, stop, display, c.Time
		m.arrivals++
		o.arrival = m.arrivals
		replaced()
	case price == o.price && leaves <= o.leaves() && display == o.display:
		cut := o.leaves() - leaves
		h := min(cut, o.hidden)
		o.hidden -= h
		o.qty -= cut - h
		replaced()
	case price == o.price:
		o.qty, o.hidden, o.display, o.time = leaves, 0, display, c.Time
		if o.display > 0 && o.qty > o.display {
			o.hidden, o.qty = o.qty-o.display, o.display
		}
		m.prio++
		o.prio = m.prio
		replaced()
	default:
		o.price, o.qty, o.hidden, o.display, o.time = price, leaves, 0, display, c.Time
		o.away = true
		replaced()
		r.enter(o)
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
			r.kill(o, CancelMass, o.owner())
			n++
		}
	}
	r.tell(r.own(), Event{Kind: EvMassCanceled, Instrument: c.Instrument, Account: c.Account, Qty: n})
}
