package engine

// Prefetching for queued commands.
//
// A cancel in a large book touches lines no cache holds: the order's index
// slot, the order, and its neighbours in two queues (its level's and its
// account's), each a miss of ~150 ns here, each found only once the one
// before it has arrived. When commands queue (a batch from the ring, a
// journal being replayed), the engine can start those loads for commands
// that are still waiting, so that by the time one is applied its lines are
// on their way or there. The work is split into stages by distance: the
// farthest queued command gets its index slot fetched, a nearer one its
// order (whose handle is in the slot fetched earlier), the nearest its
// neighbours (whose addresses are in the order).
//
// Prefetching reads the engine's state and changes none of it: whether and
// how often it is called never changes what Apply does or returns.

// Prefetch distances: the queued command that many places after the one
// about to be applied gets that stage. Two commands (~200 ns on the
// workloads' cancels) let a stage's line arrive (~150 ns here) before the
// next stage reads it. Measured on workloads A and B (BENCHMARKS.md): 2/4/6
// and 3/6/9 gain the same on B; longer distances (4/8/12, 6/12/18) gain no
// more on B and cost A up to 15 %.
const (
	prefetchNear  = 2
	prefetchOrder = 4
	prefetchSlot  = 6
)

// PrefetchDistances returns the distances at which Prefetch works, nearest
// first: a caller with commands queued calls Prefetch, before each Apply,
// for the queued command at each of these distances that it has.
func PrefetchDistances() [3]int { return [3]int{prefetchNear, prefetchOrder, prefetchSlot} }

// Prefetch starts loading the memory that c will touch, where c is queued
// k places after the command about to be applied (one of
// PrefetchDistances; Prefetch does nothing for other k). c's Seq need not
// be set yet. Prefetch changes no state, and what Apply does never depends
// on whether it was called.
func (e *Engine) Prefetch(c *Command, k int) {
	if prefetches(c) {
		e.prefetchStage(c, k)
	}
}

// PrefetchAhead is Prefetch for a caller whose queue is a slice: cmds[i]
// is the command about to be applied, the ones after it are queued, and
// each of those at a prefetch distance gets its stage.
func (e *Engine) PrefetchAhead(cmds []Command, i int) {
	if i < 0 || i+prefetchSlot >= len(cmds) {
		for _, k := range PrefetchDistances() {
			if i >= 0 && i+k < len(cmds) {
				e.Prefetch(&cmds[i+k], k)
			}
		}
		return
	}
	q := cmds[i : i+prefetchSlot+1] // the common case, unrolled
	if c := &q[prefetchNear]; prefetches(c) {
		e.prefetchNeighbours(c)
	}
	if c := &q[prefetchOrder]; prefetches(c) {
		e.prefetchOrder(c)
	}
	if c := &q[prefetchSlot]; prefetches(c) {
		e.prefetchSlot(c)
	}
}

// prefetches reports whether prefetching helps c: only cancels and
// replaces so far.
func prefetches(c *Command) bool { return c.Kind == CmdCancel || c.Kind == CmdReplace }

func (e *Engine) prefetchStage(c *Command, k int) {
	switch k {
	case prefetchNear:
		e.prefetchNeighbours(c)
	case prefetchOrder:
		e.prefetchOrder(c)
	case prefetchSlot:
		e.prefetchSlot(c)
	}
}

func (e *Engine) prefetchSlot(c *Command) {
	s := &e.orders
	prefetchInt32(&s.direct[uint64(c.OrderID)&s.dmask])
}

// peek returns the order in c's direct slot if it is the one c names,
// without looking in the spill table (prefetching is a guess, and a probe
// there would cost more than it saves).
func (e *Engine) peek(c *Command) *order {
	s := &e.orders
	if h := s.direct[uint64(c.OrderID)&s.dmask]; h != 0 {
		return s.at(h - 1)
	}
	return nil
}

func (e *Engine) prefetchOrder(c *Command) {
	if o := e.peek(c); o != nil {
		// The fields at the order's first, middle and last words: their
		// lines are all the order's (TestPrefetchCoversOrder).
		prefetchOrderHead(o)
		prefetchLink(&o.next)
		prefetchInt32(&o.ext)
	}
}

// prefetchNeighbours fetches the lines a cancel of c's order writes besides the
// order's own: its neighbours' links and its level.
func (e *Engine) prefetchNeighbours(c *Command) {
	o := e.peek(c)
	if o == nil || o.id != c.OrderID {
		return
	}
	if o.prev != nil {
		prefetchLink(&o.prev.next)
	}
	if o.next != nil {
		prefetchLink(&o.next.prev)
	}
	if o.aprev != nil {
		prefetchLink(&o.aprev.anext)
	}
	if o.anext != nil {
		prefetchLink(&o.anext.aprev)
	}
	if o.level != nil {
		prefetchLevel(o.level)
	}
}
