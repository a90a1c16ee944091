package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/engine"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Peer is one member of the cluster.
type Peer struct {
	ID uint64 `json:"id"`
	// Addr is where the replica listens for its peers (raft messages).
	Addr string `json:"peer"`
	// Client is its order-entry address, which a follower names to a
	// client that logs in to it (so the client can go to the leader).
	Client string `json:"client"`
}

// Config configures a Replica.
type Config struct {
	// ID is this replica's id, one of Peers' (1, 2, 3, …). Required.
	ID uint64
	// Peers is every member, this one included. Required. Once the raft
	// log has applied a configuration, the membership it stores holds
	// (AddMember and RemoveMember change it) and Peers only gives this
	// replica's own addresses.
	Peers []Peer
	// Join starts a new replica that joins a running group: a new raft log
	// is not given a configuration of its own, and the replica waits for
	// the leader to add it (AddMember) and send it the log. Ignored for a
	// raft log that holds anything.
	Join bool
	// Dir is the raft log's directory. Required.
	Dir string
	// FS is its filesystem. Default: the operating system's.
	FS vfs.FS
	// Fsync syncs the raft log before anything it holds counts as
	// persisted here (and so before this replica acknowledges an entry to
	// the leader). Off: a machine crash of a majority can lose entries a
	// client was told were committed.
	Fsync bool
	// Tick is raft's clock; ElectionTicks and HeartbeatTicks count it.
	// Defaults 10 ms, 10 (an election after 100–200 ms without a
	// leader) and 1.
	Tick                          time.Duration
	ElectionTicks, HeartbeatTicks int
	// Logger receives the replica's lines. Default slog.Default().
	Logger *slog.Logger
	// SlowSync makes every synced write of the raft log take this much
	// longer: a slow disk, injected for fault tests (matchd reads it from
	// MATCHD_FAULT_SLOW_RAFT_SYNC). Zero in production.
	SlowSync time.Duration

	// Sequenced returns the last sequence number the local state machine
	// (the pipeline) has taken in; Durable the last it has made durable.
	// Required.
	Sequenced, Durable func() engine.Seq
	// Apply hands committed commands the local state machine has not
	// taken in to it, in order (a follower's whole work; a new leader's
	// backlog from earlier terms). It may block. Required.
	Apply func(cmds []engine.Command) error
	// OnLead is told when this replica may take new commands (it leads
	// and has applied everything committed before its term) and when it
	// no longer may (it stopped leading). Optional.
	OnLead func(lead bool)
	// SnapshotSeq returns the sequence number of the newest engine
	// snapshot in the node's store (durable), and SnapshotData its
	// bytes. The raft log is compacted up to the last entry that
	// snapshot covers, and a follower behind the log is sent it.
	// Optional: without them the log is never compacted.
	SnapshotSeq  func() engine.Seq
	SnapshotData func(seq engine.Seq) ([]byte, error)
}

