package wire

import (
	"errors"
	"fmt"
	"io"

	"github.com/matchd/matchd/engine"
)

// Depth answers QueryDepth. Offsets:
//
//	0 request u32 | 4 seq u64 | 12 instrument u32 | 16 found u8 |
//	17 bids u16 | 19 asks u16 | 21 levels, bids (best first) then asks
//	(best first), each 20 bytes: price i64 | qty i64 | orders u32
type Depth struct {
	Request    uint32
	Seq        engine.Seq
	Instrument engine.InstrumentID
	Found      bool
}

// MaxDepthLevels is the most levels per side a Depth frame carries.
const MaxDepthLevels = 255

// Append appends the frame with the given levels (at most MaxDepthLevels
// per side; more are cut).
func (m *Depth) Append(b []byte, bids, asks []engine.LevelInfo) []byte {
	bids, asks = bids[:min(len(bids), MaxDepthLevels)], asks[:min(len(asks), MaxDepthLevels)]
	b = appendHeader(b, TypeDepth, depthHeadSize+levelSize*(len(bids)+len(asks)))
	b = be.AppendUint32(b, m.Request)
	b = be.AppendUint64(b, uint64(m.Seq))
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = append(b, boolByte(m.Found))
	b = be.AppendUint16(b, uint16(len(bids)))
	b = be.AppendUint16(b, uint16(len(asks)))
	for _, l := range bids {
		b = appendLevel(b, l)
	}
	for _, l := range asks {
		b = appendLevel(b, l)
	}
	return b
}

func appendLevel(b []byte, l engine.LevelInfo) []byte {
	b = be.AppendUint64(b, uint64(l.Price))
	b = be.AppendUint64(b, uint64(l.Qty))
	return be.AppendUint32(b, uint32(l.Orders))
}

// decodeLevel reads what appendLevel wrote.
func decodeLevel(p []byte) engine.LevelInfo {
	return engine.LevelInfo{Price: engine.Price(be.Uint64(p)), Qty: engine.Qty(be.Uint64(p[8:])),
		Orders: int32(be.Uint32(p[16:]))}
}

// Decode fills m and appends the levels to bids and asks.
func (m *Depth) Decode(body []byte, bids, asks []engine.LevelInfo) ([]engine.LevelInfo, []engine.LevelInfo, error) {
	if len(body) < depthHeadSize {
		return bids, asks, fmt.Errorf("%w: depth of %d bytes", ErrBadLength, len(body))
	}
	m.Request = be.Uint32(body)
	m.Seq = engine.Seq(be.Uint64(body[4:]))
	m.Instrument = engine.InstrumentID(be.Uint32(body[12:]))
	m.Found = body[16] != 0
	nb, na := int(be.Uint16(body[17:])), int(be.Uint16(body[19:]))
	if nb > MaxDepthLevels || na > MaxDepthLevels {
		return bids, asks, fmt.Errorf("%w: depth says %d+%d levels, at most %d a side", ErrBadLength, nb, na, MaxDepthLevels)
	}
	if len(body) != depthHeadSize+levelSize*(nb+na) {
		return bids, asks, fmt.Errorf("%w: depth says %d+%d levels in %d bytes", ErrBadLength, nb, na, len(body))
	}
	p := body[depthHeadSize:]
	for i := 0; i < nb+na; i++ {
		l := decodeLevel(p)
		if i < nb {
			bids = append(bids, l)
		} else {
			asks = append(asks, l)
		}
		p = p[levelSize:]
	}
	return bids, asks, nil
}

// Orders answers QueryOrder and QueryOpenOrders; a long answer is split
// into several frames, all but the last with More set. Offsets:
//
//	0 request u32 | 4 seq u64 | 12 more u8 | 13 count u16 | 15 orders,
//	each 54 bytes: order u64 | ref u64 | instrument u32 | side u8 |
//	tif u8 | price i64 | leaves i64 | filled i64 | time i64
type Orders struct {
	Request uint32
	Seq     engine.Seq
	More    bool
}

// MaxOrdersPerFrame is the most orders one Orders frame carries.
const MaxOrdersPerFrame = 1000

