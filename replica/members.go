package replica

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Membership: the group starts with Config.Peers (bootstrapped into raft's
// configuration when the log is new). An operator changes it on the
// leader with AddMember and RemoveMember (matchd's admin API, matchctl
// cluster add and remove). Each change is a raft configuration change
// whose context carries the member's addresses, so every replica that
// applies it learns where the member listens; every replica stores the
// member list in its raft log (membersKey) when it applies a change, and
// that list, not Config.Peers, is the membership after a restart.
//
// A new replica is started with Config.Join (matchd --join) and the
// current members in Config.Peers: it does not bootstrap a configuration
// of its own, and waits until the leader adds it and sends it the log
// (or a snapshot). A replica removed from the group stops (ErrRemoved)
// and refuses to start again from the same raft log.

// ErrRemoved reports that this replica was removed from the group.
var ErrRemoved = errors.New("replica: this node was removed from the cluster")

// ErrMembership reports a membership change the replica refused (the
// message says why: not the leader, a change in progress, an unknown or
// existing member, the leader itself).
var ErrMembership = errors.New("replica: membership change refused")

// memberChange is an operator's request, carried out by the raft
// goroutine.
type memberChange struct {
	add      bool
	transfer bool // TransferLeader's request to raft; no reply
	peer     Peer // add: the new member; remove: its ID
	reply    chan error
}

// Members returns the group's members as this replica knows them, by ID,
// and whether each is a voter in the configuration it has applied.
func (r *Replica) Members() []Member {
	m := *r.members.Load()
	voters := r.voters.Load()
	out := make([]Member, 0, len(m))
	for _, p := range m {
		out = append(out, Member{Peer: p, Voter: voters != nil && slices.Contains(*voters, p.ID)})
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Member is a member of the group: its addresses, and whether it votes
// (a member being added votes once its change is applied).
type Member struct {
	Peer
	Voter bool
}

// AddMember adds p to the group: the leader proposes the change and
// AddMember waits until this replica has applied it (at most timeout).
// The new replica must be running with Config.Join (matchd --join) and
// the members' addresses; it then receives the log from the leader.
func (r *Replica) AddMember(p Peer, timeout time.Duration) error {
	if p.ID == 0 || p.Addr == "" || p.Client == "" {
		return fmt.Errorf("%w: a new member needs an id (from 1), a peer address and an order-entry address", ErrMembership)
	}
	// A member votes as soon as it is added: one that is not running
	// would lower the group's fault tolerance (3 of 4 needed) until it
	// is. Refuse one whose peer address does not answer.
	c, err := net.DialTimeout("tcp", p.Addr, min(timeout, time.Second))
	if err != nil {
		return fmt.Errorf("%w: node %d's peer address %s does not answer (%v): start it with --join first", ErrMembership, p.ID, p.Addr, err)
	}
	c.Close()
	return r.changeMember(memberChange{add: true, peer: p}, timeout)
}

// RemoveMember removes the member with the given ID; the removed replica
// stops once it learns of it. The leader cannot remove itself: hand the
// leadership over first (TransferLeader).
func (r *Replica) RemoveMember(id uint64, timeout time.Duration) error {
	return r.changeMember(memberChange{peer: Peer{ID: id}}, timeout)
}

func (r *Replica) changeMember(c memberChange, timeout time.Duration) error {
	c.reply = make(chan error, 1)
	select {
	case r.confc <- c:
	case <-r.failed:
		return r.Err()
	case <-time.After(timeout):
		return fmt.Errorf("%w: the replica is busy", ErrMembership)
	}
	var err error
	select {
	case err = <-c.reply:
	case <-r.failed:
		return r.Err()
	}
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		voter := r.voters.Load() != nil && slices.Contains(*r.voters.Load(), c.peer.ID)
		if voter == c.add {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica: the membership change of node %d was proposed but not applied within %v (no quorum?)", c.peer.ID, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// proposeMember carries out an operator's change (raft goroutine).
func (r *Replica) proposeMember(c memberChange) error {
	if Role(r.role.Load()) != Leader || !r.Ready() {
		id, addr := r.LeaderClient()
		return fmt.Errorf("%w: this node does not lead (leader: node %d at %q)", ErrMembership, id, addr)
	}
	if r.changing() || len(r.rejoin) > 0 {
		return fmt.Errorf("%w: another membership change is in progress; try again", ErrMembership)
	}
	voters := r.confState.GetVoters()
	id := c.peer.ID
	cc := &pb.ConfChange{NodeId: proto.Uint64(id)}
	if c.add {
		if slices.Contains(voters, id) {
			return fmt.Errorf("%w: node %d is a member already", ErrMembership, id)
		}
		if slices.Contains(r.removed, id) {
			return fmt.Errorf("%w: node %d was a member and was removed; ids are not used again: give the new node another", ErrMembership, id)
		}
		// Known now, so that the leader can reach it as soon as raft sends.
		r.setMember(c.peer)
		cc = r.addChange(id)
	} else {
		if !slices.Contains(voters, id) {
			return fmt.Errorf("%w: node %d is not a member", ErrMembership, id)
		}
		if id == r.cfg.ID {
			return fmt.Errorf("%w: node %d leads; hand the leadership to another member first (matchctl cluster transfer), then remove it", ErrMembership, id)
		}
		if len(voters) == 1 {
			return fmt.Errorf("%w: node %d is the only member", ErrMembership, id)
		}
		cc.Type = pb.ConfChangeRemoveNode.Enum()
	}
	if err := r.rn.ProposeConfChange(cc); err != nil {
		return fmt.Errorf("%w: %w", ErrMembership, err)
	}
	r.confUntil = time.Now().Add(confChangeWait)
	r.log.Info("replica: membership change proposed", "add", c.add, "node", id, "peer", c.peer.Addr, "client", c.peer.Client)
	return nil
}

// confChangeWait is how long a proposed membership change counts as in
// progress: raft may drop a proposal (a leader change) without saying so.
const confChangeWait = 10 * time.Second

// changing reports whether a membership change proposed here may still be
// applied (raft goroutine).
func (r *Replica) changing() bool { return time.Now().Before(r.confUntil) }

// setMember records p's addresses and tells the transport (raft
// goroutine).
func (r *Replica) setMember(p Peer) {
	old := *r.members.Load()
	if q, ok := old[p.ID]; ok && q == p {
		return
	}
	m := make(map[uint64]Peer, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[p.ID] = p
	r.members.Store(&m)
	if p.ID != r.cfg.ID {
		r.tr.setPeer(p.ID, p.Addr)
	}
}

// dropMember forgets a removed member (raft goroutine).
func (r *Replica) dropMember(id uint64) {
	old := *r.members.Load()
	if _, ok := old[id]; !ok {
		return
	}
	m := make(map[uint64]Peer, len(old))
	for k, v := range old {
		if k != id {
			m[k] = v
		}
	}
	r.members.Store(&m)
	r.tr.dropPeer(id)
}

// applyMembers follows a committed configuration change in the member
// list and stores the list (raft goroutine). A change to add a member
// carries its addresses; one without (a member that lost its log, added
// back) keeps what is known.
func (r *Replica) applyMembers(cc *pb.ConfChange) error {
	r.confUntil = time.Time{}
	id := cc.GetNodeId()
	switch cc.GetType() {
	case pb.ConfChangeAddNode:
		var p Peer
		if len(cc.GetContext()) > 0 && json.Unmarshal(cc.GetContext(), &p) == nil && p.ID == id {
			r.setMember(p)
		}
	case pb.ConfChangeRemoveNode:
		if string(cc.GetContext()) == string(rejoinContext) {
			break // to be added again (restoreMembers, if its leader fails): its addresses stay
		}
		if !slices.Contains(r.removed, id) {
			r.removed = append(r.removed, id)
		}
		if id == r.cfg.ID {
			r.ls.saveMembers(r.Members(), r.removed)
			return ErrRemoved
		}
		r.dropMember(id)
		r.log.Info("replica: a member was removed", "node", id)
	}
	return r.ls.saveMembers(r.Members(), r.removed)
}

// membersKey holds the membership (storedMembers, JSON) in the raft
// log's database.
var membersKey = []byte("m")

// storedMembers is the membership as the raft log keeps it: the members'
// addresses, and the ids removed (never used again: a replica that
// replays the log must not mistake an old removal for its own).
type storedMembers struct {
	Members []Peer   `json:"members"`
	Removed []uint64 `json:"removed,omitempty"`
}

// saveMembers stores the membership, synced.
func (ls *logStore) saveMembers(ms []Member, removed []uint64) error {
	st := storedMembers{Removed: removed}
	for _, m := range ms {
		st.Members = append(st.Members, m.Peer)
	}
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return ls.db.Set(membersKey, v, ls.syncOpt())
}

// loadMembers reads the stored membership (nil if none was stored: the
// log never applied a configuration).
func (ls *logStore) loadMembers() (*storedMembers, error) {
	v, c, err := ls.db.Get(membersKey)
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	defer c.Close()
	var st storedMembers
	if err := json.Unmarshal(v, &st); err != nil {
		return nil, fmt.Errorf("replica: the stored membership does not decode: %w", err)
	}
	return &st, nil
}

// loadMembers sets the members at Open: the list stored in the raft log
// if there is one (this node's own addresses are always the ones it was
// started with), otherwise Config.Peers, less any peer a configuration
// already in the log does not have (a log that began from a leader's
// snapshot). A stored membership that removed this node: ErrRemoved.
func (r *Replica) loadMembers() error {
	m := map[uint64]Peer{}
	stored, err := r.ls.loadMembers()
	if err != nil {
		return err
	}
	var flagSelf Peer
	for _, p := range r.cfg.Peers {
		if p.ID == r.cfg.ID {
			flagSelf = p
		}
	}
	if stored != nil {
		r.removed = stored.Removed
		for _, p := range stored.Members {
			m[p.ID] = p
		}
		if _, ok := m[r.cfg.ID]; !ok || slices.Contains(r.removed, r.cfg.ID) {
			return fmt.Errorf("%w (its raft log in %s says so): start it with a new data directory and --join, and add it again", ErrRemoved, r.cfg.Dir)
		}
		var differ []string
		for _, p := range r.cfg.Peers {
			if q, ok := m[p.ID]; !ok || q != p {
				differ = append(differ, fmt.Sprint(p.ID))
			}
		}
		if len(differ) > 0 || len(r.cfg.Peers) != len(m) {
			r.log.Warn("replica: the membership stored in the raft log differs from --cluster; the stored one holds", "members", stored.Members)
		}
	} else {
		_, cs, err := r.ls.InitialState()
		voters := cs.GetVoters()
		for _, p := range r.cfg.Peers {
			if err != nil || len(voters) == 0 || slices.Contains(voters, p.ID) || p.ID == r.cfg.ID {
				m[p.ID] = p
			}
		}
	}
	if m[r.cfg.ID] != flagSelf && flagSelf.Addr != "" {
		m[r.cfg.ID] = flagSelf // this node's addresses are the ones it was started with
	}
	r.members.Store(&m)
	return nil
}

// addChange is the configuration change that adds member id, with its
// addresses as the context.
func (r *Replica) addChange(id uint64) *pb.ConfChange {
	cc := &pb.ConfChange{Type: pb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id)}
	if p, ok := (*r.members.Load())[id]; ok {
		cc.Context, _ = json.Marshal(p)
	}
	return cc
}

// rejoinContext marks the removal of a member that lost its raft log and
// is added again at once: every replica keeps its addresses.
var rejoinContext = []byte("rejoin")