// EnsureDefaults fills in zero fields.
func (c *Config) EnsureDefaults() {
	if c.Tick == 0 {
		c.Tick = 10 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	errs := []error{ValidateMembership(c.ID, c.Peers)}
	if c.Dir == "" {
		errs = append(errs, errors.New("replica: no raft log directory"))
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		errs = append(errs, fmt.Errorf("replica: election ticks %d must exceed heartbeat ticks %d", c.ElectionTicks, c.HeartbeatTicks))
	}
	if c.Sequenced == nil || c.Durable == nil || c.Apply == nil {
		errs = append(errs, errors.New("replica: Sequenced, Durable and Apply are required"))
	}
	return errors.Join(errs...)
}

// ValidateMembership checks a node id and the peers list: ids from 1,
// none twice, each with an address, id among them.
func ValidateMembership(id uint64, peers []Peer) error {
	var errs []error
	if id == 0 {
		errs = append(errs, errors.New("replica: no node id (ids start at 1)"))
	}
	seen := map[uint64]bool{}
	self := false
	for _, p := range peers {
		if p.ID == 0 || seen[p.ID] {
			errs = append(errs, fmt.Errorf("replica: peer id %d is zero or given twice", p.ID))
		}
		seen[p.ID] = true
		if p.Addr == "" {
			errs = append(errs, fmt.Errorf("replica: peer %d has no address", p.ID))
		}
		self = self || p.ID == id
	}
	if len(peers) == 0 || !self {
		errs = append(errs, fmt.Errorf("replica: node id %d is not among the peers", id))
	}
	return errors.Join(errs...)
}

// ErrDeposed reports that this replica stopped leading while commands it
// had matched may not be committed: its state may hold commands the
// cluster never will, so it must be rebuilt from what is committed (the
// node restarts itself as a follower) before it serves again.
var ErrDeposed = errors.New("replica: no longer the leader")

var (
	errClosed  = errors.New("replica: closed")
	errStopped = errors.New("replica: stopped") // the raft goroutine ends after a received snapshot
)

// ErrSnapshotReceived reports that this replica was behind the leader's
// log retention and received the leader's snapshot: the node restarts
// and takes it (persist.Store.ResetTo) before it recovers.
var ErrSnapshotReceived = errors.New("replica: received the leader's snapshot")

// NeedsRestart reports whether err (a node's failure) asks for the node
// to be started again at once, from what is committed: it was deposed, or
// it received a snapshot.
func NeedsRestart(err error) bool {
	return errors.Is(err, ErrDeposed) || errors.Is(err, ErrSnapshotReceived)
}

// ErrNotLeader reports a command offered to a replica that does not lead.
var ErrNotLeader = errors.New("replica: not the leader")

// Role is a replica's part in the cluster.
type Role uint8

// Roles.
const (
	Follower Role = iota
	Candidate
	Leader
)

// String is the role in words: follower, candidate or leader.
func (r Role) String() string {
	switch r {
	case Leader:
		return "leader"
	case Candidate:
		return "candidate"
	}
	return "follower"
}

// Status is a replica's state, for metrics and operators.
type Status struct {
	ID      uint64
	Role    Role
	Ready   bool // leads and takes new commands
	Term    uint64
	Leader  uint64 // 0: none known
	Commit  uint64 // raft's commit index
	Applied uint64 // the last entry applied here
	// CommittedSeq is the last command sequence number known committed.
	CommittedSeq engine.Seq
	// Match is, on the leader, each follower's last index known
	// replicated there.
	Match map[uint64]uint64
}

type snapStatus struct {
	to uint64
	ok bool
}

type indexSeq struct {
	index uint64
	seq   engine.Seq
}

type proposal struct {
	data []byte
}

// Replica is one member of a raft group replicating the command journal.
type Replica struct {
	cfg Config
	log *slog.Logger
	ls  *logStore
	rn  *raft.RawNode
	tr  *transport

	// members are the group's members' addresses by ID (replaced whole by
	// the raft goroutine, read by anyone); voters is the configuration
	// applied last.
	members atomic.Pointer[map[uint64]Peer]
	voters  atomic.Pointer[[]uint64]
	// confc carries an operator's membership changes to the raft
	// goroutine; confUntil is set while one proposed there is not
	// applied (raft goroutine).
	confc     chan memberChange
	confUntil time.Time
	removed   []uint64 // ids removed from the group (raft goroutine)
	// warnedRemoved is when a removed node that still connects was last
	// logged (raft goroutine).
	warnedRemoved time.Time

	recvc  chan inbound
	propc  chan proposal
	applyc chan []*pb.Entry
	unrch  chan uint64
	snaps  chan snapStatus
	stop   chan struct{}
	done   sync.WaitGroup

	// Written by the raft goroutine, read by anyone.
	role    atomic.Uint32
	leader  atomic.Uint64
	term    atomic.Uint64
	commit  atomic.Uint64
	applied atomic.Uint64 // by the applier
	ready   atomic.Bool   // leads and may propose
	deposed atomic.Bool
	// transferring is set while this leader hands its leadership over
	// (TransferLeader).
	transferring atomic.Bool
	barrier      atomic.Uint64 // a new leader's first index of its term
	statusMu     sync.Mutex
	status       raft.Status

	// handed is the last sequence handed to Apply (applier goroutine).
	handed engine.Seq
	// marks are the applied entries' indexes and last sequence numbers
	// since the last compaction, oldest first (under marksMu), for
	// choosing where to compact.
	marksMu sync.Mutex
	marks   []indexSeq
	// confState is the latest configuration (raft goroutine).
	confState *pb.ConfState
	// rejoin holds the peers being removed and added again because they
	// lost their logs (raft goroutine): true once the removal is proposed.
	rejoin map[uint64]bool
	readd  []uint64 // removed, to be added again after the Ready

	// committedSeq is the last sequence known committed; cond wakes the
	// journal's Await.
	committedSeq atomic.Uint64
	mu           sync.Mutex
	cond         *sync.Cond

	failOnce sync.Once
	failErr  error
	failed   chan struct{}
}

// Open opens the raft log (creating it, and the cluster's first
// configuration, if it is new) and binds the peer address. Nothing runs
// until Start.
func Open(cfg Config) (*Replica, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Replica{cfg: cfg, log: cfg.Logger, confc: make(chan memberChange),
		recvc: make(chan inbound, 4096), propc: make(chan proposal, 256),
		applyc: make(chan []*pb.Entry, 256), unrch: make(chan uint64, 64), snaps: make(chan snapStatus, 16),
		stop: make(chan struct{}), failed: make(chan struct{})}
	r.cond = sync.NewCond(&r.mu)
	r.rejoin = map[uint64]bool{}
	ls, fresh, err := openLogStore(cfg.Dir, cfg.FS, cfg.Fsync)
	if err != nil {
		return nil, err
	}
	r.ls = ls
	ls.snapData, ls.slowSync = cfg.SnapshotData, cfg.SlowSync
	if err := r.loadMembers(); err != nil {
		ls.close()
		return nil, err
	}
	if _, cs, err := ls.InitialState(); err == nil {
		r.setConf(cs)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID: cfg.ID, ElectionTick: cfg.ElectionTicks, HeartbeatTick: cfg.HeartbeatTicks,
		Storage: ls, MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256, MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum: true, PreVote: true, Logger: raftLogger{cfg.Logger},
	})
	if err != nil {
		ls.close()
		return nil, err
	}
	if fresh && cfg.Join {
		r.log.Info("replica: a new node joining a running cluster; it waits for the leader to add it (matchctl cluster add)", "node", cfg.ID)
	}
	if fresh && !cfg.Join {
		var peers []raft.Peer
		for _, p := range cfg.Peers {
			peers = append(peers, raft.Peer{ID: p.ID})
		}
		sort.Slice(peers, func(i, j int) bool { return peers[i].ID < peers[j].ID })
		if err := rn.Bootstrap(peers); err != nil {
			ls.close()
			return nil, fmt.Errorf("replica: bootstrap: %w", err)
		}
	}
	r.rn = rn
	addrs := map[uint64]string{}
	for id, p := range *r.members.Load() {
		addrs[id] = p.Addr
	}
	self := (*r.members.Load())[cfg.ID]
	r.tr, err = newTransport(cfg.ID, self.Addr, addrs, cfg.Logger, r.receive, r.unreachable,
		func() uint64 { i, _ := ls.LastIndex(); return i }, r.peerHello, r.snapshotSent)
	if err != nil {
		ls.close()
		return nil, err
	}
	return r, nil
}