// Append appends the frame (at most MaxOrdersPerFrame orders; the caller
// splits longer answers and sets More).
func (m *Orders) Append(b []byte, orders []engine.OrderInfo) []byte {
	orders = orders[:min(len(orders), MaxOrdersPerFrame)]
	b = appendHeader(b, TypeOrders, ordersHeadSize+orderSize*len(orders))
	b = be.AppendUint32(b, m.Request)
	b = be.AppendUint64(b, uint64(m.Seq))
	b = append(b, boolByte(m.More))
	b = be.AppendUint16(b, uint16(len(orders)))
	for i := range orders {
		o := &orders[i]
		b = be.AppendUint64(b, uint64(o.ID))
		b = be.AppendUint64(b, uint64(o.Ref))
		b = be.AppendUint32(b, uint32(o.Instrument))
		b = append(b, byte(o.Side), byte(o.TIF))
		b = be.AppendUint64(b, uint64(o.Price))
		b = be.AppendUint64(b, uint64(o.Leaves))
		b = be.AppendUint64(b, uint64(o.Filled))
		b = be.AppendUint64(b, uint64(o.Time))
	}
	return b
}

// Decode fills m and appends the orders to out (Account is left zero: it
// is the session's own).
func (m *Orders) Decode(body []byte, out []engine.OrderInfo) ([]engine.OrderInfo, error) {
	if len(body) < ordersHeadSize {
		return out, fmt.Errorf("%w: orders of %d bytes", ErrBadLength, len(body))
	}
	m.Request = be.Uint32(body)
	m.Seq = engine.Seq(be.Uint64(body[4:]))
	m.More = body[12] != 0
	n := int(be.Uint16(body[13:]))
	if n > MaxOrdersPerFrame {
		return out, fmt.Errorf("%w: orders says %d, at most %d a frame", ErrBadLength, n, MaxOrdersPerFrame)
	}
	if len(body) != ordersHeadSize+orderSize*n {
		return out, fmt.Errorf("%w: orders says %d in %d bytes", ErrBadLength, n, len(body))
	}
	p := body[ordersHeadSize:]
	for range n {
		out = append(out, engine.OrderInfo{
			ID: engine.OrderID(be.Uint64(p)), Ref: engine.ClientRef(be.Uint64(p[8:])),
			Instrument: engine.InstrumentID(be.Uint32(p[16:])), Side: engine.Side(p[20]),
			TIF: engine.TimeInForce(p[21]), Price: engine.Price(be.Uint64(p[22:])),
			Leaves: engine.Qty(be.Uint64(p[30:])), Filled: engine.Qty(be.Uint64(p[38:])),
			Time: int64(be.Uint64(p[46:])),
		})
		p = p[orderSize:]
	}
	return out, nil
}

// Reader reads frames from a stream through one fixed buffer: frames are
// parsed in place, and a frame split across reads is completed by moving
// its start to the front of the buffer. It never allocates after
// NewReader.
type Reader struct {
	r          io.Reader
	buf        []byte
	start, end int
	max        int
}

// NewReader returns a reader of frames of at most max bytes, with a buffer
// of bufSize bytes (at least max).
func NewReader(r io.Reader, max, bufSize int) *Reader {
	return &Reader{r: r, buf: make([]byte, bufSize), max: min(max, bufSize)}
}

// Next returns the next frame. body aliases the reader's buffer and is
// valid until the next call. At the end of the stream it returns io.EOF,
// or io.ErrUnexpectedEOF if a frame was cut short.
func (r *Reader) Next() (typ byte, body []byte, err error) {
	for {
		typ, body, n, err := Parse(r.buf[r.start:r.end], r.max)
		if err != nil {
			return 0, nil, err
		}
		if n > 0 {
			r.start += n
			return typ, body, nil
		}
		if r.start == r.end {
			r.start, r.end = 0, 0
		} else if len(r.buf)-r.start < r.max {
			copy(r.buf, r.buf[r.start:r.end])
			r.end -= r.start
			r.start = 0
		}
		m, rerr := r.r.Read(r.buf[r.end:])
		r.end += m
		if m == 0 && rerr != nil {
			if errors.Is(rerr, io.EOF) && r.end > r.start {
				rerr = io.ErrUnexpectedEOF
			}
			return 0, nil, rerr
		}
	}
}

// Grow makes the reader's buffer bufSize bytes (if larger), keeping what
// it holds, and lets it read frames of up to max bytes. The server reads
// a connection through a small buffer until it has logged in.
func (r *Reader) Grow(max, bufSize int) {
	if bufSize > len(r.buf) {
		nb := make([]byte, bufSize)
		r.end = copy(nb, r.buf[r.start:r.end])
		r.start, r.buf = 0, nb
	}
	r.max = min(max, len(r.buf))
}

// Buffered returns how many bytes are buffered but not yet returned: if it
// is zero, the next Next will read from the stream (and may block).
func (r *Reader) Buffered() int { return r.end - r.start }

// InstrumentInfo is one entry of the instrument directory.
type InstrumentInfo struct {
	ID       engine.InstrumentID
	Symbol   string
	TickSize string // decimal, e.g. "0.01"
	LotSize  string // decimal, e.g. "0.0001"
}

