package pipeline

import (
	"fmt"

	"github.com/matchd/matchd/engine"
)

// The matching loop: the only goroutine that touches the engine while the
// pipeline runs. It takes everything published in the ring as one batch,
// sequences and applies it, and hands it to the journal stage.

// The loop is not locked to its OS thread: a locked goroutine cannot
// yield or park without a handoff between threads (two futex calls and a
// context switch each time), which made the idle loop cost most of a core
// and every wake-up tens of microseconds.
func (p *Pipeline) runLoop() {
	defer close(p.loopDone)
	defer close(p.toJournal)
	for {
		lo, hi, ok := p.ring.Next(p.cfg.MaxBatch)
		if !ok {
			return
		}
		if p.Err() != nil {
			p.ring.Release(hi) // fail-stop: drop everything
			continue
		}
		var b *Batch
		select {
		case b = <-p.free:
		case <-p.failed:
			p.ring.Release(hi)
			continue
		}
		p.match(b, lo, hi)
		p.handOn(b)
	}
}

// handOn passes a matched batch on. When nothing else waits, neither in
// the ring nor in the journal stage, the loop runs the journal step
// itself (write and commit, which do not wait for the sync) and hands the
// batch straight to the release stage: at light load that saves a
// goroutine wake-up per batch, and the loop had nothing else to do. When
// requests are waiting, the journal stage takes the batch, so matching
// the next one overlaps journaling this one. Either way one goroutine at
// a time writes to the journal, in sequence order: the loop does it only
// when the journal stage has passed on everything it was given (queued is
// 0), and the journal stage gets new batches only from the loop.
func (p *Pipeline) handOn(b *Batch) {
	if p.queued.Load() == 0 && p.ring.Len() == 0 {
		p.inline[0] = b
		p.commit(p.inline[:])
		p.toRelease <- b
		return
	}
	p.queued.Add(1)
	p.toJournal <- b
}

// match fills b with the requests in ring slots [lo, hi) and releases the
// slots.
func (p *Pipeline) match(b *Batch, lo, hi int64) {
	b.reset()
	now := max(p.cfg.Clock(), p.lastTime)
	p.lastTime = now
	b.Time = now
	p.seqOn = p.sequencing.Load() // once a batch, not once a command
	for s := lo; s < hi; s++ {
		for _, k := range engine.PrefetchDistances() {
			if s+int64(k) < hi {
				p.prefetch(s, k)
			}
		}
		p.handle(b, p.ring.Slot(s))
	}
	p.ring.Release(hi)
	if w := p.e.NextWake(); w != p.lastWake || p.clockApplied {
		p.lastWake = w
		p.wake.Store(w)
		if p.clockApplied {
			// Only now: cleared while the batch ran, the clock saw the old
			// wake (already due) and sent a second command for it.
			p.clockApplied = false
			p.clockSent.Store(false)
		}
		select {
		case p.wakeCh <- struct{}{}:
		default:
		}
	}
	b.LastSeq = p.seq
	p.sequenced.Store(uint64(p.seq))
	p.stats.observeBatch(int(hi - lo))
	p.stats.publish(&p.counts, int64(p.e.LastTradeID()-p.trades0))
}

// prefetch tells the engine about the command queued k slots after slot s.
func (p *Pipeline) prefetch(s int64, k int) {
	if r := p.ring.Slot(s + int64(k)); r.Query.Kind == 0 {
		p.e.Prefetch(&r.Cmd, k)
	}
}

func (p *Pipeline) handle(b *Batch, r *Request) {
	res := Result{Token: r.Token, Recv: r.Recv, Query: r.Query.Kind, Instrument: r.Query.Instrument, From: r.Query.From}
	q := &r.Query
	switch q.Kind {
	case 0:
		c := r.Cmd
		switch {
		case r.Replicated:
			if c.Seq != p.seq+1 {
				p.fail(fmt.Errorf("%w: command %d after %d", ErrDiverged, c.Seq, p.seq))
				res.Query = QueryBarrier
				b.Results = append(b.Results, res)
				return
			}
			p.seq = c.Seq
			p.lastTime = max(p.lastTime, c.Time)
		case !p.seqOn:
			// Not ours to sequence (a replica that does not lead): answered
			// with nothing, as a barrier is.
			res.Query, res.Seq = QueryBarrier, p.seq
			b.Results = append(b.Results, res)
			return
		default:
			p.seq++
			c.Seq, c.Time = p.seq, b.Time
		}
		b.Cmds = append(b.Cmds, c)
		start := int32(len(b.events))
		b.events = p.e.Apply(&c, b.events)
		if c.Kind == engine.CmdClock && r.Token == clockToken {
			p.clockApplied = true // the clock may send again once the batch's NextWake is published
		}
		res.events = [2]int32{start, int32(len(b.events))}
		res.Found = true
		p.counts.count(c.Kind, b.events[start:])
	case QueryTop:
		p.counts.queries++
		res.Top, res.Found = p.e.Top(q.Instrument)
	case QueryStatus:
		p.counts.queries++
		var in engine.InstrumentInfo
		in, res.Found = p.e.Instrument(q.Instrument)
		res.Phase, res.Band[0] = in.Phase, in.RefPrice
		res.Band[1], res.Band[2], _ = p.e.PriceBand(q.Instrument)
	case QueryDepth, QueryBook:
		p.counts.queries++
		n := int(q.Levels)
		if q.Kind == QueryBook {
			n = 0 // all
		}
		_, res.Found = p.e.Instrument(q.Instrument)
		if q.Kind == QueryBook {
			res.FeedSeq = p.e.FeedSeq(q.Instrument)
			in, _ := p.e.Instrument(q.Instrument)
			res.Phase = in.Phase
		}
		start := int32(len(b.levels))
		b.levels = p.e.Depth(q.Instrument, engine.Buy, n, b.levels)
		res.bids = int32(len(b.levels)) - start
		b.levels = p.e.Depth(q.Instrument, engine.Sell, n, b.levels)
		res.levels = [2]int32{start, int32(len(b.levels))}
	case QueryOrder:
		p.counts.queries++
		start := int32(len(b.orders))
		if o, ok := p.e.Order(q.OrderID); ok {
			b.orders = append(b.orders, o)
			res.Found = true
		}
		res.orders = [2]int32{start, int32(len(b.orders))}
	case QueryOpenOrders:
		p.counts.queries++
		start := int32(len(b.orders))
		b.orders, res.More = p.e.OpenOrdersPage(q.Account, q.OrderID, OpenOrdersPage, b.orders)
		res.orders = [2]int32{start, int32(len(b.orders))}
		res.Found = true
	}
	res.Seq = p.seq
	b.Results = append(b.Results, res)
}
