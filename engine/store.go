package engine

// orderStore owns every order: an arena of fixed-size chunks addressed by
// int32 handles, a free stack of handles, and the index from order ID to
// handle.
//
// The engine numbers orders 1, 2, 3, …, so the index is first a
// direct-mapped table: slot id mod len(direct) holds the handle (plus one;
// zero is empty) of the open order with that ID. A new order's slot is next
// to the previous order's, so indexing it is a write to a cache line
// already held, not a miss at a hashed position. An order still open when a
// later ID maps to its slot (one that outlived len(direct) newer orders)
// moves to the spill table, an open-addressing hash of uint64 slots (the
// ID's low 32 bits and the handle plus one), probed without touching any
// order and deleted from by backward shift, so it needs no tombstones. The
// direct table doubles when the spill holds more than an eighth of its
// size; neither table holds pointers for the garbage collector to scan.
type orderStore struct {
	chunks [][]order
	free   []int32 // handles of free orders; popped from the end

	direct []int32
	dmask  uint64
	spill  spillIndex
	n      int // orders in the index
}

// spillIndex is the open-addressing hash from order ID to handle for open
// orders displaced from the direct table.
type spillIndex struct {
	slots []uint64
	shift uint // 64 - log2(len(slots))
	n     int
}

const (
	chunkShift    = 10
	chunkSize     = 1 << chunkShift
	indexMinSlots = 1024
)

func (s *orderStore) init() {
	s.setDirect(indexMinSlots)
	s.spill.resize(indexMinSlots)
}

func (s *orderStore) setDirect(size int) {
	s.direct = make([]int32, size)
	s.dmask = uint64(size - 1)
}

// reserve makes room for n orders without further allocation.
func (s *orderStore) reserve(n int) {
	if have := len(s.chunks) * chunkSize; n > have {
		s.grow((n - have + chunkSize - 1) / chunkSize)
	}
	size := len(s.direct)
	for size < 2*n {
		size *= 2
	}
	if size > len(s.direct) {
		s.rebuild(size)
	}
	// Touch every page now: fresh memory faults on first write, and under a
	// hypervisor such a fault can stall for tens of microseconds.
	for i := 0; i < len(s.direct); i += 1024 {
		if s.direct[i] == 0 {
			s.direct[i] = 0
		}
	}
}

// grow adds k chunks, carved from one allocation.
func (s *orderStore) grow(k int) {
	block := make([]order, k*chunkSize)
	base := len(s.chunks) * chunkSize
	if cap(s.free) < base+len(block) {
		free := make([]int32, len(s.free), base+len(block))
		copy(free, s.free)
		s.free = free
	}
	for c := 0; c < k; c++ {
		s.chunks = append(s.chunks, block[c*chunkSize:(c+1)*chunkSize:(c+1)*chunkSize])
	}
	// Push in reverse so that low handles are handed out first.
	for i := len(block) - 1; i >= 0; i-- {
		block[i].handle = int32(base + i)
		s.free = append(s.free, int32(base+i))
	}
}

func (s *orderStore) at(h int32) *order { return &s.chunks[h>>chunkShift][h&(chunkSize-1)] }

// alloc returns a free order: its handle is set, every other field is
// what its last use left, for the caller to set.
func (s *orderStore) alloc() *order {
	if len(s.free) == 0 {
		s.grow(1)
	}
	h := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return s.at(h)
}

// release returns o to the free stack. It does not write to o (see
// Engine.cancelResting): o must no longer be indexed.
func (s *orderStore) release(o *order) {
	s.free = append(s.free, o.handle)
}

// get returns the open order with the given ID, or nil.
func (s *orderStore) get(id OrderID) *order {
	if h := s.direct[uint64(id)&s.dmask]; h != 0 {
		if o := s.at(h - 1); o.id == id {
			return o
		}
	}
	if s.spill.n == 0 {
		return nil
	}
	if h := s.spill.get(id, s); h != 0 {
		return s.at(h - 1)
	}
	return nil
}

// put indexes o, whose ID must not be indexed yet.
func (s *orderStore) put(o *order) {
	s.place(o)
	s.n++
	if s.spill.n*8 > len(s.direct) {
		s.rebuild(len(s.direct) * 2)
	}
}

