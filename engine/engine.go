package engine

import (
	"fmt"
	"slices"

	"github.com/tidwall/btree"
)

// account is the per-account state the engine keeps: its sessions, the
// self-trade default, and the open orders.
type account struct {
	id       AccountID
	idx      int32   // position in Engine.accts
	sessions []int32 // its sessions' indexes in Engine.sess, in order of first use
	lastSess int32   // the session last looked up, or -1
	stp      STPMode
	open     []int32 // open orders per book index
	head     *order  // oldest open order
	tail     *order
}

// Engine is the matching engine: every instrument's book and every account's
// state. It is not safe for concurrent use; one goroutine owns it and feeds it
// commands in sequence order.
type Engine struct {
	books      []*book               // by index, in configuration order
	byID       []*book               // by InstrumentID
	accts      []*account            // every account seen, in order of first use
	acctLow    []int32               // accts index + 1 by ID, for IDs below acctLowLimit
	acctHigh   map[AccountID]int32   // accts index by ID, for larger IDs
	acctSTP    map[AccountID]STPMode // configured defaults
	operators  map[AccountID]bool    // accounts configured as operators
	defaultSTP STPMode
	orders     orderStore
	sess       []*session // every session seen, in order of first use

	nextOrder OrderID // last assigned
	nextTrade TradeID // last assigned
	lastSeq   Seq
	now       int64 // the engine's time: the latest command time seen

	exts     []orderExt // by order.ext-1
	extFree  []int32
	arrivals uint64                // parked stops numbered so far
	expiries *btree.BTreeG[expKey] // open GTD orders
	wake     int64                 // when something may be due (noWake: never)

	freeLevels *level
	levelGen   uint64              // levels emptied so far (see bookSide)
	levelSlabs []*[levelSlab]level // every level ever made, by id

	// Per-command scratch state.
	seq     Seq
	time    int64
	cs      int32    // the command's session (index in sess), or -1
	ca      *account // the command's account while cs >= 0
	out     []Event
	epoch   uint64
	touched []*book
	levels  []levelTouch

	triggering bool // a triggerStops loop is running
	triggered  int  // stops the command (trigEpoch) has triggered
	trigEpoch  uint64
	auctions   int32 // books in a call auction

	scratch          []*order
	indBids, indAsks []priceVol
	indCands         []Price
}

// levelTouch records a price level as it was before the current command
// first changed it. It holds the level and its book by pointer (levels
// live in slabs and never move): a write barrier's check when recording
// costs fewer instructions than finding them again by id and instrument.
type levelTouch struct {
	lvl   *level
	bk    *book
	inst  InstrumentID
	side  Side
	price Price
	qty   Qty
	count int32
	order int32 // position in Engine.levels, to keep the first record of a level
}

// New returns an engine with empty books for cfg's instruments. It applies
// cfg.EnsureDefaults and fails if cfg.Validate does.
func New(cfg Config) (*Engine, error) {
	cfg.Instruments = append([]Instrument(nil), cfg.Instruments...)
	cfg.Accounts = append([]AccountDefaults(nil), cfg.Accounts...)
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		acctHigh:   make(map[AccountID]int32),
		acctSTP:    make(map[AccountID]STPMode),
		operators:  make(map[AccountID]bool),
		defaultSTP: cfg.DefaultSTP,
		expiries:   newExpiries(),
	}
	e.orders.init()
	maxID := InstrumentID(0)
	for _, in := range cfg.Instruments {
		maxID = max(maxID, in.ID)
	}
	e.byID = make([]*book, maxID+1)
	for i, in := range cfg.Instruments {
		b := newBook(in, i)
		e.books = append(e.books, b)
		e.byID[in.ID] = b
	}
	for _, a := range cfg.Accounts {
		e.acctSTP[a.ID] = a.STP
		if a.Operator {
			e.operators[a.ID] = true
		}
	}
	for _, b := range e.books {
		if b.inst.scheduled() {
			b.nextSched = 1 // the first command sets the phase the schedule says
		}
	}
	e.computeWake()
	e.reserve(cfg.ReserveOrders)
	return e, nil
}

// reserve preallocates n orders, n/4 levels and an index that holds n
// orders without growing.
func (e *Engine) reserve(n int) {
	if n <= 0 {
		return
	}
	e.orders.reserve(n)
	e.addLevelSlab(max(n/4, slabSize))
}

// LastSeq returns the sequence number of the last command applied.
func (e *Engine) LastSeq() Seq { return e.lastSeq }