// Instruments answers QueryInstrument with the whole directory, split
// into as many frames as it needs; all but the last have More set (bit 15
// of the count). Offsets:
//
//	0 request u32 | 4 more bit 15, count bits 0-14, u16 | 6 entries, each:
//	id u32 | symbol len u8 + bytes | tick len u8 + bytes | lot len u8 + bytes
type Instruments struct {
	Request uint32
	More    bool // more Instruments frames follow for this request
}

// instrumentsMore is the count's bit that says more frames follow.
const instrumentsMore = 1 << 15

// Append appends the frames of list (strings longer than 255 bytes are
// cut; the server's config refuses them). Each frame stays within
// MaxFrame. All frames but the last have More set; the last has it when
// m.More is set (a caller sending the directory in several calls), so a
// decoded frame encodes back to the same bytes.
func (m *Instruments) Append(b []byte, list []InstrumentInfo) []byte {
	entry := func(in InstrumentInfo) int {
		return 4 + 3 + min(len(in.Symbol), 255) + min(len(in.TickSize), 255) + min(len(in.LotSize), 255)
	}
	for {
		size, n := 1+6, 0 // the type byte, request and count
		for n < len(list) && n < instrumentsMore-1 && size+entry(list[n]) <= MaxFrame-1 {
			size += entry(list[n])
			n++
		}
		more := n < len(list)
		b = appendHeader(b, TypeInstruments, size-1)
		b = be.AppendUint32(b, m.Request)
		count := uint16(n)
		if more || m.More {
			count |= instrumentsMore
		}
		b = be.AppendUint16(b, count)
		for _, in := range list[:n] {
			b = be.AppendUint32(b, uint32(in.ID))
			for _, str := range []string{in.Symbol, in.TickSize, in.LotSize} {
				str = str[:min(len(str), 255)]
				b = append(append(b, byte(len(str))), str...)
			}
		}
		list = list[n:]
		if !more {
			return b
		}
	}
}

// Decode fills m and appends the entries to out. It allocates the strings.
func (m *Instruments) Decode(body []byte, out []InstrumentInfo) ([]InstrumentInfo, error) {
	if len(body) < 6 {
		return out, fmt.Errorf("%w: instruments of %d bytes", ErrBadLength, len(body))
	}
	m.Request = be.Uint32(body)
	count := be.Uint16(body[4:])
	m.More = count&instrumentsMore != 0
	n := int(count &^ instrumentsMore)
	p := body[6:]
	str := func() (string, bool) {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return "", false
		}
		v := string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
		return v, true
	}
	for range n {
		if len(p) < 4 {
			return out, fmt.Errorf("%w: instruments cut short", ErrBadLength)
		}
		in := InstrumentInfo{ID: engine.InstrumentID(be.Uint32(p))}
		p = p[4:]
		var ok1, ok2, ok3 bool
		in.Symbol, ok1 = str()
		in.TickSize, ok2 = str()
		in.LotSize, ok3 = str()
		if !ok1 || !ok2 || !ok3 {
			return out, fmt.Errorf("%w: instruments cut short", ErrBadLength)
		}
		out = append(out, in)
	}
	if len(p) != 0 {
		return out, fmt.Errorf("%w: %d bytes after the instruments", ErrBadLength, len(p))
	}
	return out, nil
}

// Order states in OrderStatus.
const (
	OrderOpen     uint8 = 1 // resting (possibly partly filled)
	OrderFilled   uint8 = 2 // filled completely
	OrderCanceled uint8 = 3 // canceled (possibly after partial fills), or replaced to nothing
)

// OrderStatus answers QueryOrderStatus and QueryOrderByRef: what one of
// the account's orders became, open or finished, from the server's order
// history (the account's open orders and its latest finished ones).
// Offsets:
//
//	0 request u32 | 4 found u8 | 5 order u64 | 13 session [8]byte |
//	21 ref u64 | 29 instrument u32 | 33 side u8 | 34 state u8 |
//	35 price i64 | 43 qty i64 (total) | 51 filled i64 | 59 leaves i64 |
//	67 seq u64 | 75 time i64
//
// seq and time are those of the command that last changed the order.
type OrderStatus struct {
	Request    uint32
	Found      bool
	OrderID    engine.OrderID
	Session    SessionName // the session that entered it
	Ref        engine.ClientRef
	Instrument engine.InstrumentID
	Side       engine.Side
	State      uint8
	Price      engine.Price
	Qty        engine.Qty
	Filled     engine.Qty
	Leaves     engine.Qty
	Seq        engine.Seq
	Time       int64
}

const orderStatusSize = 83

