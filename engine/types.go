package engine

// Price is a price in ticks of its instrument. Valid limit prices are in
// [1, MaxPrice].
type Price int64

// Qty is a quantity in lots of its instrument. Valid order quantities are in
// [1, Instrument.MaxQty].
type Qty int64

// OrderID identifies an order. The engine assigns them from 1 upwards, one per
// accepted new order, so they depend only on the command stream.
type OrderID uint64

// TradeID identifies one fill. Assigned from 1 upwards, one per fill.
type TradeID uint64

// Seq is the sequence number the pipeline stamps on every command. Events
// carry the Seq of the command that caused them.
type Seq uint64

// AccountID identifies the account that owns an order. The engine trusts it:
// authentication happens before a command reaches the engine.
type AccountID uint32

// InstrumentID identifies an instrument; valid IDs are 1..MaxInstrumentID. In
// a MassCancel command zero means every instrument.
type InstrumentID uint32

// ClientRef is the client's own reference for a new order or a replace. Per
// session they must strictly increase (like OUCH's UserRefNum per port): a
// command whose ref is not greater than the last one its session used is
// rejected with RejectStaleClientRef, which makes resubmission after a
// reconnect safe. Sessions of one account never collide.
type ClientRef uint64

// Limits on values the engine accepts.
const (
	// MaxPrice is the largest accepted price in ticks. It leaves room for
	// band arithmetic (price * basis points) without overflow.
	MaxPrice Price = 1 << 48
	// MaxInstrumentID is the largest accepted instrument ID.
	MaxInstrumentID InstrumentID = 1<<16 - 1
)

// Side is the side of an order. The zero value is invalid.
type Side uint8

// Sides.
const (
	Buy  Side = 1
	Sell Side = 2
)

// OrderType is the type of an order. The zero value is invalid.
type OrderType uint8

// Order types.
const (
	// Limit orders carry a price and never trade worse than it.
	Limit OrderType = 1
	// Market orders carry no price. They sweep the opposite side up to a
	// protection price: the reference price plus (buy) or minus (sell) the
	// instrument's price band. Whatever is left is canceled; a market order
	// never rests.
	Market OrderType = 2
	// Stop orders (stop market) carry a StopPrice and no price. They are
	// parked outside the book, invisible to market data, until the last
	// trade price reaches the stop price (rises to it for a buy, falls to
	// it for a sell); then they become Market orders, keeping their ID.
	// TIF must be IOC.
	Stop OrderType = 3
	// StopLimit orders carry a StopPrice and a limit Price. They are parked
	// like Stop orders and become Limit orders when triggered. TIF GTC,
	// IOC, GTD or Day.
	StopLimit OrderType = 4
)

// TimeInForce says what happens to the part of an order that does not trade
// at once. The zero value is invalid.
type TimeInForce uint8

// Times in force.
const (
	// GTC (good till canceled) rests the remainder on the book.
	GTC TimeInForce = 1
	// IOC (immediate or cancel) cancels the remainder.
	IOC TimeInForce = 2
	// FOK (fill or kill) trades the whole quantity at once or is rejected
	// with RejectFOKUnfillable without touching the book.
	FOK TimeInForce = 3
	// PostOnly rests the whole order; it is rejected with RejectWouldCross
	// if it would take liquidity. Limit orders only.
	PostOnly TimeInForce = 4
	// GTD (good till date) rests like GTC until Command.Expire: the order
	// is canceled with CancelExpired by the first command whose time is at
	// or after it (the pipeline sends a CmdClock when none comes).
	GTD TimeInForce = 5
	// Day rests like GTC until its instrument closes (PhaseClosed, by an
	// operator or the schedule), when it is canceled with CancelExpired.
	Day TimeInForce = 6
)

// STPMode is the self-trade prevention mode. An order never trades with an
// order of the same account; the mode of the incoming (taking) order says
// what happens instead.
type STPMode uint8