// DirFor is the raft log's directory inside a node's data directory.
func DirFor(dataDir string) string { return filepath.Join(dataDir, "raft") }

// Start starts the raft goroutine and the applier.
func (r *Replica) Start() {
	r.done.Add(2)
	go r.run()
	go r.runApply()
}

// Close stops the replica and closes its log. It waits for its goroutines,
// so call it only once the state machine no longer waits on Apply.
func (r *Replica) Close() error {
	select {
	case <-r.stop:
		return nil
	default:
	}
	close(r.stop)
	r.fail(errClosed)
	terr := r.tr.close()
	r.done.Wait()
	return errors.Join(terr, r.ls.close())
}

// Failed is closed when the replica can no longer take part: its log
// failed, it was deposed with commands in flight, or it was closed.
func (r *Replica) Failed() <-chan struct{} { return r.failed }

// Err says why Failed is closed.
func (r *Replica) Err() error {
	select {
	case <-r.failed:
		return r.failErr
	default:
		return nil
	}
}

func (r *Replica) fail(err error) {
	r.failOnce.Do(func() {
		if !errors.Is(err, errClosed) && !errors.Is(err, ErrDeposed) {
			r.log.Error("replica: failed; this node stops taking part", "err", err)
		}
		r.failErr = err
		close(r.failed)
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
}

// PeerAddr is the address the replica listens on for its peers.
func (r *Replica) PeerAddr() string { return r.tr.Addr().String() }

// LeaderClient returns the leader's id and order-entry address ("" when
// no leader is known, or it is this replica).
func (r *Replica) LeaderClient() (uint64, string) {
	id := r.leader.Load()
	if id == 0 || id == r.cfg.ID {
		return id, ""
	}
	return id, (*r.members.Load())[id].Client
}

// Ready reports whether the replica leads and takes new commands.
func (r *Replica) Ready() bool { return r.ready.Load() && !r.deposed.Load() }

// Status returns the replica's state.
func (r *Replica) Status() Status {
	r.statusMu.Lock()
	st := r.status
	r.statusMu.Unlock()
	s := Status{ID: r.cfg.ID, Role: Role(r.role.Load()), Ready: r.Ready(), Term: r.term.Load(), Leader: r.leader.Load(),
		Commit: r.commit.Load(), Applied: r.applied.Load(), CommittedSeq: engine.Seq(r.committedSeq.Load())}
	if s.Role == Leader && st.Progress != nil {
		s.Match = map[uint64]uint64{}
		for id, pr := range st.Progress {
			if id != r.cfg.ID {
				s.Match[id] = pr.Match
			}
		}
	}
	return s
}

// inbound is what a peer connection delivers, in its order: messages,
// and first its hello (a peer's log length must be judged before its
// later acknowledgments move the leader's view of it).
type inbound struct {
	m           *pb.Message
	hello       bool
	from, lastI uint64
}

func (r *Replica) receive(m *pb.Message) {
	select {
	case r.recvc <- inbound{m: m}:
	case <-r.stop:
	}
}

func (r *Replica) unreachable(id uint64) {
	select {
	case r.unrch <- id:
	default:
	}
}

// propose hands an entry to raft; it fails if the replica does not lead.
func (r *Replica) propose(data []byte) error {
	if !r.Ready() {
		return ErrNotLeader
	}
	select {
	case r.propc <- proposal{data: data}:
		return nil
	case <-r.failed:
		return r.Err()
	}
}

// run is the raft goroutine: the only one that touches the RawNode.
func (r *Replica) run() {
	defer r.done.Done()
	defer close(r.applyc)
	t := time.NewTicker(r.cfg.Tick)
	defer t.Stop()
	statusEvery := 0
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.rn.Tick()
			// Every ten ticks; every tick while a transfer waits on it.
			if statusEvery++; statusEvery%10 == 0 || r.transferring.Load() {
				st := r.rn.Status()
				r.statusMu.Lock()
				r.status = st
				r.statusMu.Unlock()
			}
			if statusEvery%100 == 0 && r.Ready() {
				r.restoreMembers()
			}
			if statusEvery%100 == 0 {
				if err := r.maybeCompact(); err != nil {
					r.log.Error("replica: compacting the raft log failed; this replica stops", "err", err)
					r.fail(err)
					return
				}
			}
		case in := <-r.recvc:
			r.stepIn(in)
		case p := <-r.propc:
			r.proposeNow(p)
		case c := <-r.confc:
			if c.transfer {
				r.rn.TransferLeader(c.peer.ID)
				break
			}
			c.reply <- r.proposeMember(c)
		case id := <-r.unrch:
			r.rn.ReportUnreachable(id)
		case st := <-r.snaps:
			status := raft.SnapshotFailure
			if st.ok {
				status = raft.SnapshotFinish
			}
			r.rn.ReportSnapshot(st.to, status)
		}
		// Take whatever else is waiting before the Ready: one sync for all.
		for more := true; more; {
			select {
			case in := <-r.recvc:
				r.stepIn(in)
			case p := <-r.propc:
				r.proposeNow(p)
			default:
				more = false
			}
		}
		for r.rn.HasReady() {
			if err := r.handle(r.rn.Ready()); err != nil {
				if errors.Is(err, ErrRemoved) {
					r.log.Warn("replica: this node was removed from the cluster; it stops (its data directory cannot rejoin: start a new one with --join and add it again)")
					r.fail(err)
					return
				}
				if !errors.Is(err, errStopped) {
					r.log.Error("replica: the raft log failed; this replica stops", "err", err)
					r.fail(err)
				}
				return
			}
			for _, id := range r.readd {
				add := r.addChange(id)
				if err := r.rn.ProposeConfChange(add); err != nil {
					r.log.Warn("replica: could not propose adding a peer back", "peer", id, "err", err)
				}
			}
			r.readd = r.readd[:0]
		}
	}
}