// Apply applies one command and appends its events to out, returning the
// extended slice. Commands must arrive with strictly increasing Seq; Apply
// panics otherwise, as that is a bug in the caller, not bad input. Bad input
// is answered with an EvRejected event and changes nothing else (the
// account's last client reference advances when the command carried a fresh
// one).
//
// Apply does not retain out or cmd. With enough capacity in out and after
// warm-up it does not allocate.
func (e *Engine) Apply(cmd *Command, out []Event) []Event {
	if cmd.Seq <= e.lastSeq {
		panic(fmt.Sprintf("engine: command seq %d not after %d", cmd.Seq, e.lastSeq))
	}
	e.lastSeq = cmd.Seq
	e.seq, e.time, e.out = cmd.Seq, cmd.Time, out
	e.epoch++
	e.touched = e.touched[:0]
	e.levels = e.levels[:0]
	if cmd.Time > e.now {
		e.now = cmd.Time
	}
	if e.now >= e.wake {
		e.cs = -1
		e.runTimers()
	}
	if cmd.Kind == CmdClock {
		return e.finish()
	}
	e.enterSession(cmd)
	if e.cs < 0 {
		e.reject(cmd, RejectTooManySessions)
		return e.finish()
	}
	switch cmd.Kind {
	case CmdNewOrder:
		e.newOrder(cmd)
	case CmdCancel:
		e.cancel(cmd)
	case CmdReplace:
		e.replace(cmd)
	case CmdMassCancel:
		e.massCancel(cmd)
	case CmdPhase:
		e.phaseCommand(cmd)
	default:
		e.reject(cmd, RejectUnknownCommand)
	}
	return e.finish()
}

// finish appends the command's market data (level changes, indicative
// prices, tops of book) and hands back the events.
func (e *Engine) finish() []Event {
	if len(e.levels) > 0 {
		e.emitLevels()
	}
	if e.auctions > 0 {
		for _, b := range e.touched {
			if b.auction() {
				e.publishIndicative(b)
			}
		}
	}
	for _, b := range e.touched {
		if !b.topDirty {
			continue
		}
		b.topDirty = false
		if t := b.top(); t != b.published {
			b.published = t
			ev := e.event(EvTopOfBook)
			ev.Instrument = b.inst.ID
			ev.BidPrice, ev.BidQty, ev.AskPrice, ev.AskQty = t.BidPrice, t.BidQty, t.AskPrice, t.AskQty
		}
	}
	out := e.out
	e.out = nil
	return out
}

// touch lists b among the books the current command changes, before its
// first change to it; finish compares their tops of book with the ones
// they last published.
func (e *Engine) touch(b *book) {
	if b.epoch != e.epoch {
		b.epoch = e.epoch
		e.touched = append(e.touched, b)
	}
}

// touchLevel records l as it is before the current command changes it, the
// first time the command touches it. A level emptied and made again within
// one command is recorded twice; emitLevels merges the records.
func (e *Engine) touchLevel(b *book, side Side, l *level) {
	if l == b.bids.best || l == b.asks.best {
		// A best level changes: the top of book may (nothing else
		// changes it; a level made best is touched once it is).
		b.topDirty = true
	}
	if l.epoch == e.epoch {
		return
	}
	l.epoch = e.epoch
	l.touch = int32(len(e.levels))
	e.levels = append(e.levels, levelTouch{
		lvl: l, bk: b, inst: b.inst.ID, side: side, price: l.price, qty: l.qty, count: l.count,
		order: int32(len(e.levels)),
	})
}

// less orders level records by instrument, side, price, then first record.
func (a *levelTouch) less(b *levelTouch) bool {
	if a.inst != b.inst {
		return a.inst < b.inst
	}
	if a.side != b.side {
		return a.side < b.side
	}
	if a.price != b.price {
		return a.price < b.price
	}
	return a.order < b.order
}

// emitLevels appends an EvLevel for every level the command changed, in
// (instrument, side, price) order.
func (e *Engine) emitLevels() {
	ls := e.levels
	if len(ls) == 1 { // the common case
		e.emitLevel(&ls[0], e.liveLevel(&ls[0]))
		return
	}
	sortTouches(ls)
	for i := 0; i < len(ls); {
		first, live := &ls[i], e.liveLevel(&ls[i])
		for i++; i < len(ls) && ls[i].inst == first.inst && ls[i].side == first.side && ls[i].price == first.price; i++ {
			if l := e.liveLevel(&ls[i]); l != nil {
				live = l // the level made again after the first emptied
			}
		}
		e.emitLevel(first, live)
	}
}

