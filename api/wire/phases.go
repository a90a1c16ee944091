package wire

import "github.com/matchd/matchd/engine"

// The messages of stops, icebergs, expiry and trading phases (protocol
// version 2, added without changing any earlier message).

const (
	newOrderXSize    = newOrderSize + 24
	replaceXSize     = replaceSize + 16
	phaseSize        = 5
	triggeredSize    = reportSize + 21
	phaseChangedSize = reportSize + 5
	phaseUpdateSize  = 37
	indicativeSize   = 45
)

// NewOrderX enters an order with the fields of the order types beyond
// limit and market: a stop price (Stop, StopLimit), a display quantity
// (an iceberg) and an expiry (GTD). Offsets: NewOrder's, then
//
//	32 stop price i64 | 40 display i64 | 48 expire i64 (Unix ns)
type NewOrderX struct {
	NewOrder
	StopPrice engine.Price
	Display   engine.Qty
	Expire    int64
}

// Append appends the frame.
func (m *NewOrderX) Append(b []byte) []byte {
	b = appendHeader(b, TypeNewOrderX, newOrderXSize)
	b = be.AppendUint64(b, uint64(m.Ref))
	b = appendOrderFields(b, m.Instrument, m.Side, m.Type, m.TIF, m.STP, m.Price, m.Qty)
	b = be.AppendUint64(b, uint64(m.StopPrice))
	b = be.AppendUint64(b, uint64(m.Display))
	return be.AppendUint64(b, uint64(m.Expire))
}

// Decode fills m from a body returned by Parse.
func (m *NewOrderX) Decode(body []byte) {
	_ = body[newOrderXSize-1]
	m.NewOrder.Decode(body[:newOrderSize])
	m.StopPrice = engine.Price(be.Uint64(body[32:]))
	m.Display = engine.Qty(be.Uint64(body[40:]))
	m.Expire = int64(be.Uint64(body[48:]))
}

// Command returns the engine command for m on behalf of account.
func (m *NewOrderX) Command(account engine.AccountID) engine.Command {
	c := m.NewOrder.Command(account)
	c.StopPrice, c.Display, c.Expire = m.StopPrice, m.Display, m.Expire
	return c
}

// ReplaceX is Replace with a parked stop's new stop price and an
// iceberg's new display quantity (0 keeps either). Offsets: Replace's,
// then
//
//	32 stop price i64 | 40 display i64
type ReplaceX struct {
	Replace
	StopPrice engine.Price
	Display   engine.Qty
}

// Append appends the frame.
func (m *ReplaceX) Append(b []byte) []byte {
	b = appendHeader(b, TypeReplaceX, replaceXSize)
	b = be.AppendUint64(b, uint64(m.OrderID))
	b = be.AppendUint64(b, uint64(m.Ref))
	b = be.AppendUint64(b, uint64(m.Price))
	b = be.AppendUint64(b, uint64(m.Qty))
	b = be.AppendUint64(b, uint64(m.StopPrice))
	return be.AppendUint64(b, uint64(m.Display))
}

// Decode fills m from a body returned by Parse.
func (m *ReplaceX) Decode(body []byte) {
	_ = body[replaceXSize-1]
	m.Replace.Decode(body[:replaceSize])
	m.StopPrice = engine.Price(be.Uint64(body[32:]))
	m.Display = engine.Qty(be.Uint64(body[40:]))
}

// Phase is an operator's phase change of an instrument (only sessions of
// accounts configured as operators may; others are rejected with
// engine.RejectNotOperator). Offsets:
//
//	0 instrument u32 | 4 action u8 (engine.PhaseAction)
type Phase struct {
	Instrument engine.InstrumentID
	Action     engine.PhaseAction
}

// Append appends the frame.
func (m *Phase) Append(b []byte) []byte {
	b = appendHeader(b, TypePhase, phaseSize)
	b = be.AppendUint32(b, uint32(m.Instrument))
	return append(b, byte(m.Action))
}

// Decode fills m from a body returned by Parse.
func (m *Phase) Decode(body []byte) {
	_ = body[phaseSize-1]
	m.Instrument = engine.InstrumentID(be.Uint32(body))
	m.Action = engine.PhaseAction(body[4])
}

// Triggered: a parked stop was triggered and enters the book now, as a
// market order (price 0) or a limit order; its executions follow.
// Offsets:
//
//	41 instrument u32 | 45 side u8 | 46 price i64 | 54 qty i64 (open)
type Triggered struct {
	Report
	Instrument engine.InstrumentID
	Side       engine.Side
	Price      engine.Price
	Qty        engine.Qty
}

// Append appends the frame.
func (m *Triggered) Append(b []byte) []byte {
	b = m.Report.append(appendHeader(b, TypeTriggered, triggeredSize))
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = append(b, byte(m.Side))
	b = be.AppendUint64(b, uint64(m.Price))
	return be.AppendUint64(b, uint64(m.Qty))
}

