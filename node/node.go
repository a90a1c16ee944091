// Package node composes one matchd: it opens the data directory, recovers
// the engine, wires the pipeline, the server and the snapshotter, runs
// them and stops them in the right order. It is the only way the parts
// are started: cmd/matchd and the tests (api/apitest) start exactly the
// same thing.
//
// Usage:
//
//	n, err := node.Open(cfg)   // open the store, recover, wire, listen
//	n.Start()                  // the pipeline's stages, the snapshotter, the accept loop
//	select { case <-sig: case <-n.Failed(): }
//	err = n.Close(wait)        // stop serving, drain, final snapshot, close the store
package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
	"github.com/matchd/matchd/replica"
)

// Config is everything one node needs. The parts' own configs carry their
// defaults (EnsureDefaults) and checks (Validate).
type Config struct {
	// Dir is the data directory. Required.
	Dir string
	// FS is the filesystem of the store. Default: the operating system's.
	// Tests use vfs.NewCrashableMem().
	FS vfs.FS
	// Engine configures a new store's engine; an existing store keeps the
	// configuration in its snapshots.
	Engine engine.Config
	// Accounts are the logins the server accepts.
	Accounts []api.Account
	// API, Pipeline, Store and Snapshots configure the parts.
	API       api.Config
	Pipeline  pipeline.Config
	Store     persist.Options
	Snapshots persist.SnapshotterConfig
	// Logger receives every part's log lines. Default slog.Default().
	Logger *slog.Logger
	// Cluster, if set, makes the node one replica of a raft group: its
	// journal is replicated (replica.Journal), it takes order entry only
	// while it leads, and it applies what the leader commits otherwise.
	// Its ID, Peers and Fsync are needed; Dir defaults to the data
	// directory's "raft"; the callbacks are the node's.
	Cluster *replica.Config
}

// ErrConfigMismatch reports a configuration whose instruments differ from
// those the data directory's engine holds. The engine's configuration
// lives in its snapshots and journal; changing instruments in the config
// of an existing directory would advertise a directory the engine does
// not trade, so Open refuses and lists the differences.
var ErrConfigMismatch = errors.New("node: the config's instruments differ from the data directory's")

// Node is one running matchd.
type Node struct {
	log   *slog.Logger
	store *persist.Store
	pipe  *pipeline.Pipeline
	srv   *api.Server
	snap  *persist.Snapshotter
	rec   persist.RecoveryStats
	addr  net.Addr
	rep   *replica.Replica // nil: a single node

	served   chan error
	failed   chan struct{}
	serveErr error // set before failed is closed
	started  bool
	closed   bool
}

