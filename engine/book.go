package engine

import "github.com/tidwall/btree"

// order is an open order, or an incoming one while it matches. Orders come
// from the engine's free list and go back to it when they close.
type order struct {
	id     OrderID
	ref    ClientRef
	price  Price // limit price; for a market order while it matches, its protection price
	qty    Qty   // open (leaves) quantity
	filled Qty
	time   int64  // of the command that accepted or last re-prioritised it
	level  *level // nil unless resting

	prev, next   *order // FIFO at the level
	aprev, anext *order // the account's open orders, oldest first

	acct    int32 // index of its account in Engine.accts
	sess    int32 // index of the session that entered it in Engine.sess
	handle  int32 // its place in the orderStore; never changes
	bookIdx int32 // index of its book in Engine.books
	side    Side
	typ     OrderType
	tif     TimeInForce
	stp     STPMode // resolved: never STPDefault
	ext     int32   // index+1 of its orderExt in Engine.exts; 0: a plain order
}

// orderExt holds what only some orders have: stops, icebergs and expiries.
// Keeping it out of order keeps plain orders small.
type orderExt struct {
	stop    Price  // trigger price while parked; 0 once triggered (or never a stop)
	display Qty    // iceberg slice size; 0: not an iceberg
	hidden  Qty    // iceberg reserve not yet shown
	expire  int64  // GTD expiry; 0: none
	arrival uint64 // parked stops: place in the trigger order
}

// eventPrice is the price events report for o: its limit price, or zero for
// a market order.
func (o *order) eventPrice() Price {
	if o.typ == Market {
		return 0
	}
	return o.price
}

// level is one price level of one side: a FIFO of resting orders and their
// total open quantity.
type level struct {
	price      Price
	qty        Qty // shown quantity
	hidden     Qty // icebergs' reserves
	count      int32
	head, tail *order // head is the oldest
	better     *level // the side's neighbouring levels in the tree, empty ones included
	worse      *level
	nextFree   *level
	epoch      uint64 // Engine.epoch of the last command that recorded it in Engine.levels
	gen        uint64 // while empty and kept for reuse: its entry in bookSide.empties; else 0
	touch      int32  // and the record's index there
	id         int32  // its index in Engine.levelSlabs
}

// bookSide is the bids or the asks of one book. Levels are kept in a btree
// keyed so that the smallest key is the best price (price for asks, -price
// for bids); best is cached so matching never searches the tree for it.
//
// A level that empties stays in the tree, empty, for reuse: prices near the
// touch empty and fill again all the time (a sweep, then the makers
// replenishing), and a reused level costs no tree insert or delete. The
// side keeps the last emptyKeep emptied levels in a ring; one pushed out of
// the ring while still empty leaves the tree then. Everything that walks the
// levels goes through scan, which skips the empty ones.
//
// The levels in the tree are also linked in price order (better, worse), so
// the next best level after the best empties is a pointer away, and a new
// level a few prices from the best is placed without searching the tree;
// and they are in a hash by price, so an order joining a level that
// exists never searches it.
type bookSide struct {
	levels  btree.Map[Price, *level]
	byPrice levelHash // the same levels by price
	best    *level    // the best non-empty level, nil if none
	last    *level    // the worst level in the tree (maybe empty)
	side    Side
	emptyAt int32 // next slot of empties to write
	empties [emptyKeep]emptyRef
}

// emptyKeep bounds the empty levels a side keeps in its tree.
const emptyKeep = 64

// emptyRef names a level that emptied: by id, with the generation it was
// given then, so that an entry for a level reused (and maybe emptied
// again, with a new entry) since is recognised as stale.
type emptyRef struct {
	gen uint64
	id  int32
}

// scan calls fn for each non-empty level, best first, until it returns
// false.
func (s *bookSide) scan(fn func(l *level) bool) {
	s.levels.Scan(func(_ Price, l *level) bool {
		return l.count == 0 || fn(l)
	})
}

// nextBest returns the best non-empty level worse than from, or nil.
func (s *bookSide) nextBest(from *level) *level {
	for l := from.worse; l != nil; l = l.worse {
		if l.count > 0 {
			return l
		}
	}
	return nil
}

// nearWalk bounds how many linked levels levelFor walks from the best to
// place a new level before it searches the tree instead.
const nearWalk = 8