// Self-trade prevention modes. STPDefault uses the account's default, which
// is STPCancelResting unless configured otherwise.
const (
	STPDefault        STPMode = 0
	STPCancelResting  STPMode = 1 // cancel the resting order, keep matching
	STPCancelIncoming STPMode = 2 // cancel the rest of the incoming order
	STPCancelBoth     STPMode = 3 // cancel both
)

// CommandKind says what a command asks. The zero value is invalid.
type CommandKind uint8

// Command kinds. The values are part of the journal format: never reuse one.
const (
	CmdNewOrder   CommandKind = 1
	CmdCancel     CommandKind = 2
	CmdReplace    CommandKind = 3
	CmdMassCancel CommandKind = 4
	// CmdClock carries only a time: it runs what is due by then (expiries,
	// the end of a volatility interruption, scheduled phase changes, a
	// stop cascade left over from the last command). Every command does
	// that first; the pipeline sends CmdClock when the wall clock passes
	// Engine.NextWake and no other command comes.
	CmdClock CommandKind = 5
	// CmdPhase is an operator's phase change of Instrument: Action says
	// which. Accounts not configured as operators are rejected with
	// RejectNotOperator.
	CmdPhase CommandKind = 6
)

// Phase is the trading phase of an instrument. The values are wire-stable.
type Phase uint8

// Phases.
const (
	// PhaseContinuous: orders match as they arrive.
	PhaseContinuous Phase = 1
	// PhaseHalted: new orders and replaces are rejected with RejectHalted;
	// cancels work; nothing trades.
	PhaseHalted Phase = 2
	// PhaseAuction (pre-open call): limit orders accumulate without
	// matching; the indicative uncrossing price and volume are published
	// (EvIndicative) as they change; ActUncross ends it.
	PhaseAuction Phase = 3
	// PhaseClosed: new orders and replaces are rejected with RejectClosed;
	// Day orders were canceled on entry.
	PhaseClosed Phase = 4
	// PhaseVolatility: a volatility interruption, a call auction started
	// by a trade that would have printed outside the instrument's
	// volatility band. It behaves as PhaseAuction and uncrosses by itself
	// when its time is up.
	PhaseVolatility Phase = 5
)

// PhaseAction is what a CmdPhase asks. The values are wire-stable.
type PhaseAction uint8

// Phase actions and the phases they are allowed from (otherwise the
// command is rejected with RejectBadPhaseAction and changes nothing).
const (
	ActHalt        PhaseAction = 1 // continuous, auction, volatility → halted
	ActResume      PhaseAction = 2 // halted → continuous (uncrossing first if the book is crossed)
	ActOpenAuction PhaseAction = 3 // continuous, halted, closed → auction
	ActUncross     PhaseAction = 4 // auction, volatility → uncross, then continuous
	ActClose       PhaseAction = 5 // any phase but closed → closed (Day orders expire)
)

// Command is one sequenced instruction to the engine. It is a plain value
// with no pointers, so a ring of them can be preallocated and a journal can
// store them byte for byte.
//
// Fields by kind:
//
//	CmdNewOrder:   Account, Instrument, Side, Type, TIF, STP, Price (limit
//	               only), Qty, Ref.
//	CmdCancel:     Account, OrderID.
//	CmdReplace:    Account, OrderID, Ref (the new ref), Price (new price, 0
//	               keeps it), Qty (new total quantity including what has
//	               already filled, 0 keeps it).
//	CmdMassCancel: Account, Instrument (0 for all instruments),
//	               SessionOnly (only the orders Session entered: the
//	               server's cancel-on-disconnect).
//
// Every command also names its Session: refs are checked per session, the
// orders it enters belong to the session, and its events are numbered in
// the streams of the sessions they go to (see Event.Session).
type Command struct {
	Seq        Seq
	Time       int64 // nanoseconds since the Unix epoch, stamped by the pipeline
	Kind       CommandKind
	Side       Side
	Type       OrderType
	TIF        TimeInForce
	STP        STPMode
	Account    AccountID
	Instrument InstrumentID
	Price      Price
	Qty        Qty
	OrderID    OrderID
	Ref        ClientRef
	Session    SessionID
	// SessionOnly limits a mass cancel to the orders of Session.
	SessionOnly bool

	// StopPrice is the trigger price of Stop and StopLimit orders (for a
	// replace of a parked stop, its new trigger; 0 keeps it).
	StopPrice Price
	// Display makes a limit order an iceberg: only Display lots show in
	// the book at a time, the rest is a hidden reserve (0: all visible;
	// for a replace of an iceberg, 0 keeps its display).
	Display Qty
	// Expire is when a GTD order expires, in the engine's time.
	Expire int64
	// Action is the phase change a CmdPhase asks for.
	Action PhaseAction
}