// Open opens (or creates) the store in cfg.Dir, recovers the engine, wires
// the pipeline, server and snapshotter around it and binds the order
// port. Nothing runs until Start. If recovery refuses, Open returns why
// and leaves the directory as it found it.
func Open(cfg Config) (*Node, error) {
	if cfg.Dir == "" {
		return nil, errors.New("node: no data directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.API.Logger, cfg.Store.Logger = cfg.Logger, cfg.Logger
	if cfg.FS != nil {
		cfg.Store.FS = cfg.FS
	}
	n := &Node{log: cfg.Logger, served: make(chan error, 1), failed: make(chan struct{})}
	srv, err := api.NewServer(cfg.API, cfg.Accounts)
	if err != nil {
		return nil, err
	}
	n.srv = srv
	store, err := persist.Open(cfg.Dir, cfg.Engine, cfg.Store)
	if err != nil {
		return nil, err
	}
	n.store = store
	if cfg.Cluster != nil {
		rc := *cfg.Cluster
		if rc.Dir == "" {
			rc.Dir = replica.DirFor(cfg.Dir)
		}
		if rc.FS == nil {
			rc.FS = cfg.FS
		}
		rc.Logger = cfg.Logger
		rc.Sequenced = func() engine.Seq { return n.pipe.Sequenced() }
		rc.Durable = func() engine.Seq { return n.pipe.Durable() }
		rc.Apply = func(cmds []engine.Command) error { return n.apply(cmds) }
		rc.OnLead = func(lead bool) { n.pipe.SetSequencing(lead) }
		rc.SnapshotSeq = func() engine.Seq {
			snaps, err := store.Snapshots()
			if err != nil || len(snaps) == 0 {
				return 0
			}
			return snaps[len(snaps)-1].Seq
		}
		rc.SnapshotData = store.SnapshotData
		if n.rep, err = replica.Open(rc); err != nil {
			store.Close()
			return nil, err
		}
		// A snapshot the leader sent because this replica was behind its
		// log: the store starts over from it.
		if seq, state := n.rep.InstallTarget(); state != nil {
			last, err := store.LastSeq()
			snaps, serr := store.Snapshots()
			if err == nil && serr == nil && len(snaps) > 0 {
				last = max(last, snaps[len(snaps)-1].Seq)
			}
			if err == nil && serr == nil && seq > last {
				err = store.ResetTo(seq, state)
			}
			if err = errors.Join(err, serr); err != nil {
				n.closeReplica()
				store.Close()
				return nil, fmt.Errorf("node: take the leader's snapshot: %w", err)
			}
		}
	}
	// From the oldest snapshot kept, so that the sessions' streams are
	// rebuilt from every command the journal still holds.
	e, rec, err := store.RecoverWith(persist.RecoverOptions{FromOldest: true, Observe: srv.Observe})
	if err != nil {
		n.closeReplica()
		store.Close()
		return nil, err
	}
	srv.Seed(e.Sessions(nil))
	n.rec = rec
	if n.rep != nil {
		n.rep.Recovered(e.LastSeq())
	}
	if len(cfg.Engine.Instruments) > 0 {
		want := cfg.Engine
		want.EnsureDefaults()
		var have []engine.Instrument
		for _, in := range e.Instruments(nil) {
			have = append(have, in.Instrument)
		}
		if diff := engine.DiffInstruments(have, want.Instruments); diff != nil {
			n.closeReplica()
			store.Close()
			return nil, fmt.Errorf("%w (%s): %s", ErrConfigMismatch, cfg.Dir, strings.Join(diff, "; "))
		}
		for _, a := range want.Accounts {
			if a.Operator && !e.IsOperator(a.ID) {
				// The engine's configuration is the data's: its phase
				// commands would be rejected. Not fatal: trading works.
				n.log.Warn("node: account is an operator in the configuration but not in the data directory, "+
					"which was created without it; its phase commands will be rejected (start with a new data directory to change operators)",
					"account", a.ID, "dir", cfg.Dir)
			}
		}
	}
	var journal pipeline.Journal = store
	if n.rep != nil {
		srv.SetLeadership(func() (bool, uint64, string) {
			if n.rep.Ready() {
				return true, 0, ""
			}
			id, addr := n.rep.LeaderClient()
			return false, id, addr
		})
		cfg.Pipeline.Follower = true
		cfg.Pipeline.EnsureDefaults()
		journal = n.rep.Journal(store, cfg.Pipeline.InFlight)
	}
	if n.pipe, err = pipeline.New(e, journal, srv.Deliver, cfg.Pipeline); err != nil {
		n.closeReplica()
		store.Close()
		return nil, err
	}
	srv.Attach(n.pipe)
	if n.snap, err = persist.NewSnapshotter(store, e, n.pipe.Durable, cfg.Snapshots); err != nil {
		n.closeReplica()
		store.Close()
		return nil, err
	}
	if n.addr, err = srv.Listen(); err != nil {
		n.snap.Close()
		n.closeReplica()
		store.Close()
		return nil, err
	}
	return n, nil
}

// apply hands committed commands from the leader to the pipeline.
func (n *Node) apply(cmds []engine.Command) error {
	const chunk = 1024
	var reqs [chunk]pipeline.Request
	for len(cmds) > 0 {
		k := min(len(cmds), chunk)
		for i := range k {
			reqs[i] = pipeline.Request{Cmd: cmds[i], Replicated: true}
		}
		if err := n.pipe.Submit(reqs[:k]...); err != nil {
			return err
		}
		cmds = cmds[k:]
	}
	return nil
}

func (n *Node) closeReplica() {
	if n.rep != nil {
		n.rep.Close()
	}
}

// Replica returns the node's replica (nil for a single node).
func (n *Node) Replica() *replica.Replica { return n.rep }

// Start starts the pipeline's stages, the snapshotter and the accept loop.
func (n *Node) Start() {
	n.started = true
	n.pipe.Start()
	if n.rep != nil {
		n.rep.Start()
	}
	n.snap.Start()
	go func() { n.served <- n.srv.Serve() }()
	go func() {
		select {
		case <-n.pipe.Failed():
		case <-n.store.Failed():
		case err := <-n.served:
			if err != nil && !n.srv.Closing() {
				n.serveErr = fmt.Errorf("node: accept loop ended: %w", err)
			}
		}
		close(n.failed)
	}()
}

// Failed is closed when the node can no longer serve: the journal or the
// store failed (a write, a sync, corruption found by a read, a full disk;
// Err says why) or the accept loop ended.
func (n *Node) Failed() <-chan struct{} { return n.failed }

// Err says why Failed is closed: the journal's failure or the accept
// loop's end (nil while the node serves, and after a clean Close).
func (n *Node) Err() error {
	if err := n.pipe.Err(); err != nil {
		return err
	}
	if err := n.store.Err(); err != nil {
		return err
	}
	select {
	case <-n.failed:
		return n.serveErr
	default:
		return nil
	}
}

// Addr is the order-entry address.
func (n *Node) Addr() net.Addr { return n.addr }

// Server, Pipeline, Store and Snapshotter return the parts, for metrics
// and the admin endpoints.
func (n *Node) Server() *api.Server               { return n.srv }
func (n *Node) Pipeline() *pipeline.Pipeline      { return n.pipe }
func (n *Node) Store() *persist.Store             { return n.store }
func (n *Node) Snapshotter() *persist.Snapshotter { return n.snap }
func (n *Node) Recovery() persist.RecoveryStats   { return n.rec }

// Close stops the node, within about wait for the sessions: the server
// stops accepting and reading and answers everything it took (sessions
// get Goodbye: reason 8 if the node failed, else 6); the pipeline drains;
// the snapshotter stops; if nothing failed, a final snapshot is written
// and the store closes. It returns the
// pipeline's or the final snapshot's failure.
//
// After a failure the store may be stuck inside a call that cannot
// finish (Pebble stalls writes on a full disk): Close then gives the
// pipeline wait to drain and, if it does not, returns without closing the
// store. Nothing unacknowledged matters then, and the journal on disk is
// what the next start recovers; the process should exit.
func (n *Node) Close(wait time.Duration) error {
	if n.closed {
		return nil
	}
	n.closed = true
	if !n.started {
		wait = 0 // nothing was served: only the listener to close
	}
	failed := n.Err() != nil
	if failed {
		n.srv.Fail(wait)
	} else {
		n.srv.Shutdown(wait)
	}
	closed := make(chan error, 1)
	go func() { closed <- n.pipe.Close() }()
	var perr error
	switch {
	case failed:
		select {
		case perr = <-closed:
		case <-time.After(wait + time.Second):
			if n.rep == nil {
				return fmt.Errorf("node: the store is stuck after its failure; not closing it: %w", n.Err())
			}
			n.rep.Close() // what waits for a commit gives up
			perr = <-closed
		}
	case n.rep != nil:
		select {
		case perr = <-closed:
		case <-time.After(wait + time.Second):
			// No quorum to commit what is in flight: it stays unacknowledged.
			n.log.Warn("node: the cluster did not commit what was in flight; stopping without it")
			n.rep.Close()
			perr = <-closed
		}
	default:
		perr = <-closed
	}
	n.snap.Close()
	if perr == nil {
		perr = n.store.Err()
	}
	var serr error
	if perr == nil {
		start := time.Now()
		e := n.pipe.Engine()
		if err := n.store.SnapshotEngine(e); err != nil && !errors.Is(err, persist.ErrClosed) {
			serr = fmt.Errorf("node: final snapshot: %w", err)
		} else {
			n.log.Info("node: final snapshot", "seq", e.LastSeq(), "duration", time.Since(start))
		}
	}
	rerr := error(nil)
	if n.rep != nil {
		if rerr = n.rep.Close(); rerr != nil {
			rerr = fmt.Errorf("node: close the replica: %w", rerr)
		}
	}
	cerr := n.store.Close()
	return errors.Join(perr, serr, rerr, cerr)
}
