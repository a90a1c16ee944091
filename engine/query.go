package engine

// Queries read the engine's state without changing it. They are answered by
// the goroutine that owns the engine, between commands.

// InstrumentInfo describes an instrument and its current reference price.
type InstrumentInfo struct {
	Instrument
	RefPrice Price // last trade, or the start price before the first trade
	Phase    Phase
	// The indicative uncrossing price and volume during a call auction
	// (zero when none or not in an auction).
	IndicativePrice Price
	IndicativeQty   Qty
}

func (b *book) info() InstrumentInfo {
	return InstrumentInfo{Instrument: b.inst, RefPrice: b.refPrice, Phase: b.phase,
		IndicativePrice: b.indPrice, IndicativeQty: b.indQty}
}

// Instruments appends every instrument, in configuration order, to out.
func (e *Engine) Instruments(out []InstrumentInfo) []InstrumentInfo {
	for _, b := range e.books {
		out = append(out, b.info())
	}
	return out
}

// Instrument returns the instrument with the given ID.
func (e *Engine) Instrument(id InstrumentID) (InstrumentInfo, bool) {
	b := e.book(id)
	if b == nil {
		return InstrumentInfo{}, false
	}
	return b.info(), true
}

// PriceBand returns the lowest and highest price a limit order on the
// instrument may have now (the band around the reference price), or ok
// false when the instrument has no band or does not exist.
func (e *Engine) PriceBand(id InstrumentID) (lo, hi Price, ok bool) {
	b := e.book(id)
	if b == nil || b.inst.BandBps == 0 || b.refPrice == 0 {
		return 0, 0, false
	}
	lo, hi = b.band()
	return lo, hi, true
}

// Top returns the best bid and ask of an instrument.
func (e *Engine) Top(id InstrumentID) (TopOfBook, bool) {
	b := e.book(id)
	if b == nil {
		return TopOfBook{}, false
	}
	return b.top(), true
}

// LevelInfo is one aggregated price level.
type LevelInfo struct {
	Price  Price
	Qty    Qty
	Orders int32
}

// Depth appends up to n levels of one side of an instrument, best first, to
// out. n <= 0 means every level.
func (e *Engine) Depth(id InstrumentID, s Side, n int, out []LevelInfo) []LevelInfo {
	b := e.book(id)
	if b == nil || (s != Buy && s != Sell) {
		return out
	}
	k := 0
	b.sideOf(s).scan(func(l *level) bool {
		if n > 0 && k == n {
			return false
		}
		k++
		out = append(out, LevelInfo{Price: l.price, Qty: l.qty, Orders: l.count})
		return true
	})
	return out
}

// OrderInfo describes an open order.
type OrderInfo struct {
	ID         OrderID
	Account    AccountID
	Instrument InstrumentID
	Side       Side
	TIF        TimeInForce
	Type       OrderType // Stop or StopLimit while parked; Market or Limit after
	Price      Price
	StopPrice  Price // the trigger of a parked stop; 0 otherwise
	Display    Qty   // an iceberg's slice size; 0 otherwise
	Expire     int64 // a GTD order's expiry
	Leaves     Qty   // open quantity, an iceberg's hidden reserve included
	Filled     Qty
	Ref        ClientRef
	Time       int64     // when it took its current place in the queue
	Session    SessionID // the session that entered it
}

func (e *Engine) info(o *order) OrderInfo {
	i := OrderInfo{
		ID: o.id, Account: e.accts[o.acct].id, Instrument: e.books[o.bookIdx].inst.ID, Side: o.side, TIF: o.tif,
		Type: o.typ, Price: o.price, Leaves: e.leaves(o), Filled: o.filled, Ref: o.ref, Time: o.time,
		Session: e.sess[o.sess].name,
	}
	if x := e.extOf(o); x != nil {
		i.StopPrice, i.Display, i.Expire = x.stop, x.display, x.expire
	}
	return i
}

// Order returns an open order. Orders that have filled or been canceled are
// no longer known; their history is in the event stream (and the journal).
func (e *Engine) Order(id OrderID) (OrderInfo, bool) {
	o := e.orders.get(id)
	if o == nil {
		return OrderInfo{}, false
	}
	return e.info(o), true
}

// OpenOrders appends an account's open orders, oldest first, to out.
func (e *Engine) OpenOrders(a AccountID, out []OrderInfo) []OrderInfo {
	acct := e.lookupAccount(a)
	if acct == nil {
		return out
	}
	for o := acct.head; o != nil; o = o.anext {
		out = append(out, e.info(o))
	}
	return out
}

// OpenOrdersPage appends up to limit of an account's open orders to out,
// oldest first, starting after order id after (0: from the oldest), and
// reports whether more follow. An account's open orders are kept in the
// order they were entered, which is order-id order, so pages read one
// after another list every order that stayed open, once.
func (e *Engine) OpenOrdersPage(a AccountID, after OrderID, limit int, out []OrderInfo) ([]OrderInfo, bool) {
	acct := e.lookupAccount(a)
	if acct == nil {
		return out, false
	}
	o := acct.head
	if after != 0 {
		if p := e.orders.get(after); p != nil && p.acct == acct.idx {
			o = p.anext // still open: go on from it
		} else {
			for o != nil && o.id <= after {
				o = o.anext
			}
		}
	}
	for n := 0; o != nil; o = o.anext {
		if n == limit {
			return out, true
		}
		out = append(out, e.info(o))
		n++
	}
	return out, false
}

// OpenOrderCount returns the number of open orders in the engine.
func (e *Engine) OpenOrderCount() int { return e.orders.len() }

// FeedSeq returns the number of the instrument's last market data event
// (Event.FeedSeq of its last trade or level change; 0 before any, or for
// an unknown instrument).
func (e *Engine) FeedSeq(id InstrumentID) uint64 {
	if b := e.book(id); b != nil {
		return b.feedSeq
	}
	return 0
}

// LastTradeID returns the ID of the last trade; trade IDs count from 1, so
// it is also the number of trades since the engine began.
func (e *Engine) LastTradeID() TradeID { return e.nextTrade }

// IsOperator reports whether the account was configured as an operator
// (the engine's configuration, kept in its snapshots).
func (e *Engine) IsOperator(id AccountID) bool { return e.operators[id] }
