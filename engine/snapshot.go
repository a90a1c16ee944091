package engine

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// Snapshot format, version 3. All integers are big-endian; strings are a
// uint16 length then the bytes. The layout is part of the on-disk format:
// change it only with a new version number.
//
//	magic      "MXSNAP" (6 bytes)
//	version    uint16 = 3
//	lastSeq    uint64   nextOrder uint64   nextTrade uint64
//	now        int64    arrivals uint64
//	defaultSTP uint8
//	nDefaults  uint32, then per configured account, by ID:
//	           id uint32, stp uint8, operator uint8
//	nAccounts  uint32, then per account that has been seen, by ID:
//	           id uint32, stp uint8, nSessions uint32, then per session in
//	           order of first use: name uint64, lastRef uint64, msgs uint64
//	nInstr     uint32, then per instrument in configuration order:
//	           id uint32, symbol, tickSize, lotSize (strings),
//	           maxQty int64, bandBps int64, startPrice int64,
//	           maxOpen int32, volBps int64, volAuction int64,
//	           auctionAt int64, openAt int64, closeAt int64,
//	           refPrice int64, feedSeq uint64,
//	           phase uint8, phaseEnd int64, nextSched int64,
//	           indicative price int64, qty int64, surplus int64, side uint8,
//	           cascade uint8,
//	           then bids and asks, each: nOrders uint32, then the orders in
//	           priority order (best level first, FIFO within a level):
//	           id uint64, account uint32, session uint64, ref uint64,
//	           price int64, qty int64, filled int64, time int64, tif uint8,
//	           stp uint8, display int64, hidden int64, expire int64
//	           then buy stops and sell stops, each: nStops uint32, then the
//	           parked stops in trigger order: id uint64, account uint32,
//	           session uint64, ref uint64, type uint8, price int64,
//	           stop int64, qty int64, time int64, tif uint8, stp uint8,
//	           display int64, expire int64, arrival uint64
//	nLists     uint32, then per account with open orders, by ID:
//	           id uint32, n uint32, n order IDs uint64 (oldest first)
//	crc        uint32: CRC-32C (Castagnoli) of every byte before it
//
// Version 2 (before stops, icebergs, expiry and phases) lacks now,
// arrivals, operator, the instrument's volatility and schedule fields
// and phase state, the orders' display, hidden and expire, and the stops;
// Restore reads it with every instrument continuous. Version 1 (before
// sessions) also had per account id, lastRef, stp; no feedSeq; no order
// session: every account's one session is named 0 and holds its lastRef
// and no messages, and feed numbers start from 0.
//
// The same state always produces the same bytes.
const (
	snapMagic   = "MXSNAP"
	snapVersion = 3
)

