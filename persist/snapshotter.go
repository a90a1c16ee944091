package persist

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matchd/matchd/engine"
)

// SnapshotterConfig configures a Snapshotter.
type SnapshotterConfig struct {
	// Every takes a snapshot once this many commands have become durable
	// since the last one. Default 1,000,000.
	Every engine.Seq
	// Interval takes a snapshot this often if anything new is durable.
	// Default 5 minutes.
	Interval time.Duration
	// Poll is how often the durable sequence is checked. Default 100 ms.
	Poll time.Duration
}

// EnsureDefaults fills in zero fields.
func (c *SnapshotterConfig) EnsureDefaults() {
	if c.Every == 0 {
		c.Every = 1_000_000
	}
	if c.Interval == 0 {
		c.Interval = 5 * time.Minute
	}
	if c.Poll == 0 {
		c.Poll = 100 * time.Millisecond
	}
}

// Snapshotter takes snapshots without pausing the matching loop. It owns a
// replica engine, which it catches up to the durable sequence by replaying
// the journal (the engine is deterministic, so the replica's state is the
// loop's state at that sequence), and snapshots the replica. The replica
// is built from the store, the way recovery builds the engine, when the
// first snapshot is due.
type Snapshotter struct {
	store   *Store
	replica *engine.Engine // nil until the first snapshot
	durable func() engine.Seq
	cfg     SnapshotterConfig

	stop    chan struct{}
	done    chan struct{}
	started bool
	mu      sync.Mutex // serialises Snapshot calls
	buf     []byte     // reused encoding buffer

	// Observations for metrics; written by the snapshotter only.
	lastSeq      atomic.Uint64 // sequence of the last snapshot
	lastBytes    atomic.Int64  // its size
	lastDuration atomic.Int64  // nanoseconds to catch up, encode and write it
	taken        atomic.Int64
	failures     atomic.Int64
}

// SnapshotterMetrics is a snapshot of a Snapshotter's counters.
type SnapshotterMetrics struct {
	LastSeq      engine.Seq    // sequence of the last snapshot taken (or recovered from)
	LastBytes    int64         // its size
	LastDuration time.Duration // time to catch up, encode and write it
	Taken        int64         // snapshots taken since start
	Failures     int64         // snapshots that failed
}

// Metrics returns the snapshotter's counters.
func (sn *Snapshotter) Metrics() SnapshotterMetrics {
	return SnapshotterMetrics{LastSeq: engine.Seq(sn.lastSeq.Load()), LastBytes: sn.lastBytes.Load(),
		LastDuration: time.Duration(sn.lastDuration.Load()), Taken: sn.taken.Load(), Failures: sn.failures.Load()}
}

// NewSnapshotter returns a snapshotter for s, whose engine e has just been
// recovered from it (before any new command); e's sequence counts as the
// last snapshot's for Every. The replica is not copied from e: encoding
// and restoring a large book (1.2 s for a million resting orders on the
// machine of docs/BENCHMARKS.md) would delay the start of service by as
// much. The first snapshot builds it from the store instead (its newest
// readable snapshot and the journal after it), off the order path.
func NewSnapshotter(s *Store, e *engine.Engine, durable func() engine.Seq, cfg SnapshotterConfig) (*Snapshotter, error) {
	cfg.EnsureDefaults()
	sn := &Snapshotter{store: s, durable: durable, cfg: cfg,
		stop: make(chan struct{}), done: make(chan struct{})}
	sn.lastSeq.Store(uint64(e.LastSeq()))
	return sn, nil
}

// Start runs the snapshotter in its own goroutine until Close.
func (sn *Snapshotter) Start() {
	sn.started = true
	go func() {
		defer close(sn.done)
		poll := time.NewTicker(sn.cfg.Poll)
		defer poll.Stop()
		lastTime := time.Now()
		for {
			select {
			case <-sn.stop:
				return
			case <-poll.C:
			}
			d, last := sn.durable(), engine.Seq(sn.lastSeq.Load())
			if d > last && (d-last >= sn.cfg.Every || time.Since(lastTime) >= sn.cfg.Interval) {
				if _, err := sn.Snapshot(); err != nil {
					sn.store.log.Error("persist: snapshot failed", "err", err)
				}
				lastTime = time.Now()
			}
		}
	}()
}

// Snapshot catches the replica up to the durable sequence and stores its
// snapshot, returning the sequence it covers.
func (sn *Snapshotter) Snapshot() (engine.Seq, error) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	start := time.Now()
	to := sn.durable()
	if sn.replica == nil {
		r, _, err := sn.store.newestEngine()
		if err != nil {
			sn.failures.Add(1)
			return 0, err
		}
		sn.replica = r
	}
	if from := sn.replica.LastSeq() + 1; to >= from {
		// In chunks, so that each command's cache misses are started
		// while the ones before it apply (engine.PrefetchAhead).
		out := make([]engine.Event, 0, 256)
		chunk := make([]engine.Command, 0, 1024)
		apply := func() {
			out = applyChunk(sn.replica, chunk, out, nil)
			chunk = chunk[:0]
		}
		err := sn.store.Replay(context.Background(), from, to, func(c *engine.Command) error {
			if chunk = append(chunk, *c); len(chunk) == cap(chunk) {
				apply()
			}
			return nil
		})
		if err != nil {
			sn.failures.Add(1)
			return 0, err
		}
		apply()
	}
	seq := sn.replica.LastSeq()
	data := sn.replica.Snapshot(sn.buf[:0])
	sn.buf = data
	if err := sn.store.WriteSnapshot(seq, data); err != nil {
		sn.failures.Add(1)
		return 0, err
	}
	d := time.Since(start)
	sn.lastSeq.Store(uint64(seq))
	sn.lastBytes.Store(int64(len(data)))
	sn.lastDuration.Store(int64(d))
	sn.taken.Add(1)
	sn.store.log.Info("persist: snapshot taken", "seq", seq, "bytes", len(data), "duration", d)
	return seq, nil
}

// Close stops the snapshotter's goroutine (it does not take a final
// snapshot: the owner of the live engine does that on graceful shutdown).
func (sn *Snapshotter) Close() {
	close(sn.stop)
	if sn.started {
		<-sn.done
	}
}
