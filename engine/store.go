package engine

// orderStore owns every order: an arena of fixed-size chunks addressed by
// int32 handles, a free stack of handles, and the index from order ID to
// handle.
//
// The index is an open-addressing table of uint64 slots, each holding the
// low 32 bits of an order ID and its handle plus one (zero is an empty
// slot). Probing compares IDs in the slot itself, so it touches no order
// except the one it returns, and the table holds no pointers for the
// garbage collector to scan. Linear probing with backward-shift deletion
// leaves no tombstones, so a steady number of open orders never rehashes;
// the table only grows (doubling, load factor at most 3/4) when the count of
// open orders reaches a new high.
type orderStore struct {
	chunks [][]order
	free   []int32 // handles of free orders; popped from the end

	slots []uint64
	shift uint // 64 - log2(len(slots))
	n     int  // orders in the index
}

const (
	chunkShift    = 10
	chunkSize     = 1 << chunkShift
	indexMinSlots = 1024
)

func (s *orderStore) init() { s.resize(indexMinSlots) }

// reserve makes room for n orders without further allocation.
func (s *orderStore) reserve(n int) {
	if have := len(s.chunks) * chunkSize; n > have {
		s.grow((n - have + chunkSize - 1) / chunkSize)
	}
	size := len(s.slots)
	for size*3 < n*4 {
		size *= 2
	}
	if size > len(s.slots) {
		s.resize(size)
	}
	// Touch every page now: fresh memory faults on first write, and under a
	// hypervisor such a fault can stall for tens of microseconds.
	for i := 0; i < len(s.slots); i += 512 {
		s.slots[i] = 0
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

// alloc returns a zeroed order (but for its handle).
func (s *orderStore) alloc() *order {
	if len(s.free) == 0 {
		s.grow(1)
	}
	h := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return s.at(h)
}

// release zeroes o and returns it to the free stack.
func (s *orderStore) release(o *order) {
	h := o.handle
	*o = order{handle: h}
	s.free = append(s.free, h)
}

func (s *orderStore) home(id OrderID) int {
	return int((uint64(uint32(id)) * 0x9e3779b97f4a7c15) >> s.shift)
}

func slotOf(id OrderID, h int32) uint64 { return uint64(uint32(id))<<32 | uint64(h+1) }

// get returns the open order with the given ID, or nil.
func (s *orderStore) get(id OrderID) *order {
	mask := len(s.slots) - 1
	lo := uint32(id)
	for i := s.home(id); ; i = (i + 1) & mask {
		v := s.slots[i]
		if v == 0 {
			return nil
		}
		if uint32(v>>32) == lo {
			if o := s.at(int32(uint32(v)) - 1); o.id == id {
				return o
			}
		}
	}
}

// put indexes o, whose ID must not be indexed yet.
func (s *orderStore) put(o *order) {
	if (s.n+1)*4 > len(s.slots)*3 {
		s.resize(len(s.slots) * 2)
	}
	s.insert(slotOf(o.id, o.handle))
	s.n++
}

func (s *orderStore) insert(v uint64) {
	mask := len(s.slots) - 1
	i := s.home(OrderID(v >> 32))
	for s.slots[i] != 0 {
		i = (i + 1) & mask
	}
	s.slots[i] = v
}

// del removes o from the index, shifting later members of its probe run
// back so that lookups never need tombstones.
func (s *orderStore) del(o *order) {
	mask := len(s.slots) - 1
	want := slotOf(o.id, o.handle)
	i := s.home(o.id)
	for s.slots[i] != want {
		if s.slots[i] == 0 {
			return
		}
		i = (i + 1) & mask
	}
	s.n--
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		v := s.slots[j]
		if v == 0 {
			break
		}
		// v may move into the hole at i if its home is not in (i, j].
		h := s.home(OrderID(v >> 32))
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			s.slots[i] = v
			i = j
		}
	}
	s.slots[i] = 0
}

func (s *orderStore) len() int { return s.n }

func (s *orderStore) resize(size int) {
	old := s.slots
	s.slots = make([]uint64, size)
	s.shift = 64
	for k := size; k > 1; k >>= 1 {
		s.shift--
	}
	for _, v := range old {
		if v != 0 {
			s.insert(v)
		}
	}
}