func (r *Replica) stepIn(in inbound) {
	if in.hello {
		r.checkPeer(in.from, in.lastI)
		return
	}
	r.step(in.m)
}

func (r *Replica) step(m *pb.Message) {
	if m.GetType() == pb.MsgHeartbeat {
		// A leader that still counts on entries this log lost (a wiped
		// data directory) would make raft commit past its end: commit
		// what is here; the leader then removes and re-adds this replica
		// (checkPeer) and sends it a snapshot.
		if last, _ := r.ls.LastIndex(); m.GetCommit() > last {
			m.Commit = proto.Uint64(last)
		}
	}
	if err := r.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
		r.log.Debug("replica: step", "err", err)
	}
}

func (r *Replica) proposeNow(p proposal) {
	if err := r.rn.Propose(p.data); err != nil {
		// Dropped (leadership is changing): what was matched cannot be
		// committed by us.
		r.depose(fmt.Errorf("%w: a proposal was dropped: %w", ErrDeposed, err))
	}
}

// depose marks the replica as no longer leading with commands in flight.
func (r *Replica) depose(err error) {
	if r.deposed.CompareAndSwap(false, true) {
		if r.transferring.Load() {
			r.log.Info("replica: handed the leadership over; the node restarts as a follower")
		} else {
			r.log.Warn("replica: deposed; the node restarts from what is committed", "err", err)
		}
		if r.cfg.OnLead != nil && r.ready.Load() {
			r.cfg.OnLead(false)
		}
		r.ready.Store(false)
		r.fail(err)
	}
}