// levelFor returns the level at price p (kept empty, maybe), or a new empty
// one it puts in the tree.
func (e *Engine) levelFor(s *bookSide, p Price) *level {
	if id := s.byPrice.find(p); id != 0 {
		return e.levelByID(id - 1)
	}
	// A new level: its neighbours are a short walk from the best, or a
	// search of the tree away.
	k := s.key(p)
	if x := s.best; x != nil {
		if k > s.key(x.price) {
			for i := 0; i < nearWalk; i++ {
				w := x.worse
				if w == nil || s.key(w.price) > k {
					return e.newLevel(s, p, x, w)
				}
				x = w
			}
		} else {
			for i := 0; i < nearWalk; i++ {
				bt := x.better
				if bt == nil || s.key(bt.price) < k {
					return e.newLevel(s, p, bt, x)
				}
				x = bt
			}
		}
	}
	var w *level
	s.levels.Ascend(k, func(_ Price, l *level) bool { w = l; return false })
	bt := s.last
	if w != nil {
		bt = w.better
	}
	return e.newLevel(s, p, bt, w)
}

// newLevel puts a new empty level at price p into the tree, between its
// neighbours better and worse (either may be nil).
func (e *Engine) newLevel(s *bookSide, p Price, better, worse *level) *level {
	l := e.allocLevel()
	l.price = p
	s.levels.Set(s.key(p), l)
	s.byPrice.put(p, l.id)
	l.better, l.worse = better, worse
	if better != nil {
		better.worse = l
	}
	if worse != nil {
		worse.better = l
	} else {
		s.last = l
	}
	return l
}

// dropLevel takes the empty level l out of the tree and frees it.
func (e *Engine) dropLevel(s *bookSide, l *level) {
	s.levels.Delete(s.key(l.price))
	s.byPrice.del(l.price)
	if l.better != nil {
		l.better.worse = l.worse
	}
	if l.worse != nil {
		l.worse.better = l.better
	} else {
		s.last = l.better
	}
	e.freeLevel(l)
}

func (s *bookSide) key(p Price) Price {
	if s.side == Buy {
		return -p
	}
	return p
}

// better reports whether price a is better than b for this side.
func (s *bookSide) better(a, b Price) bool {
	if s.side == Buy {
		return a > b
	}
	return a < b
}

// book is the order book of one instrument.
type book struct {
	inst     Instrument
	idx      int    // position in Engine.books, also the index into account.open
	refPrice Price  // last trade price, or the start price before the first trade
	feedSeq  uint64 // market data messages (trades and level changes) numbered so far
	bids     bookSide
	asks     bookSide

	epoch     uint64    // Engine.epoch of the last command that touched the book
	published TopOfBook // its top of book at the end of the last command (the last EvTopOfBook's)
	topDirty  bool      // the current command touched a level while it was the best

	phase     Phase
	phaseEnd  int64 // PhaseVolatility: when it uncrosses
	nextSched int64 // the next scheduled transition (engine time); 0: none or not yet set
	viRef     Price // the last trade price when the current incoming order began to match
	indPrice  Price // indicative uncrossing price last published (auctions)
	indQty    Qty
	indSur    Qty
	indSide   Side
	stops     [2]*btree.BTreeG[stopKey] // parked stops: buys (lowest stop first), sells (highest first)
	cascade   bool                      // stops left triggered by the cascade bound
	parked    int32                     // stops in the trees
}

// stopKey orders parked stops in trigger order: the stop price nearest to
// the market first (key is the stop for buys, minus it for sells), then
// arrival.
type stopKey struct {
	key     Price
	arrival uint64
	o       *order
}

func stopLess(a, b stopKey) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	return a.arrival < b.arrival
}

func newBook(in Instrument, idx int) *book {
	b := &book{inst: in, idx: idx, refPrice: in.StartPrice, phase: PhaseContinuous}
	if in.scheduled() {
		b.phase = PhaseClosed
	}
	b.bids.side = Buy
	b.asks.side = Sell
	for i := range b.stops {
		b.stops[i] = btree.NewBTreeGOptions(stopLess, btree.Options{NoLocks: true})
	}
	return b
}

func (b *book) sideOf(s Side) *bookSide {
	if s == Buy {
		return &b.bids
	}
	return &b.asks
}

func (b *book) opposite(s Side) *bookSide {
	if s == Buy {
		return &b.asks
	}
	return &b.bids
}