// sortTouches sorts level records by levelTouch.less. They usually arrive
// nearly sorted: a sweep records levels best first (ascending asks,
// descending bids), then maybe the taker's own level.
func sortTouches(ls []levelTouch) {
	// The longest monotone prefix, made ascending.
	k := 1
	if ls[1].less(&ls[0]) {
		for k < len(ls) && ls[k].less(&ls[k-1]) {
			k++
		}
		slices.Reverse(ls[:k])
	} else {
		for k < len(ls) && !ls[k].less(&ls[k-1]) {
			k++
		}
	}
	if len(ls)-k > 4 && len(ls) > 16 {
		slices.SortFunc(ls, func(a, b levelTouch) int {
			if a.less(&b) {
				return -1
			}
			return 1
		})
		return
	}
	for i := k; i < len(ls); i++ { // insert the few others
		for j := i; j > 0 && ls[j].less(&ls[j-1]); j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

// liveLevel returns the level t recorded if it still exists: a level freed
// since has epoch 0, and one freed and made again has a newer record.
func (e *Engine) liveLevel(t *levelTouch) *level {
	l := t.lvl
	if l.epoch == e.epoch && l.touch == t.order {
		return l
	}
	return nil
}

// emitLevel appends an EvLevel for the level t recorded if it changed; l is
// the level now, nil if it is gone.
func (e *Engine) emitLevel(t *levelTouch, l *level) {
	var qty Qty
	var count int32
	if l != nil {
		qty, count = l.qty, l.count
	}
	if qty != t.qty || count != t.count {
		b := t.bk
		b.feedSeq++
		ev := e.event(EvLevel)
		ev.Side, ev.Instrument, ev.Price, ev.Qty, ev.Orders, ev.FeedSeq = t.side, t.inst, t.price, qty, count, b.feedSeq
	}
}

// event appends a zero event of kind k for the current command to e.out
// and returns it for the caller to fill in. An Event is large: built
// where it lives, it is written once, not built aside and copied.
func (e *Engine) event(k EventKind) *Event {
	n := len(e.out)
	if n < cap(e.out) {
		e.out = e.out[:n+1] // stores the length alone
	} else {
		e.out = append(e.out, Event{})
	}
	ev := &e.out[n]
	*ev = Event{}
	ev.Seq, ev.Time, ev.Kind = e.seq, e.time, k
	return ev
}

func (e *Engine) book(id InstrumentID) *book {
	if int(id) < len(e.byID) {
		return e.byID[id]
	}
	return nil
}

// acctLowLimit bounds the account IDs found through a slice rather than a
// map: most venues number their accounts densely from 1.
const acctLowLimit = 1 << 16

// lookupAccount returns the account with the given ID, or nil.
func (e *Engine) lookupAccount(id AccountID) *account {
	if id < acctLowLimit {
		if int(id) < len(e.acctLow) && e.acctLow[id] != 0 {
			return e.accts[e.acctLow[id]-1]
		}
		return nil
	}
	if i, ok := e.acctHigh[id]; ok {
		return e.accts[i]
	}
	return nil
}

// enterSession sets the command's account and session (e.ca, e.cs),
// creating them on first use; e.cs is -1 if the account has no room for a
// new session. The common case, an account seen before with a small ID
// (lookupAccount's first table, read here without the call) and the
// session it used last, takes this one call.
func (e *Engine) enterSession(cmd *Command) {
	var a *account
	if id := cmd.Account; uint64(id) < uint64(len(e.acctLow)) && e.acctLow[id] != 0 { // only IDs below acctLowLimit are there
		a = e.accts[e.acctLow[id]-1]
	} else {
		a = e.account(id)
	}
	e.ca = a
	if i := a.lastSess; i >= 0 && e.sess[i].name == cmd.Session {
		e.cs = i
		return
	}
	e.cs = e.sessionOf(a, cmd.Session)
}

// account returns the account with the given ID, creating it on first use.
func (e *Engine) account(id AccountID) *account {
	if a := e.lookupAccount(id); a != nil {
		return a
	}
	stp, ok := e.acctSTP[id]
	if !ok {
		stp = e.defaultSTP
	}
	return e.addAccount(id, stp)
}

func (e *Engine) addAccount(id AccountID, stp STPMode) *account {
	a := &account{id: id, idx: int32(len(e.accts)), lastSess: -1, stp: stp, open: make([]int32, len(e.books))}
	e.accts = append(e.accts, a)
	if id < acctLowLimit {
		if int(id) >= len(e.acctLow) {
			e.acctLow = append(e.acctLow, make([]int32, int(id)+1-len(e.acctLow))...)
		}
		e.acctLow[id] = a.idx + 1
	} else {
		e.acctHigh[id] = a.idx
	}
	return a
}

// reject answers the command with EvRejected, in its session's stream
// (unnumbered when the session could not be opened).
func (e *Engine) reject(c *Command, r RejectReason) {
	ev := e.event(EvRejected)
	ev.Reason, ev.Side, ev.Instrument, ev.Account, ev.Session = uint8(r), c.Side, c.Instrument, c.Account, c.Session
	ev.OrderID, ev.Ref, ev.Price, ev.Qty = c.OrderID, c.Ref, c.Price, c.Qty
	if e.cs >= 0 {
		ev.Session, ev.SessSeq = e.to(e.cs)
	}
}

// validate checks a new order against everything but the book's contents.
func (e *Engine) validate(c *Command, b *book, a *account) RejectReason {
	if b == nil {
		return RejectUnknownInstrument
	}
	if b.phase != PhaseContinuous {
		switch b.phase {
		case PhaseHalted:
			return RejectHalted
		case PhaseClosed:
			return RejectClosed
		}
	}
	if c.Side != Buy && c.Side != Sell {
		return RejectBadSide
	}
	switch c.Type {
	case Limit:
		if c.TIF < GTC || c.TIF > Day {
			return RejectBadTimeInForce
		}
	case Market:
		if c.TIF != IOC && c.TIF != FOK {
			return RejectBadTimeInForce
		}
	case Stop:
		if c.TIF != IOC {
			return RejectBadTimeInForce
		}
	case StopLimit:
		if c.TIF != GTC && c.TIF != IOC && c.TIF != GTD && c.TIF != Day {
			return RejectBadTimeInForce
		}
	default:
		return RejectBadType
	}
	if !validSTP(c.STP) {
		return RejectBadSTP
	}
	if c.Qty <= 0 {
		return RejectBadQuantity
	}
	if c.Qty > b.inst.MaxQty {
		return RejectOverMaxQuantity
	}
	if c.Type == Limit || c.Type == StopLimit {
		if c.Price <= 0 || c.Price > MaxPrice {
			return RejectBadPrice
		}
		if !b.inBand(c.Price) {
			return RejectOutsidePriceBand
		}
	}
	// Plain orders skip the checks of stops, icebergs and expiry.
	if c.StopPrice|Price(c.Display)|Price(c.Expire) != 0 || c.Type >= Stop || c.TIF >= GTD {
		return e.validateSpecial(c, b, a)
	}
	if (c.TIF == GTC || c.TIF == PostOnly) && a.open[b.idx] >= b.inst.MaxOpenPerAccount {
		return RejectTooManyOpenOrders
	}
	if b.phase != PhaseContinuous && (c.Type == Market || c.TIF != GTC) {
		return RejectNotInPhase // b is in a call auction: halted and closed were rejected above
	}
	return 0
}

// validateSpecial checks the rest of a new order that uses a stop, a
// display, an expiry or one of their types and TIFs.
func (e *Engine) validateSpecial(c *Command, b *book, a *account) RejectReason {
	stop := c.Type == Stop || c.Type == StopLimit
	if c.Type == Stop && c.Price != 0 {
		return RejectBadPrice // a stop market order has no price
	}
	if stop {
		if c.StopPrice <= 0 || c.StopPrice > MaxPrice || stopReached(c.Side, c.StopPrice, b.refPrice) {
			return RejectBadStopPrice
		}
	} else if c.StopPrice != 0 {
		return RejectBadStopPrice
	}
	if c.Display < 0 || c.Display > c.Qty || c.Display > 0 && (!rests(c.TIF) || c.Type == Market || c.Type == Stop) {
		return RejectBadDisplay
	}
	if (c.TIF == GTD) != (c.Expire != 0) || c.TIF == GTD && c.Expire <= e.now {
		return RejectBadExpiry
	}
	if (stop || rests(c.TIF)) && a.open[b.idx] >= b.inst.MaxOpenPerAccount {
		return RejectTooManyOpenOrders
	}
	if b.phase != PhaseContinuous && !stop && (c.Type == Market || !rests(c.TIF) || c.TIF == PostOnly) {
		return RejectNotInPhase
	}
	return 0
}

func (e *Engine) newOrder(c *Command) {
	a := e.ca
	if c.Ref <= e.sess[e.cs].lastRef {
		e.reject(c, RejectStaleClientRef)
		return
	}
	b := e.book(c.Instrument)
	if r := e.validate(c, b, a); r != 0 {
		e.reject(c, r)
		return
	}
	stp := c.STP
	if stp == STPDefault {
		stp = a.stp
	}
	limit := c.Price
	if c.Type == Market {
		limit = b.protection(c.Side)
	}
	if c.TIF == PostOnly || c.TIF == FOK {
		opp := b.opposite(c.Side)
		if b.phase == PhaseContinuous && c.TIF == PostOnly && opp.best != nil && crosses(c.Side, opp.best.price, limit) {
			e.reject(c, RejectWouldCross)
			return
		}
		if b.phase == PhaseContinuous && c.TIF == FOK && !e.fillable(b, opp, c.Side, a, stp, limit, c.Qty) {
			e.reject(c, RejectFOKUnfillable)
			return
		}
	}

	e.sess[e.cs].lastRef = c.Ref // only an accepted command uses up its reference
	e.touch(b)
	e.nextOrder++
	o := e.allocOrder()
	// Every field but the handle, one by one: a literal would be built on
	// the stack and copied (TestNewOrderSetsEveryField).
	o.id, o.ref, o.price, o.qty, o.filled, o.time = e.nextOrder, c.Ref, limit, c.Qty, 0, e.time
	o.level, o.prev, o.next, o.aprev, o.anext = nil, nil, nil, nil, nil
	o.acct, o.sess, o.bookIdx, o.ext = a.idx, e.cs, int32(b.idx), 0
	o.side, o.typ, o.tif, o.stp = c.Side, c.Type, c.TIF, stp
	ev := e.event(EvAccepted)
	ev.Side, ev.Instrument, ev.Account, ev.OrderID, ev.Ref = c.Side, b.inst.ID, a.id, o.id, o.ref
	ev.Price, ev.Qty, ev.Leaves = o.eventPrice(), c.Qty, c.Qty
	ev.Session, ev.SessSeq = e.to(e.cs)
	if c.StopPrice|Price(c.Display)|Price(c.Expire) != 0 {
		x := e.allocExt(o)
		x.stop, x.display, x.expire = c.StopPrice, c.Display, c.Expire
		if c.StopPrice != 0 {
			e.park(b, o)
			e.addOpen(o)
			return
		}
		e.enter(b, o, false)
		return
	}
	// A plain order: enter's work, inline.
	if b.phase == PhaseContinuous {
		e.match(b, o)
	}
	switch {
	case o.qty == 0:
		e.freeOrder(o)
	case o.tif == GTC || rests(o.tif):
		e.addToLevel(b.sideOf(o.side), o)
		e.addOpen(o)
	default:
		e.cancelRemainder(o, CancelUnfilled, o.sess)
		e.freeOrder(o)
	}
	if b.parked != 0 {
		e.triggerStops(b)
	}
}

// fillable reports whether a fill-or-kill order could trade qty at once,
// given the self-trade prevention it would meet on the way.
func (e *Engine) fillable(b *book, opp *bookSide, s Side, a *account, stp STPMode, limit Price, qty Qty) bool {
	need := qty
	opp.scan(func(l *level) bool {
		if !crosses(s, l.price, limit) {
			return false
		}
		if b.inst.VolatilityBps != 0 && !b.inVolBandOf(b.refPrice, l.price) {
			return false // the trade would interrupt instead
		}
		for o := l.head; o != nil; o = o.next {
			if o.acct == a.idx {
				if stp != STPCancelResting {
					return false // the incoming order would be canceled here
				}
				continue
			}
			need -= o.qty + e.hidden(o)
			if need <= 0 {
				return false
			}
		}
		return true
	})
	return need <= 0
}

// match trades the incoming order t (not resting) against the opposite side
// up to t.price. On return t.qty is what is left; it is zero if self-trade
// prevention canceled the rest (the EvCanceled is already out). A trade
// that would print outside the volatility band stops it and interrupts
// trading instead.
func (e *Engine) match(b *book, t *order) {
	opp := b.opposite(t.side)
	b.viRef = b.refPrice
	for t.qty > 0 {
		l := opp.best
		if l == nil || !crosses(t.side, l.price, t.price) {
			return
		}
		if b.inst.VolatilityBps != 0 && !b.inVolBand(l.price) {
			e.interrupt(b, l.price)
			return
		}
		e.touchLevel(b, opp.side, l)
		for m := l.head; m != nil && t.qty > 0; {
			next := m.next
			if m.acct == t.acct {
				switch t.stp {
				case STPCancelIncoming:
					e.cancelRemainder(t, CancelSelfTrade, t.sess)
					return
				case STPCancelBoth:
					e.cancelResting(m, CancelSelfTrade, m.sess)
					e.cancelRemainder(t, CancelSelfTrade, t.sess)
					return
				default:
					e.cancelResting(m, CancelSelfTrade, m.sess)
					m = next
					continue
				}
			}
			q := min(t.qty, m.qty)
			t.qty -= q
			t.filled += q
			m.qty -= q
			m.filled += q
			l.qty -= q
			b.refPrice = l.price
			e.nextTrade++
			b.feedSeq++
			ev := e.event(EvFill)
			ev.Side, ev.Instrument, ev.Price, ev.Qty, ev.TradeID, ev.FeedSeq = t.side, b.inst.ID, l.price, q, e.nextTrade, b.feedSeq
			ev.Account, ev.OrderID, ev.Ref, ev.Leaves = e.accts[t.acct].id, t.id, t.ref, t.qty
			ev.MakerAccount, ev.MakerOrder, ev.MakerRef, ev.MakerLeaves = e.accts[m.acct].id, m.id, m.ref, m.qty
			ev.Session, ev.SessSeq = e.to(t.sess)
			ev.MakerSession, ev.MakerSessSeq = e.to(m.sess)
			if m.ext != 0 {
				ev.MakerLeaves += e.exts[m.ext-1].hidden
			}
			if m.qty == 0 {
				if m.ext != 0 && e.exts[m.ext-1].hidden > 0 {
					e.replenish(m)
				} else {
					e.retire(m)
				}
			}
			m = next
		}
	}
}

// cancelRemainder cancels what is left of an order that is not resting,
// telling session to.
func (e *Engine) cancelRemainder(o *order, r CancelReason, to int32) {
	e.canceled(o, r, to)
	o.qty = 0
}

// canceled appends the EvCanceled of what is left of o, telling session
// to. It only reads o.
func (e *Engine) canceled(o *order, r CancelReason, to int32) {
	ev := e.event(EvCanceled)
	ev.Reason, ev.Side = uint8(r), o.side
	ev.Instrument, ev.Account, ev.OrderID, ev.Ref = e.books[o.bookIdx].inst.ID, e.accts[o.acct].id, o.id, o.ref
	ev.Price, ev.Qty = o.eventPrice(), e.leaves(o)
	ev.Session, ev.SessSeq = e.to(to)
}

// cancelResting cancels a resting or parked order and frees it, telling
// session to. It only reads o: a freed order is initialised whole when it
// is used again, and a store to an order that is not in the cache (a
// random cancel) costs as much as the load that found it.
func (e *Engine) cancelResting(o *order, r CancelReason, to int32) {
	e.canceled(o, r, to)
	e.retire(o)
}

// retire takes an open order, resting or parked, out of the book and the
// index and frees it, without writing to it.
func (e *Engine) retire(o *order) {
	if o.level != nil {
		e.unlinkLevel(o)
	} else {
		e.unpark(o)
	}
	e.removeOpen(o)
	e.freeOrder(o)
}

func (e *Engine) cancel(c *Command) {
	a := e.ca
	o := e.orders.get(c.OrderID)
	if o == nil {
		e.reject(c, RejectUnknownOrder)
		return
	}
	if o.acct != a.idx {
		e.reject(c, RejectNotOwner)
		return
	}
	e.touch(e.books[o.bookIdx])
	e.cancelResting(o, CancelUser, e.cs) // the answer goes to the session that asked
}

func (e *Engine) replace(c *Command) {
	a := e.ca
	if c.Ref <= e.sess[e.cs].lastRef {
		e.reject(c, RejectStaleClientRef)
		return
	}
	o := e.orders.get(c.OrderID)
	if o == nil {
		e.reject(c, RejectUnknownOrder)
		return
	}
	if o.acct != a.idx {
		e.reject(c, RejectNotOwner)
		return
	}
	b := e.books[o.bookIdx]
	x := e.extOf(o)
	parked := e.parked(o)
	price, total := o.price, e.leaves(o)+o.filled
	if c.Price != 0 {
		price = c.Price
	}
	if c.Qty != 0 {
		total = c.Qty
	}
	var display, stop Price
	if x != nil {
		display, stop = Price(x.display), x.stop
	}
	if c.Display != 0 {
		display = Price(c.Display)
	}
	if c.StopPrice != 0 {
		stop = c.StopPrice
	}
	switch {
	case b.phase == PhaseHalted:
		e.reject(c, RejectHalted)
		return
	case b.phase == PhaseClosed:
		e.reject(c, RejectClosed)
		return
	case c.Price < 0 || price > MaxPrice || c.Price != 0 && o.typ == Stop:
		e.reject(c, RejectBadPrice)
		return
	case c.Qty < 0:
		e.reject(c, RejectBadQuantity)
		return
	case total > b.inst.MaxQty:
		e.reject(c, RejectOverMaxQuantity)
		return
	case price != o.price && !b.inBand(price):
		e.reject(c, RejectOutsidePriceBand)
		return
	case c.StopPrice < 0 || c.StopPrice != 0 && (!parked || c.StopPrice > MaxPrice || stopReached(o.side, stop, b.refPrice)):
		e.reject(c, RejectBadStopPrice)
		return
	case c.Display < 0 || c.Display != 0 && (Qty(display) > total || o.typ == Stop || !rests(o.tif)):
		e.reject(c, RejectBadDisplay)
		return
	}
	opp := b.opposite(o.side)
	if !parked && b.phase == PhaseContinuous && o.tif == PostOnly && opp.best != nil && crosses(o.side, opp.best.price, price) {
		e.reject(c, RejectWouldCross)
		return
	}

	e.sess[e.cs].lastRef = c.Ref
	e.touch(b)
	origRef := o.ref
	o.ref = c.Ref
	if total <= o.filled {
		ev := e.event(EvCanceled)
		ev.Reason, ev.Side, ev.Instrument, ev.Account = uint8(CancelReplaced), o.side, b.inst.ID, a.id
		ev.OrderID, ev.Ref, ev.OrigRef, ev.Price, ev.Qty = o.id, o.ref, origRef, o.eventPrice(), e.leaves(o)
		ev.Session, ev.SessSeq = e.to(e.cs)
		e.retire(o)
		return
	}
	leaves := total - o.filled
	replaced := func() {
		ev := e.event(EvReplaced)
		ev.Side, ev.Instrument, ev.Account, ev.OrderID, ev.Ref, ev.OrigRef = o.side, b.inst.ID, a.id, o.id, o.ref, origRef
		ev.Price, ev.Qty, ev.Leaves = o.eventPrice(), total, leaves
		ev.Session, ev.SessSeq = e.to(e.cs)
	}
	if display != 0 && x == nil {
		x = e.allocExt(o)
	}
	l := o.level
	switch {
	case parked:
		// A parked stop takes its new terms and a new place among the
		// stops.
		e.unpark(o)
		o.price, o.qty = price, leaves
		x.stop, x.display = stop, Qty(display)
		o.time = e.time
		replaced()
		e.park(b, o)
	case price == o.price && leaves <= e.leaves(o) && (x == nil || Qty(display) == x.display):
		// Same price, not more: keeps its place. The hidden reserve
		// shrinks first.
		e.touchLevel(b, o.side, l)
		cut := e.leaves(o) - leaves
		if x != nil {
			h := min(cut, x.hidden)
			x.hidden -= h
			l.hidden -= h
			cut -= h
		}
		l.qty -= cut
		o.qty -= cut
		replaced()
	case price == o.price:
		// More quantity or a new display: goes to the back of the level.
		e.removeFromLevel(o)
		e.consolidate(o)
		o.qty = leaves
		if x != nil {
			x.display = Qty(display)
		}
		o.time = e.time
		replaced()
		e.rest(b, o)
	default:
		// New price: loses its place and may trade.
		e.removeFromLevel(o)
		e.consolidate(o)
		o.price, o.qty, o.time = price, leaves, e.time
		if x != nil {
			x.display = Qty(display)
		}
		replaced()
		e.enter(b, o, true)
	}
}

func (e *Engine) massCancel(c *Command) {
	a := e.ca
	if c.Instrument != 0 && e.book(c.Instrument) == nil {
		e.reject(c, RejectUnknownInstrument)
		return
	}
	n := Qty(0)
	for o := a.head; o != nil; {
		next := o.anext
		if b := e.books[o.bookIdx]; (c.Instrument == 0 || b.inst.ID == c.Instrument) && (!c.SessionOnly || o.sess == e.cs) {
			e.touch(b)
			e.cancelResting(o, CancelMass, o.sess)
			n++
		}
		o = next
	}
	ev := e.event(EvMassCanceled)
	ev.Instrument, ev.Account, ev.Qty = c.Instrument, a.id, n
	ev.Session, ev.SessSeq = e.to(e.cs)
}

// addToLevel appends o to the back of its price level on side s, creating
// the level (or reusing it, if it emptied and was kept) if needed.
func (e *Engine) addToLevel(s *bookSide, o *order) {
	l := s.best
	if l == nil || l.price != o.price {
		l = e.levelFor(s, o.price)
		if l.count == 0 {
			l.gen = 0 // its entry in empties, if any, is stale now
			if s.best == nil || s.better(o.price, s.best.price) {
				s.best = l
			}
		}
	}
	e.touchLevel(e.books[o.bookIdx], s.side, l)
	o.level = l
	o.prev, o.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = o
	} else {
		l.head = o
	}
	l.tail = o
	l.qty += o.qty
	l.count++
	if o.ext != 0 {
		l.hidden += e.exts[o.ext-1].hidden
	}
}

// removeFromLevel unlinks a resting order from its level, which it
// leaves with no level and no neighbours.
func (e *Engine) removeFromLevel(o *order) {
	e.unlinkLevel(o)
	o.prev, o.next, o.level = nil, nil, nil
}

// unlinkLevel takes a resting order out of its level's queue without
// writing to it. A level that empties stays in the tree for reuse (see
// bookSide); the oldest kept empty level leaves it to make room.
func (e *Engine) unlinkLevel(o *order) {
	l := o.level
	e.touchLevel(e.books[o.bookIdx], o.side, l)
	if o.prev != nil {
		o.prev.next = o.next
	} else {
		l.head = o.next
	}
	if o.next != nil {
		o.next.prev = o.prev
	} else {
		l.tail = o.prev
	}
	l.qty -= o.qty
	l.count--
	if o.ext != 0 {
		l.hidden -= e.exts[o.ext-1].hidden
	}
	if l.count == 0 {
		s := e.books[o.bookIdx].sideOf(o.side)
		if s.best == l {
			s.best = s.nextBest(l)
		}
		e.levelGen++
		l.gen = e.levelGen
		old := s.empties[s.emptyAt]
		s.empties[s.emptyAt] = emptyRef{gen: l.gen, id: l.id}
		if s.emptyAt++; s.emptyAt == emptyKeep {
			s.emptyAt = 0
		}
		if old.gen != 0 {
			if ol := e.levelByID(old.id); ol.gen == old.gen {
				e.dropLevel(s, ol)
			}
		}
	}
}

// addOpen makes a newly resting order findable by ID and by account.
func (e *Engine) addOpen(o *order) {
	e.orders.put(o)
	if x := e.extOf(o); x != nil && x.expire != 0 {
		e.expiries.Set(expKey{at: x.expire, id: o.id, o: o})
		e.wake = min(e.wake, x.expire)
	}
	a := e.accts[o.acct]
	a.open[o.bookIdx]++
	o.aprev, o.anext = a.tail, nil
	if a.tail != nil {
		a.tail.anext = o
	} else {
		a.head = o
	}
	a.tail = o
}

// removeOpen undoes addOpen, without writing to o (which is freed next).
func (e *Engine) removeOpen(o *order) {
	e.orders.del(o)
	if x := e.extOf(o); x != nil && x.expire != 0 {
		e.expiries.Delete(expKey{at: x.expire, id: o.id})
	}
	a := e.accts[o.acct]
	a.open[o.bookIdx]--
	if o.aprev != nil {
		o.aprev.anext = o.anext
	} else {
		a.head = o.anext
	}
	if o.anext != nil {
		o.anext.aprev = o.aprev
	} else {
		a.tail = o.aprev
	}
}

const slabSize = 1024

// levelSlab is how many levels are allocated at a time.
const levelSlab = 1024

// addLevelSlab makes at least n more free levels.
func (e *Engine) addLevelSlab(n int) {
	for ; n > 0; n -= levelSlab {
		slab := new([levelSlab]level)
		e.levelSlabs = append(e.levelSlabs, slab)
		base := int32(len(e.levelSlabs)-1) * levelSlab
		for i := range slab {
			slab[i].id = base + int32(i)
			slab[i].nextFree = e.freeLevels
			e.freeLevels = &slab[i]
		}
	}
}

func (e *Engine) levelByID(id int32) *level {
	return &e.levelSlabs[uint32(id)/levelSlab][uint32(id)%levelSlab]
}

func (e *Engine) allocOrder() *order { return e.orders.alloc() }

// freeOrder gives o back to the store (and its extension, if it has one).
// It does not write to o: whoever takes it next sets every field.
func (e *Engine) freeOrder(o *order) {
	if o.ext != 0 {
		e.extFree = append(e.extFree, o.ext)
	}
	e.orders.release(o)
}

func (e *Engine) allocLevel() *level {
	if e.freeLevels == nil {
		e.addLevelSlab(slabSize)
	}
	l := e.freeLevels
	e.freeLevels = l.nextFree
	l.nextFree = nil
	return l
}

func (e *Engine) freeLevel(l *level) {
	*l = level{nextFree: e.freeLevels, id: l.id}
	e.freeLevels = l
}