// handle carries out one Ready in the order raft requires: persist the
// snapshot, entries and hard state; send the messages; apply the committed
// entries; advance.
func (r *Replica) handle(rd raft.Ready) error {
	if ss := rd.SoftState; ss != nil {
		was := Role(r.role.Load())
		role := Follower
		switch ss.RaftState {
		case raft.StateLeader:
			role = Leader
		case raft.StateCandidate, raft.StatePreCandidate:
			role = Candidate
		}
		r.role.Store(uint32(role))
		r.leader.Store(ss.Lead)
		if was == Leader && role != Leader {
			r.depose(fmt.Errorf("%w: now %s in term %d", ErrDeposed, role, r.rn.BasicStatus().HardState.GetTerm()))
		}
		if role == Leader && was != Leader {
			r.log.Info("replica: leading", "term", r.rn.BasicStatus().HardState.GetTerm())
		}
	}
	if hs := rd.HardState; hs != nil {
		r.term.Store(hs.GetTerm())
		r.commit.Store(hs.GetCommit())
	}
	// The leader sends first: its followers write the entries to their
	// disks while it writes them to its own (raft counts the leader's own
	// copy only once Advance says it is persisted, so a commit still
	// needs it). Followers answer only once persisted.
	leading := Role(r.role.Load()) == Leader && raft.IsEmptySnap(rd.Snapshot)
	if leading {
		r.tr.send(rd.Messages)
		// The peers' writers were woken into this goroutine's processor,
		// to run when it blocks: let them write now, before the sync (40 µs
		// off one order's latency on the 2-core test machine).
		if len(rd.Messages) > 0 {
			runtime.Gosched()
		}
	}
	if err := r.ls.save(rd.Snapshot, rd.Entries, rd.HardState, rd.MustSync); err != nil {
		return err
	}
	if rd.SoftState != nil && Role(r.role.Load()) == Leader && r.barrier.Load() == 0 {
		// The empty entry a new leader appends is in this Ready: once it
		// is applied, so is everything committed before the term.
		last, _ := r.ls.LastIndex()
		r.barrier.Store(last)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		// Behind the leader's log: its snapshot is kept in the raft log
		// now; the node restarts and takes it before anything else.
		seq, _, _ := snapshotSeq(rd.Snapshot.GetData())
		r.log.Warn("replica: received the leader's snapshot; the node restarts from it",
			"index", rd.Snapshot.GetMetadata().GetIndex(), "seq", seq)
		r.tr.send(rd.Messages) // the acknowledgment: the snapshot is durable in the raft log
		r.tr.flush(time.Second)
		r.rn.Advance(rd)
		r.fail(fmt.Errorf("%w (index %d, seq %d)", ErrSnapshotReceived, rd.Snapshot.GetMetadata().GetIndex(), seq))
		return errStopped
	}
	if !leading {
		r.tr.send(rd.Messages)
	}
	if len(rd.CommittedEntries) > 0 {
		for _, e := range rd.CommittedEntries {
			switch e.GetType() {
			case pb.EntryConfChange:
				var cc pb.ConfChange
				if err := proto.Unmarshal(e.GetData(), &cc); err == nil {
					r.applyConf(&cc)
					r.confChanged(&cc)
					if err := r.applyMembers(&cc); err != nil {
						return err
					}
				}
			case pb.EntryConfChangeV2:
				var cc pb.ConfChangeV2
				if err := proto.Unmarshal(e.GetData(), &cc); err == nil {
					r.applyConf(&cc)
				}
			}
		}
		select {
		case r.applyc <- rd.CommittedEntries:
		case <-r.stop:
			return nil
		}
	}
	r.rn.Advance(rd)
	return nil
}

