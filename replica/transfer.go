package replica

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/matchd/matchd/engine"
	"go.etcd.io/raft/v3/tracker"
)

// Leadership transfer: an operator moves the leadership to another member
// (before maintenance on the leader's machine, or to spread the leaders
// of several groups over machines). The leader first stops sequencing
// and waits until everything it sequenced is committed and durable here,
// then asks raft to hand over (raft's TransferLeader: the member is
// brought up to date and told to campaign at once, without waiting for an
// election timeout). Nothing the old leader matched is left uncommitted,
// and everything it acknowledged reached its sessions; it then restarts
// as a follower, as any leader that loses the leadership does, and its
// clients reconnect and are sent to the new leader.

// ErrTransfer reports a leadership transfer the replica refused or that
// did not happen (the message says why).
var ErrTransfer = errors.New("replica: leadership transfer")

// TransferLeader hands the leadership to member to and waits (at most
// timeout) until this replica has stepped down for it. If that does not
// happen in time, this replica takes commands again if it still leads.
func (r *Replica) TransferLeader(to uint64, timeout time.Duration) error {
	if !r.Ready() {
		id, addr := r.LeaderClient()
		return fmt.Errorf("%w refused: this node does not lead (leader: node %d at %q)", ErrTransfer, id, addr)
	}
	if to == r.cfg.ID {
		return fmt.Errorf("%w refused: node %d leads already", ErrTransfer, to)
	}
	if v := r.voters.Load(); v == nil || !slices.Contains(*v, to) {
		return fmt.Errorf("%w refused: node %d is not a voting member", ErrTransfer, to)
	}
	if !r.transferring.CompareAndSwap(false, true) {
		return fmt.Errorf("%w refused: a transfer is under way", ErrTransfer)
	}
	deadline := time.Now().Add(timeout)
	if err := r.awaitMember(to, time.Now().Add(min(timeout/2, memberWait))); err != nil {
		r.transferring.Store(false)
		return err
	}
	ok := false
	defer func() {
		if !ok && r.transferring.CompareAndSwap(true, false) && Role(r.role.Load()) == Leader && !r.deposed.Load() {
			r.ready.Store(true)
			if r.cfg.OnLead != nil {
				r.cfg.OnLead(true)
			}
			r.log.Warn("replica: leadership transfer abandoned; taking commands again", "to", to)
		}
	}()
	if r.cfg.OnLead != nil {
		r.cfg.OnLead(false) // no new commands sequenced from here
	}
	last, err := r.quiesce(deadline)
	if err != nil {
		return err
	}
	r.ready.Store(false)
	select {
	case r.confc <- memberChange{transfer: true, peer: Peer{ID: to}}:
	case <-r.failed:
		return r.Err()
	}
	r.log.Info("replica: handing the leadership over", "to", to, "seq", last)
	asked := time.Now()
	for r.leader.Load() != to || Role(r.role.Load()) == Leader {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: node %d did not take over within %v", ErrTransfer, to, timeout)
		}
		// Raft gives a transfer up after an election timeout (the member
		// did not catch up, or is down); its status, refreshed every ten
		// ticks, then names no transferee: take commands again at once.
		if time.Since(asked) > 3*time.Duration(r.cfg.ElectionTicks)*r.cfg.Tick {
			r.statusMu.Lock()
			pending := r.status.LeadTransferee
			r.statusMu.Unlock()
			if pending == 0 && Role(r.role.Load()) == Leader {
				return fmt.Errorf("%w: node %d did not take over (raft gave the transfer up)", ErrTransfer, to)
			}
		}
		select {
		case <-r.failed:
			if errors.Is(r.Err(), ErrDeposed) {
				// Stepped down when the member campaigned (the vote it
				// asked for came with a newer term; who won is known to
				// this replica only after its restart).
				ok = true
				return nil
			}
			return r.Err()
		case <-time.After(time.Millisecond):
		}
	}
	ok = true
	return nil
}

// memberWait bounds how long a transfer waits for its member to be
// replicating and caught up before it refuses.
const memberWait = 2 * time.Second

// transferLag is how many entries a member may be behind the commit index
// and still be asked to take over: raft brings it up to date first, and
// this many go in a round trip or two.
const transferLag = 1024

// awaitMember waits, before sequencing stops, until raft replicates to
// member to and the member is nearly caught up (raft's progress, as of the
// last status). Raft gives a transfer up after one election timeout: a
// member that is down, cut off, or still recovering (the previous leader,
// restarting as a follower) would be asked to take over only to fail,
// with commands stopped meanwhile. Refused instead, nothing stops.
func (r *Replica) awaitMember(to uint64, deadline time.Time) error {
	for {
		r.statusMu.Lock()
		pr, known := r.status.Progress[to]
		commit := r.status.HardState.GetCommit()
		r.statusMu.Unlock()
		if known && pr.State == tracker.StateReplicate && pr.Match+transferLag >= commit {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w refused: node %d is not caught up (raft's progress: %s at index %d, commit %d): "+
				"down, cut off or still recovering; commands were not stopped, retry once it has caught up",
				ErrTransfer, to, pr.State, pr.Match, commit)
		}
		select {
		case <-r.failed:
			return r.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// quiesce waits, once sequencing has stopped, until what was sequenced is
// committed and durable, and stays so for a moment (a batch matched when
// sequencing stopped publishes its sequence numbers when it ends); it
// returns the last sequence number.
func (r *Replica) quiesce(deadline time.Time) (engine.Seq, error) {
	var last engine.Seq
	var stable time.Time
	for {
		s := r.cfg.Sequenced()
		done := engine.Seq(r.committedSeq.Load()) >= s && r.cfg.Durable() >= s
		switch {
		case !done || s != last:
			last, stable = s, time.Time{}
		case stable.IsZero():
			stable = time.Now()
		case time.Since(stable) > 20*time.Millisecond:
			return last, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%w: the commands in flight were not committed in time", ErrTransfer)
		}
		select {
		case <-r.failed:
			return 0, r.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
