package wire

import (
	"fmt"

	"github.com/matchd/matchd/engine"
)

// Market data messages (docs/PROTOCOL.md, "Market data"). A session
// subscribes to an instrument with Subscribe; the server answers with a
// BookSnapshot stamped with the instrument's feed sequence number, then
// sends every LevelUpdate and Trade of that instrument, each with the next
// feed sequence number.

// Body sizes of the fixed-size market data messages.
const (
	subscribeSize    = 17
	levelUpdateSize  = 41
	tradeSize        = 53
	snapshotHeadSize = 30
	snapshotLevel    = 21
)

// Subscribe actions.
const (
	Unsubscribe uint8 = 0 // stop sending the instrument's market data
	SubscribeOn uint8 = 1 // send a snapshot, then every change
)

// Subscribe starts or stops the market data of one instrument. Offsets:
//
//	0 request u32 | 4 instrument u32 | 8 action u8 | 9 from u64
//
// From 0 asks for a snapshot; a subscriber that had the feed up to F-1
// asks from F, and is sent what it missed (a Resumed BookSnapshot, then
// the updates from F) when the server still keeps it, a full snapshot
// otherwise.
type Subscribe struct {
	Request    uint32
	Instrument engine.InstrumentID
	Action     uint8
	From       uint64
}

// Append appends the frame.
func (m *Subscribe) Append(b []byte) []byte {
	b = appendHeader(b, TypeSubscribe, subscribeSize)
	b = be.AppendUint32(b, m.Request)
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = append(b, m.Action)
	return be.AppendUint64(b, m.From)
}

// Decode fills m from a body returned by Parse.
func (m *Subscribe) Decode(body []byte) {
	_ = body[subscribeSize-1]
	m.Request = be.Uint32(body)
	m.Instrument = engine.InstrumentID(be.Uint32(body[4:]))
	m.Action = body[8]
	m.From = be.Uint64(body[9:])
}

// BookSnapshot answers Subscribe with the instrument's whole book; a long
// book is split into several frames, all but the last with More set, all
// with the same FeedSeq. Offsets:
//
//	0 request u32 | 4 instrument u32 | 8 feed seq u64 | 16 seq u64 |
//	24 found u8 | 25 more u8 | 26 bids u16 | 28 asks u16 | 30 levels,
//	bids (best first) then asks (best first), each 21 bytes:
//	side u8 | price i64 | qty i64 | orders u32
//
// FeedSeq is the feed sequence number of the last change the snapshot
// includes; the next LevelUpdate or Trade has FeedSeq+1. Seq is the last
// command applied. The found byte holds Found in bit 0 and Resumed in bit
// 1: a Resumed snapshot carries no levels and answers a Subscribe from
// FeedSeq+1 whose missed updates follow (the subscriber keeps its book).
type BookSnapshot struct {
	Request    uint32
	Instrument engine.InstrumentID
	FeedSeq    uint64
	Seq        engine.Seq
	Found      bool
	More       bool
	Resumed    bool
	// Phase is the instrument's trading phase at the snapshot (0 in a
	// Resumed or not-found answer).
	Phase engine.Phase
}

// MaxSnapshotLevels is the most levels (both sides together) one
// BookSnapshot frame carries.
const MaxSnapshotLevels = 2000

// Append appends the frame with the given levels (at most
// MaxSnapshotLevels together; the caller splits longer books and sets
// More).
func (m *BookSnapshot) Append(b []byte, bids, asks []engine.LevelInfo) []byte {
	bids = bids[:min(len(bids), MaxSnapshotLevels)]
	asks = asks[:min(len(asks), MaxSnapshotLevels-len(bids))]
	b = appendHeader(b, TypeBookSnapshot, snapshotHeadSize+snapshotLevel*(len(bids)+len(asks)))
	b = be.AppendUint32(b, m.Request)
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = be.AppendUint64(b, m.FeedSeq)
	b = be.AppendUint64(b, uint64(m.Seq))
	b = append(b, boolByte(m.Found)|boolByte(m.Resumed)<<1|byte(m.Phase&7)<<2, boolByte(m.More))
	b = be.AppendUint16(b, uint16(len(bids)))
	b = be.AppendUint16(b, uint16(len(asks)))
	for _, l := range bids {
		b = appendLevel(append(b, byte(engine.Buy)), l)
	}
	for _, l := range asks {
		b = appendLevel(append(b, byte(engine.Sell)), l)
	}
	return b
}