// Decode fills m from a body returned by Parse.
func (m *Triggered) Decode(body []byte) {
	_ = body[triggeredSize-1]
	m.Report.decode(body)
	p := body[reportSize:]
	m.Instrument = engine.InstrumentID(be.Uint32(p))
	m.Side = engine.Side(p[4])
	m.Price = engine.Price(be.Uint64(p[5:]))
	m.Qty = engine.Qty(be.Uint64(p[13:]))
}

// PhaseChanged answers an operator's Phase: the instrument is now in
// Phase. (Order and ref in the head are zero.) Offsets:
//
//	41 instrument u32 | 45 phase u8 (engine.Phase)
type PhaseChanged struct {
	Report
	Instrument engine.InstrumentID
	Phase      engine.Phase
}

// Append appends the frame.
func (m *PhaseChanged) Append(b []byte) []byte {
	b = m.Report.append(appendHeader(b, TypePhaseChanged, phaseChangedSize))
	b = be.AppendUint32(b, uint32(m.Instrument))
	return append(b, byte(m.Phase))
}

// Decode fills m from a body returned by Parse.
func (m *PhaseChanged) Decode(body []byte) {
	_ = body[phaseChangedSize-1]
	m.Report.decode(body)
	m.Instrument = engine.InstrumentID(be.Uint32(body[reportSize:]))
	m.Phase = engine.Phase(body[reportSize+4])
}

// PhaseUpdate is market data: the instrument entered Phase. Price is,
// for a volatility interruption, the price that would have printed
// outside the band. It carries the next feed sequence number, like
// LevelUpdate and Trade. Offsets:
//
//	0 instrument u32 | 4 feed seq u64 | 12 seq u64 | 20 time i64 |
//	28 phase u8 | 29 price i64
type PhaseUpdate struct {
	Instrument engine.InstrumentID
	FeedSeq    uint64
	Seq        engine.Seq
	Time       int64
	Phase      engine.Phase
	Price      engine.Price
}

// Append appends the frame.
func (m *PhaseUpdate) Append(b []byte) []byte {
	b = appendHeader(b, TypePhaseUpdate, phaseUpdateSize)
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = be.AppendUint64(b, m.FeedSeq)
	b = be.AppendUint64(b, uint64(m.Seq))
	b = be.AppendUint64(b, uint64(m.Time))
	b = append(b, byte(m.Phase))
	return be.AppendUint64(b, uint64(m.Price))
}

// Decode fills m from a body returned by Parse.
func (m *PhaseUpdate) Decode(body []byte) {
	_ = body[phaseUpdateSize-1]
	m.Instrument = engine.InstrumentID(be.Uint32(body))
	m.FeedSeq = be.Uint64(body[4:])
	m.Seq = engine.Seq(be.Uint64(body[12:]))
	m.Time = int64(be.Uint64(body[20:]))
	m.Phase = engine.Phase(body[28])
	m.Price = engine.Price(be.Uint64(body[29:]))
}

// Indicative is market data during a call auction: the price the book
// would uncross at now (0: none), the volume that would trade there and
// the surplus left on Side. Offsets:
//
//	0 instrument u32 | 4 feed seq u64 | 12 seq u64 | 20 price i64 |
//	28 qty i64 | 36 surplus i64 | 44 side u8 (0: none)
type Indicative struct {
	Instrument engine.InstrumentID
	FeedSeq    uint64
	Seq        engine.Seq
	Price      engine.Price
	Qty        engine.Qty
	Surplus    engine.Qty
	Side       engine.Side
}

// Append appends the frame.
func (m *Indicative) Append(b []byte) []byte {
	b = appendHeader(b, TypeIndicative, indicativeSize)
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = be.AppendUint64(b, m.FeedSeq)
	b = be.AppendUint64(b, uint64(m.Seq))
	b = be.AppendUint64(b, uint64(m.Price))
	b = be.AppendUint64(b, uint64(m.Qty))
	b = be.AppendUint64(b, uint64(m.Surplus))
	return append(b, byte(m.Side))
}

// Decode fills m from a body returned by Parse.
func (m *Indicative) Decode(body []byte) {
	_ = body[indicativeSize-1]
	m.Instrument = engine.InstrumentID(be.Uint32(body))
	m.FeedSeq = be.Uint64(body[4:])
	m.Seq = engine.Seq(be.Uint64(body[12:]))
	m.Price = engine.Price(be.Uint64(body[20:]))
	m.Qty = engine.Qty(be.Uint64(body[28:]))
	m.Surplus = engine.Qty(be.Uint64(body[36:]))
	m.Side = engine.Side(body[44])
}
