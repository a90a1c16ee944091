package pipeline

import "time"

// The journal stage: it only writes. It takes every batch the loop has
// matched so far, stages their commands, commits them as one group (the
// journal starts the sync and returns), and passes the batches on to the
// release stage at once. It never waits for a sync, so the commands
// matched while one sync runs are already in the log when the next starts.
// When it is idle and the ring is empty, the loop runs this same step
// itself (handOn).

func (p *Pipeline) runJournal() {
	defer close(p.journalDone)
	defer close(p.toRelease)
	for {
		b, ok := <-p.toJournal
		if !ok {
			return
		}
		p.group = append(p.group[:0], b)
		for more := len(p.group) < cap(p.toJournal); more; {
			select {
			case b, ok := <-p.toJournal:
				if !ok {
					more = false
					break
				}
				p.group = append(p.group, b)
			default:
				more = false
			}
		}
		p.commit(p.group)
		for _, g := range p.group {
			p.toRelease <- g
		}
		p.queued.Add(-int64(len(p.group))) // after the sends: see handOn
	}
}

// commit writes and commits the commands of group as one journal Commit
// and marks the batches with it. After a failure it writes nothing (the
// release stage drops the batches).
func (p *Pipeline) commit(group []*Batch) {
	last := group[len(group)-1].LastSeq
	for i, g := range group {
		g.commitSeq, g.commitFirst, g.EndOfCommit = last, i == 0, i == len(group)-1
	}
	if p.Err() != nil {
		return
	}
	start := time.Now()
	var err error
	n := 0
	for _, g := range group {
		if len(g.Cmds) > 0 {
			n += len(g.Cmds)
			if err = p.j.Write(g.Cmds); err != nil {
				break
			}
		}
	}
	if err == nil && n > 0 {
		err = p.j.Commit()
	}
	if n == 0 {
		group[0].commitFirst = false // nothing to await: queries only
	} else {
		p.stats.observeWrite(time.Since(start)) // queries only wrote nothing
	}
	if err != nil {
		p.fail(err)
	}
}