// applyConf applies a committed configuration change to raft (raft
// goroutine).
func (r *Replica) applyConf(cc pb.ConfChangeI) { r.setConf(r.rn.ApplyConfChange(cc)) }

// setConf records the configuration: confState for the raft goroutine,
// voters for everyone.
func (r *Replica) setConf(cs *pb.ConfState) {
	r.confState = cs
	voters := slices.Clone(cs.GetVoters())
	r.voters.Store(&voters)
}

// runApply applies committed entries in order: commands the local state
// machine already took in (the leader's own, matched before they were
// committed) are marked committed; others are handed to Apply.
func (r *Replica) runApply() {
	defer r.done.Done()
	var cmds []engine.Command
	for ents := range r.applyc {
		for _, e := range ents {
			if r.deposed.Load() {
				break // our state holds uncommitted commands: apply nothing more
			}
			if e.GetType() == pb.EntryNormal && len(e.GetData()) > 0 {
				var err error
				cmds, err = decodeEntry(e.GetData(), cmds[:0])
				if err != nil {
					r.fail(fmt.Errorf("replica: entry %d: %w", e.GetIndex(), err))
					return
				}
				if err := r.applyCmds(cmds); err != nil {
					r.fail(fmt.Errorf("replica: apply entry %d: %w", e.GetIndex(), err))
					return
				}
				if len(cmds) > 0 {
					r.marksMu.Lock()
					r.marks = append(r.marks, indexSeq{e.GetIndex(), cmds[len(cmds)-1].Seq})
					r.marksMu.Unlock()
				}
			}
			r.applied.Store(e.GetIndex())
			if b := r.barrier.Load(); b != 0 && e.GetIndex() >= b && !r.ready.Load() && Role(r.role.Load()) == Leader {
				r.becomeReady()
			}
		}
	}
}

