package replica

import (
	"errors"
	"fmt"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/persist"
)

// Journal is the pipeline's journal on a replica (it satisfies
// pipeline.FailingJournal). Each replica keeps the node's usual journal
// (a persist.Store) of committed commands only; the raft log is what
// makes them durable on a quorum first.
//
//   - On the leader, a Commit of commands not yet committed (the ones its
//     loop just matched) proposes them to raft as one entry; its Await
//     waits until raft commits the entry, then writes the commands to the
//     local journal. Nothing is released before the quorum has it.
//   - On a follower (and on a new leader catching up), the commands come
//     from committed entries (Replica's Apply); a Commit of those writes
//     them to the local journal at once.
//
// Write and Commit are called by the journal stage only, Await by the
// release stage only, in Commit order.
type Journal struct {
	r       *Replica
	store   *persist.Store
	staged  []engine.Command
	pending chan pendingCommit
	buf     []byte
}

type pendingCommit struct {
	last engine.Seq
	cmds []engine.Command // proposed: written locally once committed
	prop bool
}

// Journal returns the journal of the pipeline that runs on this replica,
// over the node's store. inFlight bounds the Commits not yet awaited (the
// pipeline's InFlight).
func (r *Replica) Journal(store *persist.Store, inFlight int) *Journal {
	return &Journal{r: r, store: store, pending: make(chan pendingCommit, inFlight+1)}
}

// Write stages commands.
func (j *Journal) Write(cmds []engine.Command) error {
	j.staged = append(j.staged, cmds...)
	return nil
}

// Commit proposes the staged commands (or, if they are already committed,
// writes them to the local journal).
func (j *Journal) Commit() error {
	if len(j.staged) == 0 {
		return nil
	}
	last := j.staged[len(j.staged)-1].Seq
	if last <= engine.Seq(j.r.committedSeq.Load()) {
		if err := j.store.Write(j.staged); err != nil {
			return err
		}
		if err := j.store.Commit(); err != nil {
			return err
		}
		j.pending <- pendingCommit{last: last}
		j.staged = j.staged[:0]
		return nil
	}
	j.buf = appendEntry(j.buf[:0], j.staged)
	data := append([]byte(nil), j.buf...) // raft keeps it
	if err := j.r.propose(data); err != nil {
		return err
	}
	j.pending <- pendingCommit{last: last, cmds: append([]engine.Command(nil), j.staged...), prop: true}
	j.staged = j.staged[:0]
	return nil
}

// Await waits until the oldest Commit not yet awaited is committed and in
// the local journal.
func (j *Journal) Await() error {
	var c pendingCommit
	select {
	case c = <-j.pending:
	default:
		return errors.New("replica: Await without a Commit")
	}
	if !c.prop {
		return j.store.Await()
	}
	if err := j.r.waitCommitted(c.last); err != nil {
		return err
	}
	if err := j.store.Write(c.cmds); err != nil {
		return err
	}
	if err := j.store.Commit(); err != nil {
		return err
	}
	if err := j.store.Await(); err != nil {
		return fmt.Errorf("replica: committed commands to %d, but the local journal failed: %w", c.last, err)
	}
	return nil
}

// Failed is closed when the replica or the store fails.
func (j *Journal) Failed() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		select {
		case <-j.r.Failed():
		case <-j.store.Failed():
		}
		close(ch)
	}()
	return ch
}

// Err says why.
func (j *Journal) Err() error {
	if err := j.r.Err(); err != nil {
		return err
	}
	return j.store.Err()
}
