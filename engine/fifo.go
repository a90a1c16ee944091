package engine

import "fmt"

// fifo is a queue of orders in time priority, by handle: q holds each
// order's handle plus one, oldest first, and 0 where an order has left.
// Every order in a fifo knows its position there (order.lpos in its
// level's, order.apos in its account's), so leaving is one write to q and
// touches no other order: a doubly linked list would write to both
// neighbours, two cache misses in a large book. q[:head] are all 0; when
// the last order leaves q is emptied, and when q is full with at least half
// of it gaps, push closes them up (moving each order left, an amortised
// constant per push) rather than growing.
type fifo struct {
	q    []int32
	head int32
}

// first returns the handle plus one of the oldest order, 0 if none.
func (f *fifo) first() int32 {
	if int(f.head) < len(f.q) {
		return f.q[f.head]
	}
	return 0
}

// leave clears position p; live is how many orders stay.
func (f *fifo) leave(p, live int32) {
	if live == 0 {
		f.q, f.head = f.q[:0], 0
		return
	}
	f.q[p] = 0
	if p == f.head {
		for f.q[f.head] == 0 {
			f.head++
		}
	}
}

// push appends handle h (an order's handle) and returns its position; live
// is how many orders the fifo holds before it. When it closes gaps to make
// room, it tells moved each order's new position.
func (f *fifo) push(s *orderStore, h, live int32, moved func(o *order, p int32)) int32 {
	if len(f.q) == cap(f.q) && int(live)*2 <= len(f.q) && len(f.q) > 0 {
		j := int32(0)
		for _, v := range f.q[f.head:] {
			if v != 0 {
				f.q[j] = v
				moved(s.at(v-1), j)
				j++
			}
		}
		clear(f.q[j:])
		f.q, f.head = f.q[:j], 0
	}
	f.q = append(f.q, h+1)
	return int32(len(f.q) - 1)
}

func setLpos(o *order, p int32) { o.lpos = p }
func setApos(o *order, p int32) { o.apos = p }

// levelOrders returns l's orders in time priority, in a new slice (for
// descriptions and checks, not the hot path).
func (e *Engine) levelOrders(l *level) []*order { return e.fifoOrders(&l.fifo) }

// accountOrders returns a's open orders, oldest first, in a new slice.
func (e *Engine) accountOrders(a *account) []*order { return e.fifoOrders(&a.orders) }

func (e *Engine) fifoOrders(f *fifo) []*order {
	var os []*order
	for _, h := range f.q[f.head:] {
		if h != 0 {
			os = append(os, e.orders.at(h-1))
		}
	}
	return os
}

// checkFifo describes what is wrong with f holding live orders, or returns
// "".
func checkFifo(f *fifo, live int32) string {
	n := int32(0)
	for i, h := range f.q {
		switch {
		case h < 0:
			return "negative handle"
		case h != 0 && int32(i) < f.head:
			return "an order before the head"
		case h != 0:
			n++
		}
	}
	switch {
	case n != live:
		return fmt.Sprintf("%d orders in the fifo, %d counted", n, live)
	case live > 0 && f.q[f.head] == 0:
		return "head at a gap"
	case live == 0 && (len(f.q) != 0 || f.head != 0):
		return "no orders but not emptied"
	}
	return ""
}