func (r *Replica) applyCmds(cmds []engine.Command) error {
	if len(cmds) == 0 {
		return nil
	}
	last := cmds[len(cmds)-1].Seq
	// What the state machine has or will have: what it sequenced itself
	// (a leader's own commands) or was handed here (the pipeline may not
	// have taken all of that in yet).
	seq := max(r.handed, r.cfg.Sequenced())
	if last <= seq {
		r.setCommitted(last)
		return nil
	}
	if cmds[0].Seq > seq+1 {
		return fmt.Errorf("replica: commands %d..%d committed, but the state machine is at %d (a gap)", cmds[0].Seq, last, seq)
	}
	rest := cmds[seq+1-cmds[0].Seq:]
	r.setCommitted(last) // before Apply: the journal writes these locally
	r.handed = last
	return r.cfg.Apply(rest)
}

func (r *Replica) setCommitted(s engine.Seq) {
	if uint64(s) > r.committedSeq.Load() {
		r.committedSeq.Store(uint64(s))
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	}
}

// becomeReady lets a new leader take commands once what it applied is
// durable here too.
func (r *Replica) becomeReady() {
	target := engine.Seq(r.committedSeq.Load())
	for r.cfg.Durable() < target {
		select {
		case <-r.stop:
			return
		case <-time.After(100 * time.Microsecond):
		}
	}
	if r.deposed.Load() || Role(r.role.Load()) != Leader {
		return
	}
	r.ready.Store(true)
	r.log.Info("replica: taking commands", "term", r.term.Load(), "seq", target)
	if r.cfg.OnLead != nil {
		r.cfg.OnLead(true)
	}
}

// waitCommitted blocks until s is committed or the replica fails.
func (r *Replica) waitCommitted(s engine.Seq) error {
	if engine.Seq(r.committedSeq.Load()) >= s {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for engine.Seq(r.committedSeq.Load()) < s {
		if err := r.Err(); err != nil {
			return err
		}
		r.cond.Wait()
	}
	return nil
}

// raftLogger sends raft's own lines to slog (its debug and info lines at
// debug level: it is chatty).
type raftLogger struct{ l *slog.Logger }

func (l raftLogger) Debug(v ...any)              { l.l.Debug(fmt.Sprint(v...)) }
func (l raftLogger) Debugf(f string, v ...any)   { l.l.Debug(fmt.Sprintf(f, v...)) }
func (l raftLogger) Info(v ...any)               { l.l.Debug(fmt.Sprint(v...)) }
func (l raftLogger) Infof(f string, v ...any)    { l.l.Debug(fmt.Sprintf(f, v...)) }
func (l raftLogger) Warning(v ...any)            { l.l.Warn(fmt.Sprint(v...)) }
func (l raftLogger) Warningf(f string, v ...any) { l.l.Warn(fmt.Sprintf(f, v...)) }
func (l raftLogger) Error(v ...any)              { l.l.Error(fmt.Sprint(v...)) }
func (l raftLogger) Errorf(f string, v ...any)   { l.l.Error(fmt.Sprintf(f, v...)) }
func (l raftLogger) Fatal(v ...any)              { panic(fmt.Sprint(v...)) }
func (l raftLogger) Fatalf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
func (l raftLogger) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (l raftLogger) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }

// maybeCompact compacts the raft log up to the last applied entry that the
// node's newest engine snapshot covers (raft goroutine). The log keeps what
// came after it, so a follower behind by less than a snapshot interval
// catches up from the log; one further behind is sent the snapshot.
func (r *Replica) maybeCompact() error {
	if r.cfg.SnapshotSeq == nil || r.confState == nil {
		return nil
	}
	snapSeq := r.cfg.SnapshotSeq()
	applied := r.applied.Load()
	r.marksMu.Lock()
	k := 0
	for k < len(r.marks) && r.marks[k].seq <= snapSeq && r.marks[k].index <= applied {
		k++
	}
	var at uint64
	if k > 0 {
		at = r.marks[k-1].index
		r.marks = append(r.marks[:0], r.marks[k:]...)
	}
	r.marksMu.Unlock()
	if first, _ := r.ls.FirstIndex(); at < first {
		return nil
	}
	return r.ls.compactTo(at, r.confState, snapSeq)
}