// place puts o in its direct slot, moving an order there to the spill.
func (s *orderStore) place(o *order) {
	i := uint64(o.id) & s.dmask
	if h := s.direct[i]; h != 0 {
		s.spill.put(s.at(h - 1))
	}
	s.direct[i] = o.handle + 1
}

// del removes o from the index.
func (s *orderStore) del(o *order) {
	i := uint64(o.id) & s.dmask
	if s.direct[i] == o.handle+1 {
		s.direct[i] = 0
		s.n--
	} else if s.spill.del(o) {
		s.n--
	}
}

func (s *orderStore) len() int { return s.n }

// rebuild makes the direct table size slots and places every indexed order
// again, oldest (lowest ID) last so that it is the one spilled.
func (s *orderStore) rebuild(size int) {
	var hs []int32
	for _, h := range s.direct {
		if h != 0 {
			hs = append(hs, h-1)
		}
	}
	for _, v := range s.spill.slots {
		if v != 0 {
			hs = append(hs, int32(uint32(v))-1)
		}
	}
	s.setDirect(size)
	s.spill = spillIndex{}
	s.spill.resize(indexMinSlots)
	for _, h := range hs {
		o := s.at(h)
		i := uint64(o.id) & s.dmask
		if old := s.direct[i]; old != 0 && s.at(old-1).id > o.id {
			s.spill.put(o)
			continue
		} else if old != 0 {
			s.spill.put(s.at(old - 1))
		}
		s.direct[i] = h + 1
	}
}

func (x *spillIndex) home(id OrderID) int {
	return int((uint64(uint32(id)) * 0x9e3779b97f4a7c15) >> x.shift)
}

func slotOf(id OrderID, h int32) uint64 { return uint64(uint32(id))<<32 | uint64(h+1) }

// get returns the handle plus one of the order with the given ID, or 0.
func (x *spillIndex) get(id OrderID, s *orderStore) int32 {
	mask := len(x.slots) - 1
	lo := uint32(id)
	for i := x.home(id); ; i = (i + 1) & mask {
		v := x.slots[i]
		if v == 0 {
			return 0
		}
		if uint32(v>>32) == lo {
			if h := int32(uint32(v)); s.at(h-1).id == id {
				return h
			}
		}
	}
}

func (x *spillIndex) put(o *order) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.resize(len(x.slots) * 2)
	}
	x.insert(slotOf(o.id, o.handle))
	x.n++
}

func (x *spillIndex) insert(v uint64) {
	mask := len(x.slots) - 1
	i := x.home(OrderID(v >> 32))
	for x.slots[i] != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = v
}

// del removes o, shifting later members of its probe run back so that
// lookups never need tombstones. It reports whether o was there.
func (x *spillIndex) del(o *order) bool {
	mask := len(x.slots) - 1
	want := slotOf(o.id, o.handle)
	i := x.home(o.id)
	for x.slots[i] != want {
		if x.slots[i] == 0 {
			return false
		}
		i = (i + 1) & mask
	}
	x.n--
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		v := x.slots[j]
		if v == 0 {
			break
		}
		if fillsHole(x.home(OrderID(v>>32)), i, j) {
			x.slots[i] = v
			i = j
		}
	}
	x.slots[i] = 0
	return true
}

func (x *spillIndex) resize(size int) {
	old := x.slots
	x.slots = make([]uint64, size)
	x.shift = hashShift(size)
	for _, v := range old {
		if v != 0 {
			x.insert(v)
		}
	}
}

// hashShift is 64 - log2(size) for a table of size slots (a power of
// two): a 64-bit multiplicative hash shifted right by it is a slot.
func hashShift(size int) uint {
	shift := uint(64)
	for k := size; k > 1; k >>= 1 {
		shift--
	}
	return shift
}

// fillsHole reports whether, in a linear-probing table whose slot i was
// just emptied, the member at slot j (later in i's probe run) whose home
// slot is home may move into i: it may unless its home lies cyclically in
// (i, j].
func fillsHole(home, i, j int) bool {
	return (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)
}