// Append appends the frame.
func (m *OrderStatus) Append(b []byte) []byte {
	b = appendHeader(b, TypeOrderStatus, orderStatusSize)
	b = be.AppendUint32(b, m.Request)
	b = append(b, boolByte(m.Found))
	b = be.AppendUint64(b, uint64(m.OrderID))
	b = append(b, m.Session[:]...)
	b = be.AppendUint64(b, uint64(m.Ref))
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = append(b, byte(m.Side), m.State)
	for _, v := range []int64{int64(m.Price), int64(m.Qty), int64(m.Filled), int64(m.Leaves), int64(m.Seq), m.Time} {
		b = be.AppendUint64(b, uint64(v))
	}
	return b
}

// Decode fills m from a body returned by Parse.
func (m *OrderStatus) Decode(body []byte) {
	_ = body[orderStatusSize-1]
	m.Request, m.Found = be.Uint32(body), body[4] != 0
	m.OrderID = engine.OrderID(be.Uint64(body[5:]))
	copy(m.Session[:], body[13:])
	m.Ref = engine.ClientRef(be.Uint64(body[21:]))
	m.Instrument = engine.InstrumentID(be.Uint32(body[29:]))
	m.Side, m.State = engine.Side(body[33]), body[34]
	m.Price, m.Qty = engine.Price(be.Uint64(body[35:])), engine.Qty(be.Uint64(body[43:]))
	m.Filled, m.Leaves = engine.Qty(be.Uint64(body[51:])), engine.Qty(be.Uint64(body[59:]))
	m.Seq, m.Time = engine.Seq(be.Uint64(body[67:])), int64(be.Uint64(body[75:]))
}

// Fill is one of the account's executions in a Fills answer.
type Fill struct {
	Trade      engine.TradeID
	OrderID    engine.OrderID
	Session    SessionName // that entered the order
	Instrument engine.InstrumentID
	Side       engine.Side // the order's side
	Liquidity  uint8       // LiquidityAdded or LiquidityRemoved
	Price      engine.Price
	Qty        engine.Qty
	Seq        engine.Seq
	Time       int64
}

const fillSize = 62

// MaxFills is the most fills one Fills frame carries.
const MaxFills = 255

// Fills answers QueryExecutions with the account's latest fills, newest
// first. Offsets:
//
//	0 request u32 | 4 count u16 | 6 fills, each 62 bytes: trade u64 |
//	order u64 | session [8]byte | instrument u32 | side u8 | liquidity u8 |
//	price i64 | qty i64 | seq u64 | time i64
type Fills struct {
	Request uint32
}

// Append appends the frame with up to MaxFills fills.
func (m *Fills) Append(b []byte, fills []Fill) []byte {
	fills = fills[:min(len(fills), MaxFills)]
	b = appendHeader(b, TypeFills, 6+fillSize*len(fills))
	b = be.AppendUint32(b, m.Request)
	b = be.AppendUint16(b, uint16(len(fills)))
	for _, f := range fills {
		b = be.AppendUint64(b, uint64(f.Trade))
		b = be.AppendUint64(b, uint64(f.OrderID))
		b = append(b, f.Session[:]...)
		b = be.AppendUint32(b, uint32(f.Instrument))
		b = append(b, byte(f.Side), f.Liquidity)
		for _, v := range []int64{int64(f.Price), int64(f.Qty), int64(f.Seq), f.Time} {
			b = be.AppendUint64(b, uint64(v))
		}
	}
	return b
}

// Decode fills m and appends the fills to out.
func (m *Fills) Decode(body []byte, out []Fill) ([]Fill, error) {
	if len(body) < 6 {
		return out, fmt.Errorf("%w: fills of %d bytes", ErrBadLength, len(body))
	}
	m.Request = be.Uint32(body)
	n := int(be.Uint16(body[4:]))
	if n > MaxFills || len(body) != 6+fillSize*n {
		return out, fmt.Errorf("%w: fills says %d in %d bytes", ErrBadLength, n, len(body))
	}
	p := body[6:]
	for range n {
		var f Fill
		f.Trade, f.OrderID = engine.TradeID(be.Uint64(p)), engine.OrderID(be.Uint64(p[8:]))
		copy(f.Session[:], p[16:])
		f.Instrument = engine.InstrumentID(be.Uint32(p[24:]))
		f.Side, f.Liquidity = engine.Side(p[28]), p[29]
		f.Price, f.Qty = engine.Price(be.Uint64(p[30:])), engine.Qty(be.Uint64(p[38:]))
		f.Seq, f.Time = engine.Seq(be.Uint64(p[46:])), int64(be.Uint64(p[54:]))
		out = append(out, f)
		p = p[fillSize:]
	}
	return out, nil
}