// InstallTarget returns the leader's snapshot this replica received and
// kept in its raft log, if any (seq and engine state): the node resets its
// store to it when the store is behind (node.Open does, before recovery).
func (r *Replica) InstallTarget() (engine.Seq, []byte) {
	snap, err := r.ls.MemoryStorage.Snapshot()
	if err != nil || raft.IsEmptySnap(snap) {
		return 0, nil
	}
	seq, state, ok := snapshotSeq(snap.GetData())
	if !ok || len(state) == 0 {
		return 0, nil
	}
	return seq, state
}

func (r *Replica) peerHello(from, last uint64) {
	select {
	case r.recvc <- inbound{hello: true, from: from, lastI: last}:
	case <-r.stop:
	}
}

// checkPeer runs when a peer connects, saying its raft log's last index
// (raft goroutine). On the leader, a peer whose log ends before what it
// had acknowledged lost its log (its data directory was wiped, or its
// disk lost writes): raft cannot bring it back by itself, since it trusts
// what a follower acknowledged. The leader removes it from the
// configuration and adds it again, which starts its progress afresh, so
// it is sent a snapshot and the log from there.
func (r *Replica) checkPeer(id, last uint64) {
	if slices.Contains(r.removed, id) {
		// Removed while it was down or cut off, it never learnt it.
		if time.Since(r.warnedRemoved) > time.Minute {
			r.warnedRemoved = time.Now()
			r.log.Warn("replica: a node removed from the cluster is still running and connecting; stop it", "node", id)
		}
		return
	}
	if Role(r.role.Load()) != Leader || r.rejoin[id] || r.changing() {
		return
	}
	pr, ok := r.rn.Status().Progress[id]
	if !ok || pr.Match <= last {
		return
	}
	r.log.Warn("replica: a peer lost its raft log; removing it and adding it again so that it catches up by snapshot",
		"peer", id, "acknowledged", pr.Match, "has", last)
	r.rejoin[id] = true
	cc := &pb.ConfChange{Type: pb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id), Context: rejoinContext}
	if err := r.rn.ProposeConfChange(cc); err != nil {
		delete(r.rejoin, id)
	}
}

// confChanged follows a committed configuration change (raft goroutine):
// a peer removed to rejoin is added again.
func (r *Replica) confChanged(cc *pb.ConfChange) {
	id := cc.GetNodeId()
	switch cc.GetType() {
	case pb.ConfChangeRemoveNode:
		if Role(r.role.Load()) == Leader && r.rejoin[id] {
			r.readd = append(r.readd, id) // once this Ready is advanced: raft refuses a change before the last is applied
		}
	case pb.ConfChangeAddNode:
		if r.rejoin[id] {
			delete(r.rejoin, id)
			r.log.Info("replica: a peer is a member again", "peer", id)
		}
	}
}

// restoreMembers makes the leader add back any configured peer that is
// not a voter (one removed to rejoin while the leader changed), once a
// second: the peers list is the membership the operator asked for.
func (r *Replica) restoreMembers() {
	if r.confState == nil || r.changing() || len(r.confState.GetVoters()) == 0 {
		return
	}
	for _, p := range r.Members() {
		if !p.Voter {
			r.rejoin[p.ID] = true
			cc := r.addChange(p.ID)
			if err := r.rn.ProposeConfChange(cc); err != nil {
				r.log.Warn("replica: could not propose adding a peer back", "peer", p.ID, "err", err)
			}
			return // one configuration change at a time
		}
	}
}

// Recovered tells the replica what the node's store held at start: every
// command in it was committed (a replica's journal holds only those).
// Call it before Start.
func (r *Replica) Recovered(seq engine.Seq) {
	r.setCommitted(seq)
	r.handed = max(r.handed, seq)
}

// snapshotSent tells raft whether a snapshot reached its peer's socket:
// without it raft waits for that peer's snapshot for ever.
func (r *Replica) snapshotSent(to uint64, ok bool) {
	select {
	case r.snaps <- snapStatus{to, ok}:
	case <-r.stop:
	}
}