// Decode fills m and appends the levels to bids and asks.
func (m *BookSnapshot) Decode(body []byte, bids, asks []engine.LevelInfo) ([]engine.LevelInfo, []engine.LevelInfo, error) {
	if len(body) < snapshotHeadSize {
		return bids, asks, fmt.Errorf("%w: book snapshot of %d bytes", ErrBadLength, len(body))
	}
	m.Request = be.Uint32(body)
	m.Instrument = engine.InstrumentID(be.Uint32(body[4:]))
	m.FeedSeq = be.Uint64(body[8:])
	m.Seq = engine.Seq(be.Uint64(body[16:]))
	m.Found, m.Resumed, m.More = body[24]&1 != 0, body[24]&2 != 0, body[25] != 0
	m.Phase = engine.Phase(body[24] >> 2 & 7)
	nb, na := int(be.Uint16(body[26:])), int(be.Uint16(body[28:]))
	if nb+na > MaxSnapshotLevels {
		return bids, asks, fmt.Errorf("%w: book snapshot says %d+%d levels, at most %d a frame", ErrBadLength, nb, na, MaxSnapshotLevels)
	}
	if len(body) != snapshotHeadSize+snapshotLevel*(nb+na) {
		return bids, asks, fmt.Errorf("%w: book snapshot says %d+%d levels in %d bytes", ErrBadLength, nb, na, len(body))
	}
	p := body[snapshotHeadSize:]
	for i := 0; i < nb+na; i++ {
		side := engine.Side(p[0])
		if (i < nb && side != engine.Buy) || (i >= nb && side != engine.Sell) {
			return bids, asks, fmt.Errorf("%w: book snapshot level %d has side %d", ErrBadLength, i, side)
		}
		l := decodeLevel(p[1:])
		if i < nb {
			bids = append(bids, l)
		} else {
			asks = append(asks, l)
		}
		p = p[snapshotLevel:]
	}
	return bids, asks, nil
}

// LevelUpdate is a price level's new state. Offsets:
//
//	0 instrument u32 | 4 feed seq u64 | 12 seq u64 | 20 side u8 |
//	21 price i64 | 29 qty i64 | 37 orders u32
//
// Qty 0 (and Orders 0) removes the level.
type LevelUpdate struct {
	Instrument engine.InstrumentID
	FeedSeq    uint64
	Seq        engine.Seq
	Side       engine.Side
	Price      engine.Price
	Qty        engine.Qty
	Orders     int32
}

// Append appends the frame.
func (m *LevelUpdate) Append(b []byte) []byte {
	b = appendHeader(b, TypeLevelUpdate, levelUpdateSize)
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = be.AppendUint64(b, m.FeedSeq)
	b = be.AppendUint64(b, uint64(m.Seq))
	b = append(b, byte(m.Side))
	return appendLevel(b, engine.LevelInfo{Price: m.Price, Qty: m.Qty, Orders: m.Orders})
}

// Decode fills m from a body returned by Parse.
func (m *LevelUpdate) Decode(body []byte) {
	_ = body[levelUpdateSize-1]
	m.Instrument = engine.InstrumentID(be.Uint32(body))
	m.FeedSeq = be.Uint64(body[4:])
	m.Seq = engine.Seq(be.Uint64(body[12:]))
	m.Side = engine.Side(body[20])
	l := decodeLevel(body[21:])
	m.Price, m.Qty, m.Orders = l.Price, l.Qty, l.Orders
}

// Trade is one execution, as the public sees it. Offsets:
//
//	0 instrument u32 | 4 feed seq u64 | 12 seq u64 | 20 time i64 |
//	28 trade u64 | 36 aggressor side u8 | 37 price i64 | 45 qty i64
type Trade struct {
	Instrument engine.InstrumentID
	FeedSeq    uint64
	Seq        engine.Seq
	Time       int64
	Trade      engine.TradeID
	Aggressor  engine.Side // the taker's side
	Price      engine.Price
	Qty        engine.Qty
}

// Append appends the frame.
func (m *Trade) Append(b []byte) []byte {
	b = appendHeader(b, TypeTrade, tradeSize)
	b = be.AppendUint32(b, uint32(m.Instrument))
	b = be.AppendUint64(b, m.FeedSeq)
	b = be.AppendUint64(b, uint64(m.Seq))
	b = be.AppendUint64(b, uint64(m.Time))
	b = be.AppendUint64(b, uint64(m.Trade))
	b = append(b, byte(m.Aggressor))
	b = be.AppendUint64(b, uint64(m.Price))
	return be.AppendUint64(b, uint64(m.Qty))
}

// Decode fills m from a body returned by Parse.
func (m *Trade) Decode(body []byte) {
	_ = body[tradeSize-1]
	m.Instrument = engine.InstrumentID(be.Uint32(body))
	m.FeedSeq = be.Uint64(body[4:])
	m.Seq = engine.Seq(be.Uint64(body[12:]))
	m.Time = int64(be.Uint64(body[20:]))
	m.Trade = engine.TradeID(be.Uint64(body[28:]))
	m.Aggressor = engine.Side(body[36])
	m.Price = engine.Price(be.Uint64(body[37:]))
	m.Qty = engine.Qty(be.Uint64(body[45:]))
}