// EventKind says what an event reports. The values are wire-stable.
type EventKind uint8

// Event kinds.
const (
	// EvAccepted: a new order passed validation and got OrderID. Price is
	// the limit price (0 for market orders), Qty and Leaves the quantity.
	EvAccepted EventKind = 1
	// EvRejected: the command changed nothing. Reason is a RejectReason;
	// OrderID and Ref echo the command.
	EvRejected EventKind = 2
	// EvFill: a trade. Account, OrderID, Ref, Side and Leaves describe the
	// taker; the Maker fields the resting order. Price is the maker's price.
	EvFill EventKind = 3
	// EvCanceled: an order left the book, or an order's remainder was
	// canceled. Qty is the canceled quantity, Reason a CancelReason.
	EvCanceled EventKind = 4
	// EvReplaced: a replace took effect. Price is the new price, Qty the new
	// total quantity, Leaves the new open quantity, Ref the new and OrigRef
	// the previous client reference.
	EvReplaced EventKind = 5
	// EvMassCanceled ends the response to a mass cancel; Qty is the number
	// of orders canceled (each also has its own EvCanceled).
	EvMassCanceled EventKind = 6
	// EvTopOfBook: the best bid or ask of Instrument changed (price or
	// quantity). Zero price and quantity mean the side is empty. Emitted
	// after the command's other events, once per instrument changed.
	EvTopOfBook EventKind = 7
	// EvLevel: one price level of Instrument changed. Side and Price name
	// the level, Qty is its new total open quantity and Orders its new
	// number of orders; zero quantity means the level is gone. Emitted
	// after the command's order events and before its EvTopOfBook, once
	// per level whose total or count differs from before the command,
	// ordered by instrument, side (buy first) and price (ascending).
	EvLevel EventKind = 8
	// EvTriggered: the parked stop OrderID was triggered by the last trade
	// price and enters the book now as a market (Price 0) or limit order
	// of Qty lots; its fills follow. A message of its session.
	EvTriggered EventKind = 9
	// EvPhase: Instrument entered phase Reason (a Phase). Price is, for a
	// volatility interruption, the price that would have printed outside
	// the band. A market data message (FeedSeq); when an operator's
	// command caused it, also that session's answer.
	EvPhase EventKind = 10
	// EvIndicative: during a call auction, the price (0: none) at which
	// the book would uncross now and the volume (Qty) it would trade
	// there; Leaves is the surplus left on side Side. Emitted, after the
	// command's EvLevels, whenever it changes. A market data message.
	EvIndicative EventKind = 11
)

// RejectReason says why a command was rejected. The values are wire-stable:
// never reuse or renumber one.
type RejectReason uint8

