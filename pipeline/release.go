package pipeline

import "time"

// The release stage: for each batch, in order, it waits until the journal
// says the batch's Commit is durable, publishes "durable up to S", and
// only then calls Deliver, which encodes and routes the results. A slow
// Deliver delays later deliveries but never a sync: the journal stage and
// the journal's own syncs go on without it.

func (p *Pipeline) runRelease() {
	defer close(p.releaseDone)
	for b := range p.toRelease {
		p.release(b)
		p.free <- b
	}
}

// release awaits b's Commit if b is its first batch, then delivers b.
// After a failure nothing is delivered.
func (p *Pipeline) release(b *Batch) {
	if b.commitFirst && p.Err() == nil {
		start := time.Now()
		err := p.j.Await()
		p.stats.observeSync(time.Since(start))
		if err != nil {
			p.fail(err)
		}
	}
	if p.Err() != nil {
		return
	}
	if uint64(b.commitSeq) > p.durable.Load() {
		p.durable.Store(uint64(b.commitSeq))
	}
	p.deliver(b)
}
