package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/matchd/matchd/engine"
)

var be = binary.BigEndian

// Body sizes of the fixed-size messages (part of the wire format).
const (
	loginSize         = 55
	loginV1Size       = 39 // a version 1 Login: parsed only to answer LoginBadVersion
	newOrderSize      = 32
	cancelSize        = 8
	replaceSize       = 32
	massCancelSize    = 4
	querySize         = 18
	loginAcceptedSize = 34
	notLeaderSize     = 8 + NotLeaderAddrSize
	reportSize        = 41
	acceptedSize      = reportSize + 24
	rejectedSize      = reportSize + 1
	executedSize      = reportSize + 33
	canceledSize      = reportSize + 9
	replacedSize      = reportSize + 32
	massCanceledSize  = reportSize + 8
	topSize           = 49
	levelSize         = 20
	orderSize         = 54
	depthHeadSize     = 21
	ordersHeadSize    = 15
)

// TokenSize is the size of the login token field; shorter tokens are
// padded with zero bytes.
const TokenSize = 32

// Login flags.
const (
	// FlagCancelOnDisconnect cancels the open orders this session entered
	// when its connection ends (with a Logout or without). Orders the
	// account entered from its other sessions stay.
	FlagCancelOnDisconnect uint8 = 1 << 0
	// FlagTakeOver logs in to a named session even if it has a
	// connection: that connection is ended (Goodbye 9). A client resuming
	// after losing its connection sets it (the server may not have
	// noticed the loss yet).
	FlagTakeOver uint8 = 1 << 1
)

// SessionNameSize is the size of a session name: printable ASCII
// (0x21-0x7e), left-aligned, padded with zero bytes.
const SessionNameSize = 8

// SessionName is a session's name on the wire.
type SessionName [SessionNameSize]byte

// ID is the engine's name for the session (the 8 bytes big-endian).
func (n SessionName) ID() engine.SessionID { return engine.SessionID(be.Uint64(n[:])) }

// NameOf is the wire name of an engine session.
func NameOf(id engine.SessionID) SessionName {
	var n SessionName
	be.PutUint64(n[:], uint64(id))
	return n
}

