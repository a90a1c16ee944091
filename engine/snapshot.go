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

// Snapshot format, version 2. All integers are big-endian; strings are a
// uint16 length then the bytes. The layout is part of the on-disk format:
// change it only with a new version number.
//
//	magic      "MXSNAP" (6 bytes)
//	version    uint16 = 2
//	lastSeq    uint64   nextOrder uint64   nextTrade uint64
//	defaultSTP uint8
//	nDefaults  uint32, then per configured account, by ID:
//	           id uint32, stp uint8
//	nAccounts  uint32, then per account that has been seen, by ID:
//	           id uint32, stp uint8, nSessions uint32, then per session in
//	           order of first use: name uint64, lastRef uint64, msgs uint64
//	nInstr     uint32, then per instrument in configuration order:
//	           id uint32, symbol, tickSize, lotSize (strings),
//	           maxQty int64, bandBps int64, startPrice int64,
//	           maxOpen int32, refPrice int64, feedSeq uint64,
//	           then bids and asks, each: nOrders uint32, then the orders in
//	           priority order (best level first, FIFO within a level):
//	           id uint64, account uint32, session uint64, ref uint64,
//	           price int64, qty int64, filled int64, time int64, tif uint8,
//	           stp uint8
//	nLists     uint32, then per account with open orders, by ID:
//	           id uint32, n uint32, n order IDs uint64 (oldest first)
//	crc        uint32: CRC-32C (Castagnoli) of every byte before it
//
// Version 1 (before sessions) had per account id, lastRef, stp; no
// feedSeq; no order session. Restore reads it as version 2 with every
// account's one session named 0 holding its lastRef and no messages, and
// feed numbers from 0.
//
// The same state always produces the same bytes.
const (
	snapMagic   = "MXSNAP"
	snapVersion = 2
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
	out = append(out, byte(e.defaultSTP))

	defIDs := make([]AccountID, 0, len(e.acctSTP))
	for id := range e.acctSTP {
		defIDs = append(defIDs, id)
	}
	slices.Sort(defIDs)
	out = be.AppendUint32(out, uint32(len(defIDs)))
	for _, id := range defIDs {
		out = be.AppendUint32(out, uint32(id))
		out = append(out, byte(e.acctSTP[id]))
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
		out = be.AppendUint64(out, uint64(b.refPrice))
		out = be.AppendUint64(out, b.feedSeq)
		for _, s := range []*bookSide{&b.bids, &b.asks} {
			n := 0
			s.levels.Scan(func(_ Price, l *level) bool { n += int(l.count); return true })
			out = be.AppendUint32(out, uint32(n))
			s.levels.Scan(func(_ Price, l *level) bool {
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
				}
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
	if version != 1 && version != snapVersion {
		return nil, fmt.Errorf("%w: version %d not supported", ErrBadSnapshot, version)
	}
	lastSeq, nextOrder, nextTrade := Seq(r.u64()), OrderID(r.u64()), TradeID(r.u64())
	var cfg Config
	cfg.DefaultSTP = STPMode(r.u8())
	for i := range r.count(5) {
		cfg.Accounts = append(cfg.Accounts, AccountDefaults{ID: AccountID(r.u32()), STP: STPMode(r.u8())})
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
		refPrice Price
		feedSeq  uint64
		sides    [2][]order // bids, asks; acct holds nil, accts resolved below
		acctIDs  [2][]AccountID
		sessIDs  [2][]SessionID
	}
	var books []bookState
	for range r.count(4) {
		in := Instrument{ID: InstrumentID(r.u32()), Symbol: r.str(), TickSize: r.str(), LotSize: r.str()}
		in.MaxQty, in.BandBps, in.StartPrice = Qty(r.u64()), int64(r.u64()), Price(r.u64())
		in.MaxOpenPerAccount = int32(r.u32())
		cfg.Instruments = append(cfg.Instruments, in)
		bs := bookState{refPrice: Price(r.u64())}
		orderSize := 58
		if version > 1 {
			bs.feedSeq = r.u64()
			orderSize += 8
		}
		for s := range 2 {
			n := r.count(orderSize)
			bs.sides[s] = make([]order, n)
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
				o.tif, o.stp = TimeInForce(r.u8()), STPMode(r.u8())
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
		zero = zero || in.MaxQty == 0 || in.MaxOpenPerAccount == 0
	}
	if zero {
		return nil, fmt.Errorf("%w: configuration field left at zero", ErrBadSnapshot)
	}
	e, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	e.lastSeq, e.nextOrder, e.nextTrade = lastSeq, nextOrder, nextTrade
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
		for s, side := range []Side{Buy, Sell} {
			var last *order
			for i := range bs.sides[s] {
				src := &bs.sides[s][i]
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
				case src.qty <= 0 || src.filled < 0 || src.price <= 0 || src.price > MaxPrice:
					return nil, fmt.Errorf("%w: order %d has bad price or quantity", ErrBadSnapshot, src.id)
				case src.tif != GTC && src.tif != PostOnly, !validSTP(src.stp) || src.stp == STPDefault:
					return nil, fmt.Errorf("%w: order %d has bad tif or stp", ErrBadSnapshot, src.id)
				case last != nil && last.price != src.price && !b.sideOf(side).better(last.price, src.price),
					last != nil && last.price == src.price && last.time > src.time:
					return nil, fmt.Errorf("%w: order %d out of priority order", ErrBadSnapshot, src.id)
				}
				o := e.allocOrder()
				h := o.handle
				*o = *src
				o.handle = h
				o.acct, o.sess, o.bookIdx, o.side, o.typ = a.idx, sess, int32(b.idx), side, Limit
				e.addToLevel(b.sideOf(side), o)
				e.orders.put(o)
				a.open[b.idx]++
				last = o
				resting++
			}
		}
		if bb, ba := b.bids.best, b.asks.best; bb != nil && ba != nil && bb.price >= ba.price {
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
	return e, nil
}