// Reject reasons.
const (
	RejectUnknownCommand    RejectReason = 1  // command kind not known
	RejectUnknownInstrument RejectReason = 2  // no instrument with that ID
	RejectBadSide           RejectReason = 3  // side not buy or sell
	RejectBadType           RejectReason = 4  // order type not known
	RejectBadTimeInForce    RejectReason = 5  // TIF not known or not allowed for the type
	RejectBadSTP            RejectReason = 6  // self-trade prevention mode not known
	RejectBadPrice          RejectReason = 7  // price not in [1, MaxPrice] (or off the tick grid, at the edges)
	RejectBadQuantity       RejectReason = 8  // quantity not positive (or off the lot grid, at the edges)
	RejectOverMaxQuantity   RejectReason = 9  // quantity over the instrument's maximum
	RejectOutsidePriceBand  RejectReason = 10 // price further from the reference price than the band
	RejectWouldCross        RejectReason = 11 // post-only order would take liquidity
	RejectFOKUnfillable     RejectReason = 12 // fill-or-kill cannot fill completely now
	RejectUnknownOrder      RejectReason = 13 // no open order with that ID
	RejectNotOwner          RejectReason = 14 // the order belongs to another account
	RejectStaleClientRef    RejectReason = 15 // client ref not greater than the account's last
	RejectTooManyOpenOrders RejectReason = 16 // account at its open-order limit for the instrument
	RejectTooManySessions   RejectReason = 17 // the account already has MaxSessionsPerAccount other sessions
	RejectBadStopPrice      RejectReason = 18 // stop price not in [1, MaxPrice], or already reached by the last trade price
	RejectBadDisplay        RejectReason = 19 // display quantity negative, over the quantity, or on an order that cannot rest
	RejectBadExpiry         RejectReason = 20 // GTD without an expiry after the engine's time, or an expiry on another TIF
	RejectHalted            RejectReason = 21 // the instrument is halted: only cancels are taken
	RejectClosed            RejectReason = 22 // the instrument is closed: only cancels are taken
	RejectNotInPhase        RejectReason = 23 // order type or TIF not taken in a call auction (market, IOC, FOK, post-only)
	RejectNotOperator       RejectReason = 24 // phase commands are for operator accounts
	RejectBadPhaseAction    RejectReason = 25 // action not known, or not allowed from the current phase
)

// CancelReason says why an order or remainder was canceled. Wire-stable.
type CancelReason uint8

// Cancel reasons.
const (
	CancelUser      CancelReason = 1 // the owner canceled it
	CancelUnfilled  CancelReason = 2 // IOC or market remainder
	CancelSelfTrade CancelReason = 3 // self-trade prevention
	CancelMass      CancelReason = 4 // mass cancel
	CancelReplaced  CancelReason = 5 // replaced to a quantity not above what had filled
	CancelExpired   CancelReason = 6 // a GTD order's expiry passed, or a Day order's instrument closed
)

// FillAuction in an EvFill's Reason marks a trade of a call auction's
// uncrossing (no aggressor: the taker fields hold the later of the two
// orders). Zero: a continuous-trading fill, the taker the aggressor.
const FillAuction uint8 = 1

// Event is one outcome of a command. Like Command it is a plain value; the
// engine appends events to a caller-owned slice.
type Event struct {
	Seq        Seq   // of the command that caused it
	Time       int64 // of the command that caused it
	Kind       EventKind
	Reason     uint8 // RejectReason, CancelReason, the Phase of an EvPhase, FillAuction
	Side       Side
	Instrument InstrumentID
	Account    AccountID
	Orders     int32 // EvLevel only: orders at the level
	OrderID    OrderID
	Ref        ClientRef
	OrigRef    ClientRef
	Price      Price
	Qty        Qty
	Leaves     Qty

	// Fill only: the resting order.
	MakerAccount AccountID
	MakerOrder   OrderID
	MakerRef     ClientRef
	MakerLeaves  Qty
	TradeID      TradeID

	// TopOfBook only (Price and Qty are unused).
	BidPrice Price
	BidQty   Qty
	AskPrice Price
	AskQty   Qty

	// The session stream this event is a message of, and its number there
	// (1, 2, 3, … per session; 0: not a session message, as EvLevel and
	// EvTopOfBook, or a reject of a session that could not be opened).
	// Answers to a command (accepted, rejected, replaced, canceled by a
	// cancel or replace, mass canceled) go to the command's session; what
	// happens to an order otherwise (fills, self-trade and mass cancels,
	// an IOC remainder) goes to the session that entered it. A fill is
	// also a message of the maker's session: MakerSession, MakerSessSeq.
	Session      SessionID
	SessSeq      uint64
	MakerSession SessionID
	MakerSessSeq uint64
	// FeedSeq numbers the instrument's market data: every EvFill (a trade)
	// and EvLevel of an instrument, 1, 2, 3, … from the journal's start.
	FeedSeq uint64
}