// TopOfBook is the best bid and ask of an instrument with their total
// quantities. A zero price and quantity mean that side is empty.
type TopOfBook struct {
	BidPrice Price
	BidQty   Qty
	AskPrice Price
	AskQty   Qty
}

func (b *book) top() TopOfBook {
	var t TopOfBook
	if l := b.bids.best; l != nil {
		t.BidPrice, t.BidQty = l.price, l.qty
	}
	if l := b.asks.best; l != nil {
		t.AskPrice, t.AskQty = l.price, l.qty
	}
	return t
}

// crosses reports whether a taker on side s with limit price limit can trade
// against a resting price p.
func crosses(s Side, p, limit Price) bool {
	if s == Buy {
		return p <= limit
	}
	return p >= limit
}

// auction reports whether the book is in a call auction.
func (b *book) auction() bool { return b.phase == PhaseAuction || b.phase == PhaseVolatility }

// inVolBandOf reports whether a trade at p stays inside b's volatility
// band around ref.
func (b *book) inVolBandOf(ref, p Price) bool {
	if ref == 0 {
		return true
	}
	band := ref * Price(b.inst.VolatilityBps) / 10_000
	return p >= ref-band && p <= ref+band
}

// inBand reports whether price p is inside the instrument's price band.
func (b *book) inBand(p Price) bool {
	if b.inst.BandBps == 0 || b.refPrice == 0 {
		return true
	}
	lo, hi := b.band()
	return p >= lo && p <= hi
}

// band is the price band's lowest and highest price (when there is one).
func (b *book) band() (lo, hi Price) {
	band := b.refPrice * Price(b.inst.BandBps) / 10_000
	return b.refPrice - band, b.refPrice + band
}

// protection is the worst price a market order on side s may trade at.
func (b *book) protection(s Side) Price {
	if b.inst.BandBps == 0 || b.refPrice == 0 {
		if s == Buy {
			return MaxPrice
		}
		return 1
	}
	lo, hi := b.band()
	if s == Buy {
		return hi
	}
	return max(lo, 1)
}

// levelHash finds a side's levels by price: open addressing over slots
// holding a price and its level's id plus one (0: empty), linear probing
// with backward-shift deletion, at most half full. It holds no pointers.
type levelHash struct {
	slots []levelSlot
	shift uint // 64 - log2(len(slots))
	n     int
}

type levelSlot struct {
	price Price
	id    int32 // the level's id plus one; 0: an empty slot
}

func (h *levelHash) home(p Price) int { return int((uint64(p) * 0x9e3779b97f4a7c15) >> h.shift) }

// find returns the id plus one of the level at price p, or 0.
func (h *levelHash) find(p Price) int32 {
	if h.n == 0 {
		return 0
	}
	mask := len(h.slots) - 1
	for i := h.home(p); ; i = (i + 1) & mask {
		sl := &h.slots[i]
		if sl.id == 0 || sl.price == p {
			return sl.id
		}
	}
}

// put adds the level with id at price p, which must not be there yet.
func (h *levelHash) put(p Price, id int32) {
	if (h.n+1)*2 > len(h.slots) {
		h.resize(max(64, 2*len(h.slots)))
	}
	h.insert(levelSlot{price: p, id: id + 1})
	h.n++
}

func (h *levelHash) insert(v levelSlot) {
	mask := len(h.slots) - 1
	i := h.home(v.price)
	for h.slots[i].id != 0 {
		i = (i + 1) & mask
	}
	h.slots[i] = v
}

// del removes the level at price p, shifting later members of its probe
// run back so that lookups never need tombstones.
func (h *levelHash) del(p Price) {
	mask := len(h.slots) - 1
	i := h.home(p)
	for h.slots[i].price != p || h.slots[i].id == 0 {
		if h.slots[i].id == 0 {
			return
		}
		i = (i + 1) & mask
	}
	h.n--
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		v := h.slots[j]
		if v.id == 0 {
			break
		}
		if fillsHole(h.home(v.price), i, j) {
			h.slots[i] = v
			i = j
		}
	}
	h.slots[i] = levelSlot{}
}

func (h *levelHash) resize(size int) {
	old := h.slots
	h.slots = make([]levelSlot, size)
	h.shift = hashShift(size)
	for _, v := range old {
		if v.id != 0 {
			h.insert(v)
		}
	}
}