// Valid reports whether n is a name a client may use: 1 to 8 printable
// ASCII bytes, then only zero bytes.
func (n SessionName) Valid() bool {
	if n[0] == 0 {
		return false
	}
	end := false
	for _, c := range n {
		if c == 0 {
			end = true
			continue
		}
		if end || c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// String is the name without its padding.
func (n SessionName) String() string {
	i := 0
	for i < len(n) && n[i] != 0 {
		i++
	}
	return string(n[:i])
}

// ParseSessionName makes a SessionName of s, which must be 1 to 8
// printable ASCII characters.
func ParseSessionName(s string) (SessionName, error) {
	var n SessionName
	if len(s) == 0 || len(s) > SessionNameSize {
		return n, fmt.Errorf("wire: session name %q: 1 to %d characters", s, SessionNameSize)
	}
	copy(n[:], s)
	if !n.Valid() {
		return n, fmt.Errorf("wire: session name %q: printable ASCII without spaces only", s)
	}
	return n, nil
}

// Login opens a session. Offsets in the body:
//
//	0 version u16 | 2 account u32 | 6 flags u8 | 7 token [32]byte |
//	39 session [8]byte | 47 next u64
//
// session names the session (all zero: the server names a new one and
// says its name in LoginAccepted); next is the number of the first message
// of the session's stream the client wants: the server replays from there,
// then continues live. next 0 replays nothing.
type Login struct {
	Version uint16
	Account engine.AccountID
	Flags   uint8
	Token   [TokenSize]byte
	Session SessionName
	Next    uint64
}

// Append appends the frame.
func (m *Login) Append(b []byte) []byte {
	b = appendHeader(b, TypeLogin, loginSize)
	b = be.AppendUint16(b, m.Version)
	b = be.AppendUint32(b, uint32(m.Account))
	b = append(b, m.Flags)
	b = append(b, m.Token[:]...)
	b = append(b, m.Session[:]...)
	return be.AppendUint64(b, m.Next)
}

// Decode fills m from a body returned by Parse. A version 1 body (39
// bytes) leaves Session and Next zero; only its Version matters.
func (m *Login) Decode(body []byte) {
	_ = body[loginV1Size-1]
	m.Version = be.Uint16(body)
	m.Account = engine.AccountID(be.Uint32(body[2:]))
	m.Flags = body[6]
	copy(m.Token[:], body[7:])
	m.Session, m.Next = SessionName{}, 0
	if len(body) >= loginSize {
		copy(m.Session[:], body[39:])
		m.Next = be.Uint64(body[47:])
	}
}

// NewOrder enters an order. Offsets:
//
//	0 ref u64 | 8 instrument u32 | 12 side u8 | 13 type u8 | 14 tif u8 |
//	15 stp u8 | 16 price i64 (ticks; 0 for market) | 24 qty i64 (lots)
type NewOrder struct {
	Ref        engine.ClientRef
	Instrument engine.InstrumentID
	Side       engine.Side
	Type       engine.OrderType
	TIF        engine.TimeInForce
	STP        engine.STPMode
	Price      engine.Price
	Qty        engine.Qty
}

// Append appends the frame.
func (m *NewOrder) Append(b []byte) []byte {
	b = appendHeader(b, TypeNewOrder, newOrderSize)
	b = be.AppendUint64(b, uint64(m.Ref))
	return appendOrderFields(b, m.Instrument, m.Side, m.Type, m.TIF, m.STP, m.Price, m.Qty)
}

// Decode fills m from a body returned by Parse.
func (m *NewOrder) Decode(body []byte) {
	_ = body[newOrderSize-1]
	m.Ref = engine.ClientRef(be.Uint64(body))
	decodeOrderFields(body[8:], &m.Instrument, &m.Side, &m.Type, &m.TIF, &m.STP, &m.Price, &m.Qty)
}

// The order fields NewOrder and Accepted share, 24 bytes: instrument u32 |
// side u8 | type u8 | tif u8 | stp u8 | price i64 | qty i64.
func appendOrderFields(b []byte, in engine.InstrumentID, side engine.Side, typ engine.OrderType,
	tif engine.TimeInForce, stp engine.STPMode, price engine.Price, qty engine.Qty) []byte {
	b = be.AppendUint32(b, uint32(in))
	b = append(b, byte(side), byte(typ), byte(tif), byte(stp))
	b = be.AppendUint64(b, uint64(price))
	return be.AppendUint64(b, uint64(qty))
}

func decodeOrderFields(p []byte, in *engine.InstrumentID, side *engine.Side, typ *engine.OrderType,
	tif *engine.TimeInForce, stp *engine.STPMode, price *engine.Price, qty *engine.Qty) {
	_ = p[23]
	*in = engine.InstrumentID(be.Uint32(p))
	*side, *typ = engine.Side(p[4]), engine.OrderType(p[5])
	*tif, *stp = engine.TimeInForce(p[6]), engine.STPMode(p[7])
	*price = engine.Price(be.Uint64(p[8:]))
	*qty = engine.Qty(be.Uint64(p[16:]))
}

// Command returns the engine command for m on behalf of account.
func (m *NewOrder) Command(account engine.AccountID) engine.Command {
	return engine.Command{Kind: engine.CmdNewOrder, Account: account, Instrument: m.Instrument,
		Side: m.Side, Type: m.Type, TIF: m.TIF, STP: m.STP, Price: m.Price, Qty: m.Qty, Ref: m.Ref}
}

// Cancel cancels an open order of the session's account. Offsets:
//
//	0 order u64
type Cancel struct{ OrderID engine.OrderID }

// Append appends the frame.
func (m *Cancel) Append(b []byte) []byte {
	return be.AppendUint64(appendHeader(b, TypeCancel, cancelSize), uint64(m.OrderID))
}

// Decode fills m from a body returned by Parse.
func (m *Cancel) Decode(body []byte) { m.OrderID = engine.OrderID(be.Uint64(body[:cancelSize])) }

// Replace changes an open order's price and/or total quantity (0 keeps).
// Offsets:
//
//	0 order u64 | 8 new ref u64 | 16 price i64 | 24 qty i64 (new total)
type Replace struct {
	OrderID engine.OrderID
	Ref     engine.ClientRef
	Price   engine.Price
	Qty     engine.Qty
}

// Append appends the frame.
func (m *Replace) Append(b []byte) []byte {
	b = appendHeader(b, TypeReplace, replaceSize)
	b = be.AppendUint64(b, uint64(m.OrderID))
	b = be.AppendUint64(b, uint64(m.Ref))
	b = be.AppendUint64(b, uint64(m.Price))
	return be.AppendUint64(b, uint64(m.Qty))
}

// Decode fills m from a body returned by Parse.
func (m *Replace) Decode(body []byte) {
	_ = body[replaceSize-1]
	m.OrderID = engine.OrderID(be.Uint64(body))
	m.Ref = engine.ClientRef(be.Uint64(body[8:]))
	m.Price = engine.Price(be.Uint64(body[16:]))
	m.Qty = engine.Qty(be.Uint64(body[24:]))
}

// MassCancel cancels the account's open orders (those of all its
// sessions) on one instrument, or on all (instrument 0). Offsets:
//
//	0 instrument u32
type MassCancel struct{ Instrument engine.InstrumentID }

// Append appends the frame.
func (m *MassCancel) Append(b []byte) []byte {
	return be.AppendUint32(appendHeader(b, TypeMassCancel, massCancelSize), uint32(m.Instrument))
}

// Decode fills m from a body returned by Parse.
func (m *MassCancel) Decode(body []byte) {
	m.Instrument = engine.InstrumentID(be.Uint32(body[:massCancelSize]))
}

// Query kinds.
const (
	QueryTop        uint8 = 1 // best bid and ask of Instrument → Top
	QueryDepth      uint8 = 2 // Levels levels per side of Instrument → Depth
	QueryOrder      uint8 = 3 // the session account's open order OrderID → Orders
	QueryOpenOrders uint8 = 4 // every open order of the session's account → Orders
	QueryInstrument uint8 = 5 // the instrument directory → Instruments
	// QueryOrderStatus: what the account's order OrderID became (open,
	// filled or canceled) → OrderStatus.
	QueryOrderStatus uint8 = 6
	// QueryOrderByRef: the same for the order this session entered (or
	// last replaced) with reference OrderID (the field holds the
	// reference) → OrderStatus.
	QueryOrderByRef uint8 = 7
	// QueryExecutions: the account's latest Levels fills (1-255; 0: 100),
	// newest first → Fills.
	QueryExecutions uint8 = 8
	// QueryStatus asks for Instrument's trading phase, reference price
	// and price band → InstrumentStatus.
	QueryStatus uint8 = 9
)

// Query asks a read-only question; the answer carries Request. Offsets:
//
//	0 request u32 | 4 kind u8 | 5 levels u8 | 6 instrument u32 | 10 order u64
type Query struct {
	Request    uint32
	Kind       uint8
	Levels     uint8
	Instrument engine.InstrumentID
	OrderID    engine.OrderID
}

// Append appends the frame.
func (m *Query) Append(b []byte) []byte {
	b = appendHeader(b, TypeQuery, querySize)
	b = be.AppendUint32(b, m.Request)
	b = append(b, m.Kind, m.Levels)
	b = be.AppendUint32(b, uint32(m.Instrument))
	return be.AppendUint64(b, uint64(m.OrderID))
}

// Decode fills m from a body returned by Parse.
func (m *Query) Decode(body []byte) {
	_ = body[querySize-1]
	m.Request = be.Uint32(body)
	m.Kind, m.Levels = body[4], body[5]
	m.Instrument = engine.InstrumentID(be.Uint32(body[6:]))
	m.OrderID = engine.OrderID(be.Uint64(body[10:]))
}

// NotLeaderAddrSize is the room for the leader's address in NotLeader.
const NotLeaderAddrSize = 64

// NotLeader answers a Login to a replica of a cluster that does not lead:
// order entry goes to the leader. The server closes the connection after
// it. Offsets:
//
//	0 leader u64 | 8 address [64]byte
//
// leader is the leader's node id (0: none known, an election is under
// way: try again shortly, or another address); address its order-entry
// address as host:port in ASCII, padded with zeros ("" when unknown).
type NotLeader struct {
	Leader uint64
	Addr   string
}

// Append appends m as a frame (an address longer than NotLeaderAddrSize
// is sent empty).
func (m *NotLeader) Append(b []byte) []byte {
	b = appendHeader(b, TypeNotLeader, notLeaderSize)
	b = be.AppendUint64(b, m.Leader)
	var a [NotLeaderAddrSize]byte
	if len(m.Addr) <= NotLeaderAddrSize {
		copy(a[:], m.Addr)
	}
	return append(b, a[:]...)
}

// Decode fills m from a body returned by Parse.
func (m *NotLeader) Decode(body []byte) {
	_ = body[notLeaderSize-1]
	m.Leader = be.Uint64(body)
	a := body[8:notLeaderSize]
	n := 0
	for n < len(a) && a[n] != 0 {
		n++
	}
	m.Addr = string(a[:n])
}

// LoginAccepted answers a good Login. Offsets:
//
//	0 connection u64 | 8 version u16 | 10 session [8]byte | 18 next u64 |
//	26 last u64
//
// connection numbers this connection (for logs); session is the session's
// name (the server's choice when the Login left it zero); the stream
// messages that follow are numbered from next: those up to last are the
// replay of what the Login asked for, those after it live.
type LoginAccepted struct {
	Connection uint64
	Version    uint16
	Session    SessionName
	Next       uint64
	Last       uint64
}

// Append appends the frame.
func (m *LoginAccepted) Append(b []byte) []byte {
	b = appendHeader(b, TypeLoginAccepted, loginAcceptedSize)
	b = be.AppendUint64(b, m.Connection)
	b = be.AppendUint16(b, m.Version)
	b = append(b, m.Session[:]...)
	b = be.AppendUint64(b, m.Next)
	return be.AppendUint64(b, m.Last)
}

// Decode fills m from a body returned by Parse.
func (m *LoginAccepted) Decode(body []byte) {
	_ = body[loginAcceptedSize-1]
	m.Connection, m.Version = be.Uint64(body), be.Uint16(body[8:])
	copy(m.Session[:], body[10:])
	m.Next, m.Last = be.Uint64(body[18:]), be.Uint64(body[26:])
}

// Report flags.
const (
	// FlagEndOfCommand marks the last message a command sends to the
	// session that sent it: once it arrives, the session has all of that
	// command's events (later fills of a resting order come with their own
	// commands).
	FlagEndOfCommand uint8 = 1 << 0
)

// Report is the common head of every message of a session's stream
// (Accepted, Rejected, Executed, Canceled, Replaced, MassCanceled): its
// number in the stream, flags, the sequence number and timestamp of the
// command that caused it, the engine's order ID and the client's
// reference. Offsets:
//
//	0 msg u64 | 8 flags u8 | 9 seq u64 | 17 time i64 (Unix ns) |
//	25 order u64 | 33 ref u64
type Report struct {
	Msg     uint64 // its number in the session's stream: 1, 2, 3, …
	Flags   uint8  // FlagEndOfCommand
	Seq     engine.Seq
	Time    int64
	OrderID engine.OrderID
	Ref     engine.ClientRef
}

func (r *Report) append(b []byte) []byte {
	b = be.AppendUint64(b, r.Msg)
	b = append(b, r.Flags)
	b = be.AppendUint64(b, uint64(r.Seq))
	b = be.AppendUint64(b, uint64(r.Time))
	b = be.AppendUint64(b, uint64(r.OrderID))
	return be.AppendUint64(b, uint64(r.Ref))
}

func (r *Report) decode(body []byte) {
	_ = body[reportSize-1]
	r.Msg, r.Flags = be.Uint64(body), body[8]
	r.Seq = engine.Seq(be.Uint64(body[9:]))
	r.Time = int64(be.Uint64(body[17:]))
	r.OrderID = engine.OrderID(be.Uint64(body[25:]))
	r.Ref = engine.ClientRef(be.Uint64(body[33:]))
}

// Accepted: a new order was accepted. Offsets after the report head (41):
//
//	41 instrument u32 | 45 side u8 | 46 type u8 | 47 tif u8 | 48 stp u8 |
//	49 price i64 | 57 qty i64
type Accepted struct {
	Report
	Instrument engine.InstrumentID
	Side       engine.Side
	Type       engine.OrderType
	TIF        engine.TimeInForce
	STP        engine.STPMode
	Price      engine.Price
	Qty        engine.Qty
}

// Append appends the frame.
func (m *Accepted) Append(b []byte) []byte {
	b = m.Report.append(appendHeader(b, TypeAccepted, acceptedSize))
	return appendOrderFields(b, m.Instrument, m.Side, m.Type, m.TIF, m.STP, m.Price, m.Qty)
}

// Decode fills m from a body returned by Parse.
func (m *Accepted) Decode(body []byte) {
	_ = body[acceptedSize-1]
	m.Report.decode(body)
	decodeOrderFields(body[reportSize:], &m.Instrument, &m.Side, &m.Type, &m.TIF, &m.STP, &m.Price, &m.Qty)
}

// Rejected: a command was rejected and changed nothing. Offsets:
//
//	41 reason u8 (engine.RejectReason)
type Rejected struct {
	Report
	Reason engine.RejectReason
}

// Append appends the frame.
func (m *Rejected) Append(b []byte) []byte {
	return append(m.Report.append(appendHeader(b, TypeRejected, rejectedSize)), byte(m.Reason))
}

// Decode fills m from a body returned by Parse.
func (m *Rejected) Decode(body []byte) {
	_ = body[rejectedSize-1]
	m.Report.decode(body)
	m.Reason = engine.RejectReason(body[reportSize])
}

// Liquidity flags of an execution.
const (
	LiquidityAdded   uint8 = 'A' // this order was resting (maker)
	LiquidityRemoved uint8 = 'R' // this order took liquidity (taker)
)

// Executed: one of the session's orders traded. Offsets:
//
//	41 trade u64 | 49 price i64 | 57 qty i64 | 65 leaves i64 |
//	73 liquidity u8
type Executed struct {
	Report
	Trade     engine.TradeID
	Price     engine.Price
	Qty       engine.Qty
	Leaves    engine.Qty
	Liquidity uint8
}

// Append appends the frame.
func (m *Executed) Append(b []byte) []byte {
	b = m.Report.append(appendHeader(b, TypeExecuted, executedSize))
	b = be.AppendUint64(b, uint64(m.Trade))
	b = be.AppendUint64(b, uint64(m.Price))
	b = be.AppendUint64(b, uint64(m.Qty))
	b = be.AppendUint64(b, uint64(m.Leaves))
	return append(b, m.Liquidity)
}

// Decode fills m from a body returned by Parse.
func (m *Executed) Decode(body []byte) {
	_ = body[executedSize-1]
	m.Report.decode(body)
	p := body[reportSize:]
	m.Trade = engine.TradeID(be.Uint64(p))
	m.Price = engine.Price(be.Uint64(p[8:]))
	m.Qty = engine.Qty(be.Uint64(p[16:]))
	m.Leaves = engine.Qty(be.Uint64(p[24:]))
	m.Liquidity = p[32]
}

// Canceled: an order, or what was left of it, was canceled. Offsets:
//
//	41 qty i64 (canceled) | 49 reason u8 (engine.CancelReason)
type Canceled struct {
	Report
	Qty    engine.Qty
	Reason engine.CancelReason
}

// Append appends the frame.
func (m *Canceled) Append(b []byte) []byte {
	b = m.Report.append(appendHeader(b, TypeCanceled, canceledSize))
	b = be.AppendUint64(b, uint64(m.Qty))
	return append(b, byte(m.Reason))
}

// Decode fills m from a body returned by Parse.
func (m *Canceled) Decode(body []byte) {
	_ = body[canceledSize-1]
	m.Report.decode(body)
	m.Qty = engine.Qty(be.Uint64(body[reportSize:]))
	m.Reason = engine.CancelReason(body[reportSize+8])
}

// Replaced: a replace took effect. Offsets:
//
//	41 orig ref u64 | 49 price i64 | 57 qty i64 (total) | 65 leaves i64
type Replaced struct {
	Report
	OrigRef engine.ClientRef
	Price   engine.Price
	Qty     engine.Qty
	Leaves  engine.Qty
}

// Append appends the frame.
func (m *Replaced) Append(b []byte) []byte {
	b = m.Report.append(appendHeader(b, TypeReplaced, replacedSize))
	b = be.AppendUint64(b, uint64(m.OrigRef))
	b = be.AppendUint64(b, uint64(m.Price))
	b = be.AppendUint64(b, uint64(m.Qty))
	return be.AppendUint64(b, uint64(m.Leaves))
}

// Decode fills m from a body returned by Parse.
func (m *Replaced) Decode(body []byte) {
	_ = body[replacedSize-1]
	m.Report.decode(body)
	p := body[reportSize:]
	m.OrigRef = engine.ClientRef(be.Uint64(p))
	m.Price = engine.Price(be.Uint64(p[8:]))
	m.Qty = engine.Qty(be.Uint64(p[16:]))
	m.Leaves = engine.Qty(be.Uint64(p[24:]))
}

// MassCanceled ends the answer to a MassCancel (order and ref in its
// report head are zero). Offsets:
//
//	41 instrument u32 | 45 count u32
type MassCanceled struct {
	Report
	Instrument engine.InstrumentID
	Count      uint32
}

// Append appends the frame.
func (m *MassCanceled) Append(b []byte) []byte {
	b = m.Report.append(appendHeader(b, TypeMassCanceled, massCanceledSize))
	b = be.AppendUint32(b, uint32(m.Instrument))
	return be.AppendUint32(b, m.Count)
}

// Decode fills m from a body returned by Parse.
func (m *MassCanceled) Decode(body []byte) {
	_ = body[massCanceledSize-1]
	m.Report.decode(body)
	m.Instrument = engine.InstrumentID(be.Uint32(body[reportSize:]))
	m.Count = be.Uint32(body[reportSize+4:])
}

// Top answers QueryTop. Offsets:
//
//	0 request u32 | 4 seq u64 | 12 instrument u32 | 16 found u8 |
//	17 bid price i64 | 25 bid qty i64 | 33 ask price i64 | 41 ask qty i64
//
// seq is the last command applied when the query was answered.
type Top struct {
	Request    uint32
	Seq        engine.Seq
	Instrument engine.InstrumentID
	Found      bool
	engine.TopOfBook
}

// Append appends the frame.
func (m *Top) Append(b []byte) []byte {
	b = appendHeader(b, TypeTop, topSize)
	b = be.AppendUint32(b, m.Request)
	b = be.AppendUint64(b, uint64(m.Seq))
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = append(b, boolByte(m.Found))
	b = be.AppendUint64(b, uint64(m.BidPrice))
	b = be.AppendUint64(b, uint64(m.BidQty))
	b = be.AppendUint64(b, uint64(m.AskPrice))
	return be.AppendUint64(b, uint64(m.AskQty))
}

// Decode fills m from a body returned by Parse.
func (m *Top) Decode(body []byte) {
	_ = body[topSize-1]
	m.Request = be.Uint32(body)
	m.Seq = engine.Seq(be.Uint64(body[4:]))
	m.Instrument = engine.InstrumentID(be.Uint32(body[12:]))
	m.Found = body[16] != 0
	m.BidPrice = engine.Price(be.Uint64(body[17:]))
	m.BidQty = engine.Qty(be.Uint64(body[25:]))
	m.AskPrice = engine.Price(be.Uint64(body[33:]))
	m.AskQty = engine.Qty(be.Uint64(body[41:]))
}

// InstrumentStatus answers QueryStatus. Offsets:
//
//	0 request u32 | 4 seq u64 | 12 instrument u32 | 16 found u8 |
//	17 phase u8 | 18 reference price i64 | 26 band low i64 |
//	34 band high i64
//
// The reference price is the last trade's (or the configured start price
// before the first trade); a limit order priced outside band low … band
// high is rejected outside-band (both 0: the instrument has no band).
type InstrumentStatus struct {
	Request    uint32
	Seq        engine.Seq
	Instrument engine.InstrumentID
	Found      bool
	Phase      engine.Phase
	RefPrice   engine.Price
	BandLow    engine.Price
	BandHigh   engine.Price
}

const instrumentStatusSize = 42

// Append appends the frame.
func (m *InstrumentStatus) Append(b []byte) []byte {
	b = appendHeader(b, TypeInstrumentStatus, instrumentStatusSize)
	b = be.AppendUint32(b, m.Request)
	b = be.AppendUint64(b, uint64(m.Seq))
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = append(b, boolByte(m.Found), byte(m.Phase))
	b = be.AppendUint64(b, uint64(m.RefPrice))
	b = be.AppendUint64(b, uint64(m.BandLow))
	return be.AppendUint64(b, uint64(m.BandHigh))
}

// Decode fills m from a body returned by Parse.
func (m *InstrumentStatus) Decode(body []byte) {
	_ = body[instrumentStatusSize-1]
	m.Request = be.Uint32(body)
	m.Seq = engine.Seq(be.Uint64(body[4:]))
	m.Instrument = engine.InstrumentID(be.Uint32(body[12:]))
	m.Found, m.Phase = body[16] != 0, engine.Phase(body[17])
	m.RefPrice = engine.Price(be.Uint64(body[18:]))
	m.BandLow = engine.Price(be.Uint64(body[26:]))
	m.BandHigh = engine.Price(be.Uint64(body[34:]))
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
