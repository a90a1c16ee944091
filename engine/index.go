package engine

// orderIndex finds open orders by ID: an open-addressing hash table with
// linear probing and backward-shift deletion. There are no tombstones, so a
// steady number of open orders never allocates or rehashes; the table only
// grows (doubling) when the open-order count reaches a new high.
//
// IDs are assigned sequentially, so Fibonacci hashing (multiply by 2^64/phi,
// keep the top bits) spreads them evenly.
type orderIndex struct {
	slots []*order // nil is empty
	shift uint     // 64 - log2(len(slots))
	n     int
}

const indexMinSize = 1024

func (x *orderIndex) init() { x.resize(indexMinSize) }

func (x *orderIndex) home(id OrderID) int {
	return int((uint64(id) * 0x9e3779b97f4a7c15) >> x.shift)
}

func (x *orderIndex) get(id OrderID) *order {
	mask := len(x.slots) - 1
	for i := x.home(id); ; i = (i + 1) & mask {
		o := x.slots[i]
		if o == nil || o.id == id {
			return o
		}
	}
}

// put adds o, whose ID must not be in the table.
func (x *orderIndex) put(o *order) {
	if (x.n+1)*4 > len(x.slots)*3 { // keep the load factor at most 3/4
		x.resize(len(x.slots) * 2)
	}
	mask := len(x.slots) - 1
	i := x.home(o.id)
	for x.slots[i] != nil {
		i = (i + 1) & mask
	}
	x.slots[i] = o
	x.n++
}

// del removes id if present, shifting later members of its probe run back
// so that lookups never need tombstones.
func (x *orderIndex) del(id OrderID) {
	mask := len(x.slots) - 1
	i := x.home(id)
	for {
		o := x.slots[i]
		if o == nil {
			return
		}
		if o.id == id {
			break
		}
		i = (i + 1) & mask
	}
	x.n--
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		o := x.slots[j]
		if o == nil {
			break
		}
		// o may move into the hole at i if its home is not in (i, j].
		h := x.home(o.id)
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			x.slots[i] = o
			i = j
		}
	}
	x.slots[i] = nil
}

func (x *orderIndex) len() int { return x.n }

func (x *orderIndex) resize(size int) {
	old := x.slots
	x.slots = make([]*order, size)
	x.shift = 64
	for s := size; s > 1; s >>= 1 {
		x.shift--
	}
	x.n = 0
	for _, o := range old {
		if o != nil {
			x.put(o)
		}
	}
}