// ErrBadSnapshot is returned (wrapped) by Restore for bytes that are not a
// valid snapshot.
var ErrBadSnapshot = errors.New("engine: bad snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot appends the engine's whole state to out and returns it.
func (e *Engine) Snapshot(out []byte) []byte {
	be := binary.BigEndian
	start := len(out)
	out = append(out, snapMagic...)
	out = be.AppendUint16(out, snapVersion)
	out = be.AppendUint64(out, uint64(e.lastSeq))
	out = be.AppendUint64(out, uint64(e.nextOrder))
	out = be.AppendUint64(out, uint64(e.nextTrade))
	out = be.AppendUint64(out, uint64(e.now))
	out = be.AppendUint64(out, e.arrivals)
	out = append(out, byte(e.defaultSTP))

	defIDs := make([]AccountID, 0, len(e.acctSTP))
	for id := range e.acctSTP {
		defIDs = append(defIDs, id)
	}
	slices.Sort(defIDs)
	out = be.AppendUint32(out, uint32(len(defIDs)))
	for _, id := range defIDs {
		out = be.AppendUint32(out, uint32(id))
		out = append(out, byte(e.acctSTP[id]), boolByte(e.operators[id]))
	}

	accts := slices.Clone(e.accts)
	slices.SortFunc(accts, func(a, b *account) int { return cmp.Compare(a.id, b.id) })
	out = be.AppendUint32(out, uint32(len(accts)))
	for _, a := range accts {
		out = be.AppendUint32(out, uint32(a.id))
		out = append(out, byte(a.stp))
		out = be.AppendUint32(out, uint32(len(a.sessions)))
		for _, i := range a.sessions {
			ss := e.sess[i]
			out = be.AppendUint64(out, uint64(ss.name))
			out = be.AppendUint64(out, uint64(ss.lastRef))
			out = be.AppendUint64(out, ss.msgs)
		}
	}

	out = be.AppendUint32(out, uint32(len(e.books)))
	for _, b := range e.books {
		in := b.inst
		out = be.AppendUint32(out, uint32(in.ID))
		out = appendString(out, in.Symbol)
		out = appendString(out, in.TickSize)
		out = appendString(out, in.LotSize)
		out = be.AppendUint64(out, uint64(in.MaxQty))
		out = be.AppendUint64(out, uint64(in.BandBps))
		out = be.AppendUint64(out, uint64(in.StartPrice))
		out = be.AppendUint32(out, uint32(in.MaxOpenPerAccount))
		for _, v := range []int64{in.VolatilityBps, in.VolatilityAuction, in.AuctionAt, in.OpenAt, in.CloseAt} {
			out = be.AppendUint64(out, uint64(v))
		}
		out = be.AppendUint64(out, uint64(b.refPrice))
		out = be.AppendUint64(out, b.feedSeq)
		out = append(out, byte(b.phase))
		for _, v := range []int64{b.phaseEnd, b.nextSched, int64(b.indPrice), int64(b.indQty), int64(b.indSur)} {
			out = be.AppendUint64(out, uint64(v))
		}
		out = append(out, byte(b.indSide), boolByte(b.cascade))
		for _, s := range []*bookSide{&b.bids, &b.asks} {
			n := 0
			s.scan(func(l *level) bool { n += int(l.count); return true })
			out = be.AppendUint32(out, uint32(n))
			s.scan(func(l *level) bool {
				for o := l.head; o != nil; o = o.next {
					out = be.AppendUint64(out, uint64(o.id))
					out = be.AppendUint32(out, uint32(e.accts[o.acct].id))
					out = be.AppendUint64(out, uint64(e.sess[o.sess].name))
					out = be.AppendUint64(out, uint64(o.ref))
					out = be.AppendUint64(out, uint64(o.price))
					out = be.AppendUint64(out, uint64(o.qty))
					out = be.AppendUint64(out, uint64(o.filled))
					out = be.AppendUint64(out, uint64(o.time))
					out = append(out, byte(o.tif), byte(o.stp))
					var x orderExt
					if p := e.extOf(o); p != nil {
						x = *p
					}
					out = be.AppendUint64(out, uint64(x.display))
					out = be.AppendUint64(out, uint64(x.hidden))
					out = be.AppendUint64(out, uint64(x.expire))
				}
				return true
			})
		}
		for _, t := range b.stops {
			out = be.AppendUint32(out, uint32(t.Len()))
			t.Scan(func(k stopKey) bool {
				o, x := k.o, e.extOf(k.o)
				out = be.AppendUint64(out, uint64(o.id))
				out = be.AppendUint32(out, uint32(e.accts[o.acct].id))
				out = be.AppendUint64(out, uint64(e.sess[o.sess].name))
				out = be.AppendUint64(out, uint64(o.ref))
				out = append(out, byte(o.typ))
				out = be.AppendUint64(out, uint64(o.price))
				out = be.AppendUint64(out, uint64(x.stop))
				out = be.AppendUint64(out, uint64(o.qty))
				out = be.AppendUint64(out, uint64(o.time))
				out = append(out, byte(o.tif), byte(o.stp))
				out = be.AppendUint64(out, uint64(x.display))
				out = be.AppendUint64(out, uint64(x.expire))
				out = be.AppendUint64(out, x.arrival)
				return true
			})
		}
	}

	nLists := 0
	for _, a := range accts {
		if a.head != nil {
			nLists++
		}
	}
	out = be.AppendUint32(out, uint32(nLists))
	for _, a := range accts {
		if a.head == nil {
			continue
		}
		n := 0
		for o := a.head; o != nil; o = o.anext {
			n++
		}
		out = be.AppendUint32(out, uint32(a.id))
		out = be.AppendUint32(out, uint32(n))
		for o := a.head; o != nil; o = o.anext {
			out = be.AppendUint64(out, uint64(o.id))
		}
	}
	return be.AppendUint32(out, crc32.Checksum(out[start:], castagnoli))
}

// StateHash returns a SHA-256 of the engine's snapshot: equal states, equal
// hashes.
func (e *Engine) StateHash() [32]byte {
	return sha256.Sum256(e.Snapshot(nil))
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendString(out []byte, s string) []byte {
	out = binary.BigEndian.AppendUint16(out, uint16(len(s)))
	return append(out, s...)
}

// snapReader decodes a snapshot, remembering the first error.
type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("%w: truncated", ErrBadSnapshot)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *snapReader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *snapReader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *snapReader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *snapReader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *snapReader) str() string { return string(r.take(int(r.u16()))) }

// count reads a uint32 element count and checks that the remaining bytes
// could hold that many elements of at least minSize bytes.
func (r *snapReader) count(minSize int) int {
	n := int(r.u32())
	if r.err == nil && n*minSize > len(r.b) {
		r.err = fmt.Errorf("%w: count %d exceeds data", ErrBadSnapshot, n)
		return 0
	}
	return n
}

// Restore builds an engine from a snapshot made by Snapshot. The result is
// in exactly the state the snapshot was taken in: applying the same commands
// to both produces the same events.
func Restore(data []byte) (*Engine, error) {
	if len(data) < len(snapMagic)+2+4 {
		return nil, fmt.Errorf("%w: too short", ErrBadSnapshot)
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	r := &snapReader{b: body}
	if string(r.take(len(snapMagic))) != snapMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrBadSnapshot)
	}
	version := r.u16()
	if version < 1 || version > snapVersion {
		return nil, fmt.Errorf("%w: version %d not supported", ErrBadSnapshot, version)
	}
	lastSeq, nextOrder, nextTrade := Seq(r.u64()), OrderID(r.u64()), TradeID(r.u64())
	var now int64
	var arrivals uint64
	if version >= 3 {
		now, arrivals = int64(r.u64()), r.u64()
	}
	var cfg Config
	cfg.DefaultSTP = STPMode(r.u8())
	defSize := 5
	if version >= 3 {
		defSize = 6
	}
	for i := range r.count(defSize) {
		cfg.Accounts = append(cfg.Accounts, AccountDefaults{ID: AccountID(r.u32()), STP: STPMode(r.u8())})
		if version >= 3 {
			switch r.u8() {
			case 0:
			case 1:
				cfg.Accounts[i].Operator = true
			default:
				return nil, fmt.Errorf("%w: account %d: bad operator flag", ErrBadSnapshot, cfg.Accounts[i].ID)
			}
		}
		if i > 0 && cfg.Accounts[i].ID <= cfg.Accounts[i-1].ID {
			return nil, fmt.Errorf("%w: account defaults not in ID order", ErrBadSnapshot)
		}
	}
	type acctState struct {
		id       AccountID
		stp      STPMode
		sessions []session
	}
	accts := make([]acctState, r.count(9))
	for i := range accts {
		a := &accts[i]
		if version == 1 {
			a.id = AccountID(r.u32())
			a.sessions = []session{{lastRef: ClientRef(r.u64())}}
			a.stp = STPMode(r.u8())
		} else {
			a.id, a.stp = AccountID(r.u32()), STPMode(r.u8())
			a.sessions = make([]session, r.count(24))
			for j := range a.sessions {
				a.sessions[j] = session{name: SessionID(r.u64()), lastRef: ClientRef(r.u64()), msgs: r.u64()}
				for k := range j {
					if a.sessions[k].name == a.sessions[j].name {
						return nil, fmt.Errorf("%w: account %d lists session %d twice", ErrBadSnapshot, a.id, a.sessions[j].name)
					}
				}
			}
			if len(a.sessions) > MaxSessionsPerAccount {
				return nil, fmt.Errorf("%w: account %d has %d sessions", ErrBadSnapshot, a.id, len(a.sessions))
			}
		}
		if i > 0 && accts[i].id <= accts[i-1].id {
			return nil, fmt.Errorf("%w: accounts not in ID order", ErrBadSnapshot)
		}
	}
	type bookState struct {
		refPrice  Price
		feedSeq   uint64
		phase     Phase
		phaseEnd  int64
		nextSched int64
		ind       [3]int64
		indSide   Side
		cascade   bool
		sides     [4][]order // bids, asks, buy stops, sell stops; accts resolved below
		exts      [4][]orderExt
		acctIDs   [4][]AccountID
		sessIDs   [4][]SessionID
	}
	var books []bookState
	for range r.count(4) {
		in := Instrument{ID: InstrumentID(r.u32()), Symbol: r.str(), TickSize: r.str(), LotSize: r.str()}
		in.MaxQty, in.BandBps, in.StartPrice = Qty(r.u64()), int64(r.u64()), Price(r.u64())
		in.MaxOpenPerAccount = int32(r.u32())
		if version >= 3 {
			in.VolatilityBps, in.VolatilityAuction = int64(r.u64()), int64(r.u64())
			in.AuctionAt, in.OpenAt, in.CloseAt = int64(r.u64()), int64(r.u64()), int64(r.u64())
		}
		cfg.Instruments = append(cfg.Instruments, in)
		bs := bookState{refPrice: Price(r.u64()), phase: PhaseContinuous}
		orderSize := 58
		if version > 1 {
			bs.feedSeq = r.u64()
			orderSize += 8
		}
		if version >= 3 {
			bs.phase = Phase(r.u8())
			bs.phaseEnd, bs.nextSched = int64(r.u64()), int64(r.u64())
			bs.ind = [3]int64{int64(r.u64()), int64(r.u64()), int64(r.u64())}
			bs.indSide = Side(r.u8())
			switch r.u8() {
			case 0:
			case 1:
				bs.cascade = true
			default:
				return nil, fmt.Errorf("%w: %s: bad cascade flag", ErrBadSnapshot, in.Symbol)
			}
			orderSize += 24
		}
		for s := range 2 {
			n := r.count(orderSize)
			bs.sides[s] = make([]order, n)
			bs.exts[s] = make([]orderExt, n)
			bs.acctIDs[s] = make([]AccountID, n)
			bs.sessIDs[s] = make([]SessionID, n)
			for i := range n {
				o := &bs.sides[s][i]
				o.id = OrderID(r.u64())
				bs.acctIDs[s][i] = AccountID(r.u32())
				if version > 1 {
					bs.sessIDs[s][i] = SessionID(r.u64())
				}
				o.ref, o.price, o.qty = ClientRef(r.u64()), Price(r.u64()), Qty(r.u64())
				o.filled, o.time = Qty(r.u64()), int64(r.u64())
				o.tif, o.stp, o.typ = TimeInForce(r.u8()), STPMode(r.u8()), Limit
				if version >= 3 {
					x := &bs.exts[s][i]
					x.display, x.hidden, x.expire = Qty(r.u64()), Qty(r.u64()), int64(r.u64())
				}
			}
		}
		if version >= 3 {
			for s := 2; s < 4; s++ {
				n := r.count(84)
				bs.sides[s] = make([]order, n)
				bs.exts[s] = make([]orderExt, n)
				bs.acctIDs[s] = make([]AccountID, n)
				bs.sessIDs[s] = make([]SessionID, n)
				for i := range n {
					o, x := &bs.sides[s][i], &bs.exts[s][i]
					o.id = OrderID(r.u64())
					bs.acctIDs[s][i] = AccountID(r.u32())
					bs.sessIDs[s][i] = SessionID(r.u64())
					o.ref, o.typ = ClientRef(r.u64()), OrderType(r.u8())
					o.price, x.stop, o.qty = Price(r.u64()), Price(r.u64()), Qty(r.u64())
					o.time = int64(r.u64())
					o.tif, o.stp = TimeInForce(r.u8()), STPMode(r.u8())
					x.display, x.expire, x.arrival = Qty(r.u64()), int64(r.u64()), r.u64()
				}
			}
		}
		books = append(books, bs)
	}
	if r.err != nil {
		return nil, r.err
	}
	// Snapshots hold the configuration after EnsureDefaults: a zero where a
	// default belongs means the bytes were not written by Snapshot.
	zero := cfg.DefaultSTP == STPDefault
	for _, a := range cfg.Accounts {
		zero = zero || a.STP == STPDefault
	}
	for _, in := range cfg.Instruments {
		zero = zero || in.MaxQty == 0 || in.MaxOpenPerAccount == 0 || in.VolatilityBps != 0 && in.VolatilityAuction == 0
	}
	if zero {
		return nil, fmt.Errorf("%w: configuration field left at zero", ErrBadSnapshot)
	}
	e, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	e.lastSeq, e.nextOrder, e.nextTrade = lastSeq, nextOrder, nextTrade
	e.now, e.arrivals = now, arrivals
	for _, a := range accts {
		if !validSTP(a.stp) || a.stp == STPDefault {
			return nil, fmt.Errorf("%w: account %d invalid", ErrBadSnapshot, a.id)
		}
		na := e.addAccount(a.id, a.stp)
		for _, ss := range a.sessions {
			e.addSession(na, ss.name, ss.lastRef, ss.msgs)
		}
		na.lastSess = -1
	}
	resting := 0
	for bi, bs := range books {
		b := e.books[bi]
		b.refPrice, b.feedSeq = bs.refPrice, bs.feedSeq
		b.phase, b.phaseEnd, b.nextSched, b.cascade = bs.phase, bs.phaseEnd, bs.nextSched, bs.cascade
		if b.auction() {
			e.auctions++
		}
		b.indPrice, b.indQty, b.indSur, b.indSide = Price(bs.ind[0]), Qty(bs.ind[1]), Qty(bs.ind[2]), bs.indSide
		if version < 3 && b.inst.scheduled() {
			b.phase, b.nextSched = PhaseClosed, 1
		}
		if b.phase < PhaseContinuous || b.phase > PhaseVolatility || (b.phase == PhaseVolatility) != (b.phaseEnd != 0) ||
			b.indSide > Sell || b.nextSched != 0 && !b.inst.scheduled() {
			return nil, fmt.Errorf("%w: %s: bad phase state", ErrBadSnapshot, b.inst.Symbol)
		}
		for s, side := range []Side{Buy, Sell, Buy, Sell} {
			var last *order
			for i := range bs.sides[s] {
				src, sx := &bs.sides[s][i], &bs.exts[s][i]
				stop := s >= 2
				a := e.lookupAccount(bs.acctIDs[s][i])
				sess := int32(-1)
				if a != nil {
					for _, j := range a.sessions {
						if e.sess[j].name == bs.sessIDs[s][i] {
							sess = j
						}
					}
				}
				switch {
				case a == nil:
					return nil, fmt.Errorf("%w: order %d of unknown account", ErrBadSnapshot, src.id)
				case sess < 0:
					return nil, fmt.Errorf("%w: order %d of a session its account does not have", ErrBadSnapshot, src.id)
				case src.id == 0 || src.id > nextOrder || e.orders.get(src.id) != nil:
					return nil, fmt.Errorf("%w: order id %d duplicate or out of range", ErrBadSnapshot, src.id)
				case src.qty <= 0 || src.filled < 0 || src.price < 0 || src.price > MaxPrice ||
					src.price == 0 && src.typ != Stop || src.price != 0 && src.typ == Stop:
					return nil, fmt.Errorf("%w: order %d has bad price or quantity", ErrBadSnapshot, src.id)
				case !validSTP(src.stp) || src.stp == STPDefault,
					!stop && !rests(src.tif), stop && src.typ == Stop && src.tif != IOC,
					stop && src.typ == StopLimit && src.tif != GTC && src.tif != IOC && src.tif != GTD && src.tif != Day,
					stop && src.typ != Stop && src.typ != StopLimit:
					return nil, fmt.Errorf("%w: order %d has bad type, tif or stp", ErrBadSnapshot, src.id)
				case sx.display < 0 || sx.hidden < 0 || sx.hidden > 0 && sx.display == 0 || sx.expire < 0 ||
					(sx.expire != 0) != (src.tif == GTD) || stop && (sx.stop <= 0 || sx.stop > MaxPrice):
					return nil, fmt.Errorf("%w: order %d has bad stop, display or expiry", ErrBadSnapshot, src.id)
				case !stop && last != nil && last.price != src.price && !b.sideOf(side).better(last.price, src.price),
					!stop && last != nil && last.price == src.price && last.time > src.time,
					stop && last != nil && !stopLess(stopKeyOf(last, e.extOf(last)), stopKey{key: stopKeyOf(src, sx).key, arrival: sx.arrival}),
					stop && (sx.arrival == 0 || sx.arrival > arrivals):
					return nil, fmt.Errorf("%w: order %d out of priority order", ErrBadSnapshot, src.id)
				}
				o := e.allocOrder()
				h := o.handle
				*o = *src
				o.handle = h
				o.acct, o.sess, o.bookIdx, o.side = a.idx, sess, int32(b.idx), side
				if *sx != (orderExt{}) {
					*e.allocExt(o) = *sx
				}
				if stop {
					b.stopTree(side).Set(stopKeyOf(o, e.extOf(o)))
					b.parked++
				} else {
					e.addToLevel(b.sideOf(side), o)
				}
				e.orders.put(o)
				if sx.expire != 0 {
					e.expiries.Set(expKey{at: sx.expire, id: o.id, o: o})
				}
				a.open[b.idx]++
				last = o
				resting++
			}
		}
		if bb, ba := b.bids.best, b.asks.best; bb != nil && ba != nil && bb.price >= ba.price && b.phase == PhaseContinuous {
			return nil, fmt.Errorf("%w: %s crossed", ErrBadSnapshot, b.inst.Symbol)
		}
	}
	listed := 0
	var prevList *account
	for range r.count(8) {
		a := e.lookupAccount(AccountID(r.u32()))
		n := r.count(8)
		if a == nil || (prevList != nil && a.id <= prevList.id) || n == 0 {
			return nil, fmt.Errorf("%w: order lists not in account order, or empty", ErrBadSnapshot)
		}
		prevList = a
		for range n {
			o := e.orders.get(OrderID(r.u64()))
			if o == nil || o.acct != a.idx || o.anext != nil || a.tail == o {
				return nil, fmt.Errorf("%w: account %d lists an order it does not own", ErrBadSnapshot, a.id)
			}
			o.aprev = a.tail
			if a.tail != nil {
				a.tail.anext = o
			} else {
				a.head = o
			}
			a.tail = o
			listed++
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadSnapshot, len(r.b))
	}
	if listed != resting {
		return nil, fmt.Errorf("%w: accounts list %d orders, books hold %d", ErrBadSnapshot, listed, resting)
	}
	e.computeWake()
	for _, b := range e.books { // as the last command left them
		b.published, b.topDirty = b.top(), false
	}
	if err := e.CheckInvariants(); version >= 3 && err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	return e, nil
}
