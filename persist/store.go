package persist

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/engine"
)

// Options configures a Store.
type Options struct {
	// FS is the filesystem Pebble uses. Default vfs.Default (the OS); tests
	// use vfs.NewCrashableMem().
	FS vfs.FS
	// NoSync commits without fsync. UNSAFE: a machine crash or power loss
	// can lose commands that were already acknowledged. For benchmarks only.
	NoSync bool
	// RetainSnapshots is how many snapshots to keep; the journal is kept
	// from the oldest of them on. Default 2.
	RetainSnapshots int
	// Logger receives the store's and Pebble's messages. Default
	// slog.Default().
	Logger *slog.Logger
	// MemTableSize is the size of Pebble's memtables; a journal of small
	// records fills 64 MiB in about ten seconds at 100 k commands/s, so
	// flushes are rare. Up to four may be in memory. Default 64 MiB.
	MemTableSize uint64
	// ReadOnly opens an existing store for inspection: nothing is created
	// or written.
	ReadOnly bool
	// HighWaterInterval is how often the high-water mark (the highest
	// durable sequence number, kept outside the write-ahead log) is
	// written while commands become durable, and HighWaterSync how often
	// it is also synced. Recovery refuses a journal that ends before the
	// mark. Commands acknowledged within the last interval before a
	// process crash that also damaged the newest WAL (or within the last
	// sync interval before a power loss that did) cannot be told from
	// commands never sent. A sync of its own every few milliseconds would
	// queue the journal's fsyncs behind it (it doubled the one-in-flight
	// p99), so the mark is synced rarely; it is only ever behind the
	// journal, so a lost mark write weakens the check and never fails a
	// good journal. Defaults 10 ms and 1 s.
	HighWaterInterval time.Duration
	HighWaterSync     time.Duration
	// Replicated marks the journal of a replica (package replica): it
	// holds commands a raft log made durable first, is written without
	// sync, and a crash may cost it a tail the raft log gives back at the
	// next start. It keeps no high-water mark (the raft log is the check).
	Replicated bool
}

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.RetainSnapshots == 0 {
		o.RetainSnapshots = 2
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HighWaterInterval == 0 {
		o.HighWaterInterval = 10 * time.Millisecond
	}
	if o.HighWaterSync == 0 {
		o.HighWaterSync = time.Second
	}
}

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	if o.RetainSnapshots < 1 {
		errs = append(errs, fmt.Errorf("persist: retain_snapshots %d must be at least 1", o.RetainSnapshots))
	}
	if o.HighWaterInterval < 0 || o.HighWaterSync < 0 {
		errs = append(errs, fmt.Errorf("persist: high-water intervals %v and %v must be positive", o.HighWaterInterval, o.HighWaterSync))
	}
	return errors.Join(errs...)
}

// Store is the journal and snapshots of one engine in one Pebble database.
//
// Write and Commit are called by one goroutine at a time, in order (the
// pipeline's journal stage, or its loop when the stage is idle), Await by
// one (its release stage);
// WriteSnapshot and the read methods may be called from others.
type Store struct {
	db   *pebble.DB
	opts Options
	log  *slog.Logger

	dir      string
	batch    *pebble.Batch      // staged journal records; owned by the Write/Commit goroutine
	staged   engine.Seq         // the last sequence number staged in batch
	inflight chan commit        // committed, awaiting their sync (nil batch: an empty Commit)
	spare    chan *pebble.Batch // synced, for reuse
	buf      []byte
	kbuf     []byte

	mu       sync.Mutex            // serialises snapshot writes and pruning
	failed   atomic.Pointer[error] // set once a write fails; every later write returns it
	failedCh chan struct{}         // closed with failed
	bgErrs   atomic.Int64          // Pebble background errors seen
	bgLogged atomic.Int64          // unix nanoseconds of the last one logged
	bgLast   atomic.Value          // the text of the last one (a string)

	// The high-water mark (highwater.go): mark is what the file held at
	// Open, durable the highest sequence number whose commit has been
	// awaited; the hw goroutine writes durable to the file.
	hw      *highWater
	mark    engine.Seq
	durable atomic.Uint64
	hwStop  chan struct{}
	hwDone  chan struct{}
}

// commit is one Commit awaiting its sync.
type commit struct {
	b    *pebble.Batch
	last engine.Seq
}

// pebbleLogger forwards Pebble's messages to slog (info at debug level:
// Pebble is chatty about compactions).
type pebbleLogger struct {
	l *slog.Logger
	s *Store
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf fails the store, then panics with a pebbleFatal, which guard
// turns into an error where the store called Pebble. Pebble calls it when
// a commit fails (a WAL write or sync error: its commit pipeline cannot
// continue, and neither can we) and on broken internal invariants.
// Detected data corruption does not come here: the store's
// DataCorruption listener fails the store and the read returns an error.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("pebble fatal: " + msg)
	p.s.fail(pebbleFatal(msg))
	panic(pebbleFatal(msg))
}

type pebbleFatal string

func (f pebbleFatal) Error() string { return string(f) }

// guard runs fn, turning a Pebble fatal error raised inside it into an
// error.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(pebbleFatal)
			if !ok {
				panic(r)
			}
			err = f
		}
	}()
	return fn()
}

// ErrNotStore reports a data directory that holds files but is not a
// valid store (for example, its Pebble MANIFEST is gone).
var ErrNotStore = errors.New("persist: not a valid store")

// ErrInUse reports a data directory another process has open (its LOCK
// file is held): a running matchd, most often.
var ErrInUse = errors.New("persist: the data directory is in use")

// emptyDir reports whether dir is absent or holds nothing a store could
// have written (Pebble's LOCK file alone is left by an open that never
// created anything).
func emptyDir(fs vfs.FS, dir string) (bool, error) {
	names, err := fs.List(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("persist: %s: %w", dir, err)
	}
	for _, n := range names {
		if n != "LOCK" {
			return false, nil
		}
	}
	return true, nil
}

// Open opens (or creates) the store in dir. Only an absent or empty
// directory becomes a new store: one that holds files but is not a valid
// store (its MANIFEST is gone, or it is some other directory) is refused
// with ErrNotStore, and one whose store holds no snapshot with ErrCorrupt.
// On a new store Open writes the snapshot at sequence 0: a fresh engine
// built from cfg. On an existing store cfg is not used; the engine's
// configuration lives in its snapshots.
func Open(dir string, cfg engine.Config, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	fresh, err := emptyDir(opts.FS, dir)
	if err != nil {
		return nil, err
	}
	if fresh && opts.ReadOnly {
		return nil, fmt.Errorf("persist: open %s read-only: %w: the directory is absent or empty", dir, ErrNotStore)
	}
	s := &Store{opts: opts, log: opts.Logger, dir: dir, failedCh: make(chan struct{}),
		inflight: make(chan commit, maxInFlightCommits), spare: make(chan *pebble.Batch, maxInFlightCommits),
		hwStop: make(chan struct{}), hwDone: make(chan struct{})}
	po := &pebble.Options{FS: opts.FS, Logger: pebbleLogger{opts.Logger, s}, ReadOnly: opts.ReadOnly,
		ErrorIfNotExists: !fresh}
	po.EventListener = &pebble.EventListener{
		DataCorruption:  s.onCorruption,
		BackgroundError: s.onBackgroundError,
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			s.log.Warn("persist: pebble stalls writes", "reason", info.Reason)
		},
		WriteStallEnd: func() { s.log.Info("persist: pebble write stall ended") },
	}
	// Journal records are written once and read back only on recovery:
	// compressing them costs the matching loop's CPU for little gain (they
	// are small integers and checksums, not text).
	po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	// The journal is written once, in key order, and read only on
	// recovery. Large memtables make flushes rare (each one is a burst of
	// CPU the matching loop's core shares), and generous L0 thresholds
	// keep Pebble from compacting or stalling writes for an append-only
	// key space whose files never overlap.
	po.MemTableSize = opts.MemTableSize
	po.MemTableStopWritesThreshold = 4
	po.L0CompactionThreshold = 8
	po.L0StopWritesThreshold = 1000
	var db *pebble.DB
	err = guard(func() (err error) { db, err = pebble.Open(dir, po); return err })
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) ||
			strings.Contains(err.Error(), "resource temporarily unavailable") || strings.Contains(err.Error(), "lock held by") {
			return nil, fmt.Errorf("%w: %s is open in another process (is a matchd running on it? stop it first): %w", ErrInUse, dir, err)
		}
		if !fresh {
			return nil, fmt.Errorf("persist: %s holds files but is not a valid store (%w: %w); refusing to start: "+
				"restore the directory, or move it away to start a new, empty store", dir, ErrNotStore, err)
		}
		return nil, fmt.Errorf("persist: open %s: %w", dir, err)
	}
	s.db, s.batch = db, db.NewBatch()
	if err := s.openRest(dir, cfg, fresh); err != nil {
		db.Close()
		return nil, err
	}
	if !opts.ReadOnly && !opts.Replicated {
		go s.highWaterLoop()
	} else {
		close(s.hwDone)
	}
	return s, nil
}

// openRest checks what Open found, creates a new store's first snapshot
// and opens the high-water mark.
func (s *Store) openRest(dir string, cfg engine.Config, fresh bool) error {
	snaps, err := s.Snapshots()
	if err != nil {
		return err
	}
	mark, gen, hasMark, err := readHighWater(s.opts.FS, dir)
	if err != nil {
		return err
	}
	if s.opts.Replicated {
		mark, hasMark = 0, true // a tail the raft log holds is not lost
	}
	s.mark = mark
	if len(snaps) == 0 {
		last, err := s.LastSeq()
		if err != nil {
			return err
		}
		switch {
		case last != 0:
			return fmt.Errorf("%w: journal reaches seq %d but there is no snapshot", ErrCorrupt, last)
		case mark != 0:
			return fmt.Errorf("%w: %s holds no snapshot and no journal, but commands up to seq %d were acknowledged",
				ErrLost, dir, mark)
		case !fresh || s.opts.ReadOnly:
			return fmt.Errorf("%w: %s holds a Pebble database with no snapshot: not a matchd data directory",
				ErrNotStore, dir)
		}
		e, err := engine.New(cfg)
		if err != nil {
			return err
		}
		if err := s.WriteSnapshot(0, e.Snapshot(nil)); err != nil {
			return err
		}
		s.log.Info("persist: new store", "dir", dir)
	}
	if s.opts.ReadOnly {
		return nil
	}
	if !hasMark && !fresh {
		s.log.Warn("persist: no high-water mark in the data directory (written by older versions): "+
			"this recovery cannot check that no acknowledged command is missing", "file", highWaterFile)
	}
	if s.opts.Replicated {
		return nil
	}
	s.hw, err = openHighWater(s.opts.FS, dir, mark, gen, !s.opts.NoSync)
	return err
}

// onCorruption is Pebble's DataCorruption event: the store fails (the
// read that found it returns an error too).
func (s *Store) onCorruption(info pebble.DataCorruptionInfo) {
	s.fail(fmt.Errorf("%w: pebble found corrupt data: %s", ErrCorrupt, info.String()))
}

// onBackgroundError is Pebble's BackgroundError event (a flush or
// compaction failed; Pebble retries). A full disk fails the store: no
// flush can succeed, memtables fill and writes would stall with nothing
// said. Others are counted and logged at most once a second.
func (s *Store) onBackgroundError(err error) {
	s.bgErrs.Add(1)
	s.bgLast.Store(err.Error())
	// By errno, or by its text: some of Pebble's paths wrap the error
	// without keeping the errno in the chain.
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || strings.Contains(err.Error(), "no space left on device") {
		s.fail(fmt.Errorf("disk full: %w", err))
		return
	}
	now := time.Now().UnixNano()
	last := s.bgLogged.Load()
	if now-last >= int64(time.Second) && s.bgLogged.CompareAndSwap(last, now) {
		s.log.Error("persist: pebble background error (retried)", "err", err, "total", s.bgErrs.Load())
	}
}

// BackgroundErrors is how many background errors Pebble reported.
func (s *Store) BackgroundErrors() int64 { return s.bgErrs.Load() }

// highWaterLoop writes the durable sequence number to the high-water mark
// every HighWaterInterval while it moves, syncing it every HighWaterSync,
// and a last time, synced, at Close.
func (s *Store) highWaterLoop() {
	defer close(s.hwDone)
	t := time.NewTicker(s.opts.HighWaterInterval)
	defer t.Stop()
	lastSync := time.Now()
	unsynced := false
	for {
		stop := false
		select {
		case <-s.hwStop:
			stop = true
		case <-t.C:
		}
		d := engine.Seq(s.durable.Load())
		if (d > s.hw.current() || unsynced) && s.Err() == nil {
			sync := stop || time.Since(lastSync) >= s.opts.HighWaterSync
			if err := s.hw.write(max(d, s.hw.current()), sync); err != nil {
				s.fail(err)
			}
			unsynced = !sync
			if sync {
				lastSync = time.Now()
			}
		}
		if stop {
			return
		}
	}
}

// Close closes the database. Staged but uncommitted records are dropped;
// call it only after every Commit has been awaited.
func (s *Store) Close() error {
	select {
	case <-s.hwStop:
		return ErrClosed
	default:
	}
	close(s.hwStop)
	<-s.hwDone
	if s.hw != nil {
		s.hw.f.Close()
	}
	s.batch.Close()
	for {
		select {
		case b := <-s.spare:
			b.Close()
		default:
			return s.db.Close()
		}
	}
}

// Write stages the journal records of cmds, whose sequence numbers must
// be consecutive, in groups of at most maxGroup records under one key
// each. They are not durable until the Commit that follows has been
// awaited (or Sync returns nil).
//
// One key per group rather than per command: Pebble's cost is mostly per
// key (the memtable's skiplist, and again when a memtable is flushed), so
// a batch of a thousand commands costs it about what one did.
func (s *Store) Write(cmds []engine.Command) error {
	if err := s.Err(); err != nil {
		return err
	}
	for i := 1; i < len(cmds); i++ {
		if cmds[i].Seq != cmds[i-1].Seq+1 {
			return fmt.Errorf("persist: write: seq %d follows %d in one write; nothing staged", cmds[i].Seq, cmds[i-1].Seq)
		}
	}
	for len(cmds) > 0 {
		g := cmds[:min(len(cmds), maxGroup)]
		cmds = cmds[len(g):]
		s.buf = s.buf[:0]
		for i := range g {
			s.buf = AppendRecord(s.buf, &g[i])
		}
		last := g[len(g)-1].Seq
		s.kbuf = appendKey(s.kbuf[:0], prefixJournal, last)
		if err := s.batch.Set(s.kbuf, s.buf, nil); err != nil {
			return s.fail(err)
		}
		s.staged = last
	}
	return nil
}

// Commit hands everything staged to Pebble's write-ahead log and starts
// its fsync (unless Options.NoSync) without waiting for it, so that the
// next Write and Commit can go ahead while the disk syncs: Pebble's log
// writer then syncs everything that arrived during one sync in the next
// (ApplyNoSyncWait). Await reports when it is durable. Write and Commit
// are called by one goroutine at a time, Await by one (possibly another); at most
// maxInFlightCommits Commits may await.
func (s *Store) Commit() error {
	if err := s.Err(); err != nil {
		return err
	}
	b := s.batch
	if b.Empty() {
		s.inflight <- commit{}
		return nil
	}
	err := guard(func() error {
		if s.opts.NoSync {
			return b.Commit(pebble.NoSync)
		}
		return s.db.ApplyNoSyncWait(b, pebble.Sync)
	})
	if err != nil {
		return s.fail(err)
	}
	select {
	case s.batch = <-s.spare:
	default:
		s.batch = s.db.NewBatch()
	}
	s.inflight <- commit{b, s.staged}
	return nil
}

// maxInFlightCommits bounds the Commits not yet awaited.
const maxInFlightCommits = 64

// Await blocks until the oldest Commit not yet awaited is durable. After
// an error the store is failed: every later call returns ErrFailed, and
// the process should stop (Pebble considers a failed commit
// unrecoverable).
func (s *Store) Await() error {
	c := <-s.inflight
	b := c.b
	if b == nil {
		return s.Err()
	}
	if !s.opts.NoSync {
		if err := b.SyncWait(); err != nil {
			return s.fail(err)
		}
	}
	if err := s.Err(); err != nil {
		return err // failed while it synced (corruption, a full disk): not acknowledged
	}
	s.durable.Store(uint64(c.last))
	b.Reset()
	select {
	case s.spare <- b:
	default:
		b.Close()
	}
	return s.Err()
}

// Sync is Commit then Await: when it returns nil every staged command is
// durable. For callers with a single goroutine (tools, tests).
func (s *Store) Sync() error {
	if err := s.Commit(); err != nil {
		return err
	}
	return s.Await()
}

// Err returns the store's failure, if a write failed.
func (s *Store) Err() error {
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

func (s *Store) fail(err error) error {
	e := fmt.Errorf("%w: %w", ErrFailed, err)
	if s.failed.CompareAndSwap(nil, &e) {
		s.log.Error("persist: the store failed; no further commands will be acknowledged", "err", err.Error())
		close(s.failedCh)
	}
	return s.Err()
}

// Failed is closed when the store fails: a write, a sync or a read found
// an error (Err says which). Nothing is acknowledged after it.
func (s *Store) Failed() <-chan struct{} { return s.failedCh }

// WriteSnapshot stores an engine snapshot taken after command seq, durably,
// then prunes snapshots beyond the retained number and the journal records
// the oldest retained snapshot covers (the journal is kept from there so
// that recovery can fall back to that snapshot if a newer one is damaged).
func (s *Store) WriteSnapshot(seq engine.Seq, snap []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Chunks first, each its own small commit so that journal commits can
	// go between them; then the header, synced, which makes the chunks
	// durable too (the WAL is sequential). A crash before the header leaves
	// chunks without a header: never read, and pruned later.
	h := snapshotHeader{seq: seq, length: uint64(len(snap)), crc: crc32.Checksum(snap, castagnoli)}
	for off := 0; off < len(snap) || h.chunks == 0; off += snapshotChunk {
		part := snap[off:min(off+snapshotChunk, len(snap))]
		if err := s.db.Set(chunkKey(seq, h.chunks), part, pebble.NoSync); err != nil {
			return fmt.Errorf("persist: write snapshot %d: %w", seq, err)
		}
		h.chunks++
	}
	if err := s.db.Set(key(prefixSnapshot, seq), h.append(nil), pebble.Sync); err != nil {
		return fmt.Errorf("persist: write snapshot %d: %w", seq, err)
	}
	snaps, err := s.Snapshots()
	if err != nil {
		return err
	}
	if len(snaps) <= s.opts.RetainSnapshots {
		return nil
	}
	oldest := snaps[len(snaps)-s.opts.RetainSnapshots].Seq
	for _, sn := range snaps[:len(snaps)-s.opts.RetainSnapshots] {
		if err := s.db.Delete(key(prefixSnapshot, sn.Seq), pebble.NoSync); err != nil {
			return fmt.Errorf("persist: prune snapshot %d: %w", sn.Seq, err)
		}
	}
	if err := s.pruneKeys(key(prefixChunk, 0), key(prefixChunk, oldest)); err != nil {
		return err
	}
	return s.pruneJournal(oldest)
}

// pruneKeys deletes every key in [lo, hi) with point deletions, committed
// in batches of at most pruneBatch keys.
func (s *Store) pruneKeys(lo, hi []byte) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	const pruneBatch = 16 << 10
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		b.Delete(it.Key(), nil)
		if n++; n == pruneBatch {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Close()
			b, n = s.db.NewBatch(), 0
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// pruneJournal deletes the journal records up to and including seq, with
// point deletions.
//
// Not DeleteRange: under sustained writes with large batches, pruning with
// a range tombstone here made Pebble v2.1.7 lose an sstable that a
// concurrent iterator still needed ("backing file ... no such file"; the
// same symptom as cockroachdb/cockroach#157877). Point deletions avoid the
// delete-only compactions range tombstones enable.
//
// It deletes the groups that end at or before seq; a group that straddles
// seq is kept whole (replay skips what it holds before the snapshot).
func (s *Store) pruneJournal(seq engine.Seq) error {
	if err := s.pruneKeys(key(prefixJournal, 0), key(prefixJournal, seq+1)); err != nil {
		return fmt.Errorf("persist: prune journal: %w", err)
	}
	return nil
}

// SnapshotEngine stores a snapshot of e at its last sequence number. Use
// it on graceful shutdown, once the pipeline is closed and e is quiet, so
// that the next start replays nothing.
func (s *Store) SnapshotEngine(e *engine.Engine) error {
	if snaps, err := s.Snapshots(); err == nil && len(snaps) > 0 && snaps[len(snaps)-1].Seq == e.LastSeq() {
		return nil // already there
	}
	return s.WriteSnapshot(e.LastSeq(), e.Snapshot(nil))
}

// SnapshotInfo describes a stored snapshot.
type SnapshotInfo struct {
	Seq  engine.Seq
	Size int // bytes of engine state; -1 if the header does not decode
}

// Snapshots lists the stored snapshots, oldest first.
func (s *Store) Snapshots() ([]SnapshotInfo, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixSnapshot}, UpperBound: []byte{prefixSnapshot + 1},
	})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []SnapshotInfo
	for it.First(); it.Valid(); it.Next() {
		info := SnapshotInfo{Seq: seqOfKey(it.Key()), Size: -1}
		if h, err := decodeSnapshotHeader(it.Value()); err == nil {
			info.Size = int(h.length)
		}
		out = append(out, info)
	}
	return out, it.Error()
}

// LastSeq returns the sequence number of the last journal record, or 0.
func (s *Store) LastSeq() (engine.Seq, error) { return s.journalEdge(false) }

// FirstSeq returns the sequence number of the first journal record, or 0.
func (s *Store) FirstSeq() (engine.Seq, error) { return s.journalEdge(true) }

func (s *Store) journalEdge(first bool) (engine.Seq, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixJournal}, UpperBound: []byte{prefixJournal + 1},
	})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	switch {
	case !first && it.Last():
		return seqOfKey(it.Key()), nil
	case first && it.First():
		f, _, _ := s.groupStart(seqOfKey(it.Key()), it.Value())
		return f, nil
	}
	return 0, it.Error()
}

// Replay calls fn for every journal record with a sequence number in
// [from, to] (to == 0: to the end), in order. It stops at the first error,
// and reports a missing sequence number or an undecodable record as
// corruption naming its sequence number. The command passed to fn is only
// valid during the call.
func (s *Store) Replay(ctx context.Context, from, to engine.Seq, fn func(c *engine.Command) error) error {
	return guard(func() error { return s.replay(ctx, from, to, fn) })
}

func (s *Store) replay(ctx context.Context, from, to engine.Seq, fn func(c *engine.Command) error) error {
	// The group holding from is the first whose key (its last record's
	// sequence number) is at least from.
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: key(prefixJournal, from), UpperBound: []byte{prefixJournal + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	var c engine.Command
	expect := from
	for it.First(); it.Valid() && (to == 0 || expect <= to); it.Next() {
		k, v := seqOfKey(it.Key()), it.Value()
		seq, n, _ := s.groupStart(k, v)
		for i := 0; len(v) > 0 && (to == 0 || seq <= to); i, seq = i+1, seq+1 {
			l := recordLen(v[0])
			if i == n { // where the group stops splitting: the rest is one record at most if it is that short
				_, err := groupShape(v)
				return &RecordError{Seq: seq, Err: err, Last: len(v) <= recordV3Size && !it.Next()}
			}
			rec := v[:l]
			v = v[l:]
			if seq < expect {
				if seq >= from {
					return fmt.Errorf("%w: the journal holds seq %d twice", ErrCorrupt, seq)
				}
				continue // before from, in the first group
			}
			if seq != expect {
				return fmt.Errorf("%w: journal has no record for seq %d (next is %d)", ErrCorrupt, expect, seq)
			}
			if err := DecodeRecord(rec, &c); err != nil {
				return &RecordError{Seq: seq, Err: err, Last: len(v) == 0 && !it.Next()}
			}
			if c.Seq != seq {
				return fmt.Errorf("%w: record %d of the group under key %d says seq %d", ErrCorrupt, seq, k, c.Seq)
			}
			if err := fn(&c); err != nil {
				return err
			}
			expect++
			if expect&0xffff == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return it.Error()
}

// groupStart returns the sequence number of the first record of the group
// v under key k, and how many whole records it holds from the front. ok is
// false if it does not split into whole records; then the first record's
// own sequence number says where it begins, or if that record is the
// damaged one, the group before it does.
func (s *Store) groupStart(k engine.Seq, v []byte) (first engine.Seq, n int, ok bool) {
	if first, n, ok = groupFirst(k, v); ok {
		return first, n, true
	}
	var c engine.Command
	if n > 0 && DecodeRecord(v[:recordLen(v[0])], &c) == nil {
		return c.Seq, n, false
	}
	return s.groupEnd(k) + 1, n, false
}

// groupEnd returns the key of the journal group before the one under key
// k (its last sequence number), or 0.
func (s *Store) groupEnd(k engine.Seq) engine.Seq {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixJournal}, UpperBound: key(prefixJournal, k)})
	if err != nil {
		return 0
	}
	defer it.Close()
	if it.Last() {
		return seqOfKey(it.Key())
	}
	return 0
}

// RecordError is a journal record that does not decode. Last says whether
// it is the final record of the journal. Either way it is corruption: a
// committed Pebble batch is atomic, so the last record cannot be torn.
type RecordError struct {
	Seq  engine.Seq
	Err  error
	Last bool
}

func (e *RecordError) Error() string {
	where := "in the middle of the journal"
	if e.Last {
		where = "at the end of the journal"
	}
	return fmt.Sprintf("persist: record %d %s: %v", e.Seq, where, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// RecoveryStats describes one recovery.
type RecoveryStats struct {
	SnapshotSeq      engine.Seq // the snapshot recovery started from
	SkippedSnapshots int        // newer snapshots that did not decode
	Replayed         int        // journal records applied after it
	LastSeq          engine.Seq
	HighWater        engine.Seq // the high-water mark recovery checked against
	Duration         time.Duration
}

// Recover rebuilds the engine: the newest snapshot that decodes, then every
// journal record after it. It refuses (naming the sequence number) a
// record that does not decode, a hole, and a journal that ends before the
// high-water mark; see the package comment.
func (s *Store) Recover() (*engine.Engine, RecoveryStats, error) {
	return s.RecoverWith(RecoverOptions{})
}

// RecoverOptions changes what RecoverWith does.
type RecoverOptions struct {
	// FromOldest starts from the oldest readable snapshot rather than the
	// newest, so that Observe sees every command the journal still holds
	// (state derived from events, such as the sessions' streams, is
	// rebuilt from there).
	FromOldest bool
	// Observe, if set, is called with every command replayed and its
	// events (valid only during the call).
	Observe func(c *engine.Command, evs []engine.Event)
}

// RecoverWith is Recover with options.
func (s *Store) RecoverWith(o RecoverOptions) (*engine.Engine, RecoveryStats, error) {
	start := time.Now()
	var st RecoveryStats
	snaps, err := s.Snapshots()
	if err != nil {
		return nil, st, err
	}
	if o.FromOldest {
		slices.Reverse(snaps)
	}
	e, skipped, err := s.loadFirstReadable(snaps)
	st.SkippedSnapshots = skipped
	if err != nil {
		return nil, st, err
	}
	st.SnapshotSeq = e.LastSeq()
	// Reading and decoding the journal runs on its own goroutine, a chunk
	// ahead of applying, so the two overlap.
	const chunk = 4096
	chunks := make(chan []engine.Command, 4)
	free := make(chan []engine.Command, 6)
	for range cap(free) {
		free <- make([]engine.Command, 0, chunk)
	}
	var readErr error
	go func() {
		defer close(chunks)
		cur := <-free
		readErr = s.Replay(context.Background(), st.SnapshotSeq+1, 0, func(c *engine.Command) error {
			cur = append(cur, *c)
			if len(cur) == chunk {
				chunks <- cur
				cur = (<-free)[:0]
			}
			return nil
		})
		if len(cur) > 0 {
			chunks <- cur
		}
	}()
	out := make([]engine.Event, 0, 1024)
	for cmds := range chunks {
		out = applyChunk(e, cmds, out, o.Observe)
		st.Replayed += len(cmds)
		free <- cmds[:0]
	}
	err = readErr
	if err != nil {
		var re *RecordError
		if errors.As(err, &re) && re.Last {
			err = fmt.Errorf("%w: a committed batch is written whole, so this is damage to an acknowledged command, "+
				"not a torn write; to start without record %d and any after it (they are lost): "+
				"matchctl journal truncate --data %s --from %d --confirm", err, re.Seq, s.dir, re.Seq)
		}
		return nil, st, fmt.Errorf("persist: recovery refused: %w", err)
	}
	if last := e.LastSeq(); last < s.mark {
		return nil, st, fmt.Errorf("persist: recovery refused: %w: the journal ends at seq %d but commands up to seq %d "+
			"were durable and may have been acknowledged (high-water mark in %s): %d missing; the newest write-ahead log "+
			"lost its tail. Restore the directory from a backup; to start without them (they are lost): "+
			"matchctl journal truncate --data %s --from %d --confirm",
			ErrLost, last, s.mark, highWaterFile, s.mark-last, s.dir, last+1)
	}
	st.LastSeq = e.LastSeq()
	st.HighWater = s.mark
	st.Duration = time.Since(start)
	s.log.Info("persist: recovered", "snapshot_seq", st.SnapshotSeq, "replayed", st.Replayed,
		"last_seq", st.LastSeq, "high_water", s.mark, "duration", st.Duration)
	if s.durable.Load() < uint64(st.LastSeq) {
		s.durable.Store(uint64(st.LastSeq))
	}
	return e, st, nil
}

// applyChunk applies cmds to e in order, prefetching ahead within them
// (engine.PrefetchAhead), and calls observe (if set) with each command's
// events. It returns out, the event buffer, for reuse.
func applyChunk(e *engine.Engine, cmds []engine.Command, out []engine.Event, observe func(*engine.Command, []engine.Event)) []engine.Event {
	for i := range cmds {
		e.PrefetchAhead(cmds, i)
		out = e.Apply(&cmds[i], out[:0])
		if observe != nil {
			observe(&cmds[i], out)
		}
	}
	return out
}

// loadFirstReadable returns the engine of the last of snaps that loads,
// logging and counting those after it that do not.
func (s *Store) loadFirstReadable(snaps []SnapshotInfo) (*engine.Engine, int, error) {
	skipped := 0
	for i := len(snaps) - 1; i >= 0; i-- {
		e, err := s.LoadSnapshot(snaps[i].Seq)
		if err == nil {
			return e, skipped, nil
		}
		s.log.Warn("persist: skipping unreadable snapshot", "seq", snaps[i].Seq, "err", err)
		skipped++
	}
	return nil, skipped, fmt.Errorf("%w: no readable snapshot (of %d)", ErrCorrupt, len(snaps))
}

// newestEngine returns the engine of the newest readable snapshot.
func (s *Store) newestEngine() (*engine.Engine, int, error) {
	snaps, err := s.Snapshots()
	if err != nil {
		return nil, 0, err
	}
	return s.loadFirstReadable(snaps)
}

// HighWater returns the high-water mark found at Open: every command up
// to it was durable.
func (s *Store) HighWater() engine.Seq { return s.mark }

// TruncateJournal is the operator's repair: it deletes journal record
// from and every record after it, and lowers the high-water mark to
// from-1, so that a store Recover refused (a damaged last record, a lost
// WAL tail) starts without them. The commands it removes are lost; it
// logs what it did. It refuses to cut below the newest snapshot.
func (s *Store) TruncateJournal(from engine.Seq) (removed int, err error) {
	if s.opts.ReadOnly {
		return 0, errors.New("persist: truncate: the store is open read-only")
	}
	if from == 0 {
		return 0, errors.New("persist: truncate: from must be at least 1")
	}
	snaps, err := s.Snapshots()
	if err != nil {
		return 0, err
	}
	if n := len(snaps); n > 0 && snaps[n-1].Seq >= from {
		return 0, fmt.Errorf("persist: truncate: snapshot %d covers seq %d; refusing", snaps[n-1].Seq, from)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: key(prefixJournal, from), UpperBound: []byte{prefixJournal + 1}})
	if err != nil {
		return 0, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for it.First(); it.Valid(); it.Next() {
		k, v := seqOfKey(it.Key()), it.Value()
		first, n, ok := s.groupStart(k, v)
		if first < from { // the group straddles from: keep its records before it
			keep := int(from - first)
			if keep > n {
				it.Close()
				return 0, fmt.Errorf("%w: truncate: the group under key %d does not split into records before seq %d; "+
					"truncate from an earlier seq", ErrCorrupt, k, from)
			}
			off := 0
			for range keep {
				off += recordLen(v[off])
			}
			b.Set(key(prefixJournal, from-1), v[:off], nil)
			n -= keep
		}
		b.Delete(it.Key(), nil)
		if !ok {
			n++ // the records it no longer splits into count as one
		}
		removed += n
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, err
	}
	// The mark is only ever raised by the running store; lower it here,
	// once the records are gone.
	if s.hw == nil {
		return removed, nil // a replica's journal keeps no mark
	}
	if err := s.hw.write(from-1, true); err != nil {
		return removed, err
	}
	s.mark = from - 1
	s.log.Warn("persist: journal truncated by the operator; these commands are lost",
		"from", from, "records_removed", removed, "high_water", from-1)
	return removed, nil
}

// LoadSnapshot returns the engine stored in the snapshot at seq, checking
// its header, its chunks and both checksums.
func (s *Store) LoadSnapshot(seq engine.Seq) (*engine.Engine, error) {
	data, err := s.SnapshotData(seq)
	if err != nil {
		return nil, err
	}
	e, err := engine.Restore(data)
	if err != nil {
		return nil, err
	}
	if e.LastSeq() != seq {
		return nil, fmt.Errorf("%w: snapshot %d holds engine at seq %d", ErrCorrupt, seq, e.LastSeq())
	}
	return e, nil
}

// ResetTo replaces everything the store holds with one snapshot: the
// engine's state after seq (as engine.Snapshot encodes it, checked here).
// A replica that fell behind its leader's log retention takes the
// leader's snapshot this way, before it recovers. The journal and every
// other snapshot are deleted.
func (s *Store) ResetTo(seq engine.Seq, snap []byte) error {
	e, err := engine.Restore(snap)
	if err != nil {
		return fmt.Errorf("persist: reset to snapshot %d: %w", seq, err)
	}
	if e.LastSeq() != seq {
		return fmt.Errorf("persist: reset: the snapshot holds the engine at seq %d, not %d", e.LastSeq(), seq)
	}
	if last, err := s.LastSeq(); err != nil {
		return err
	} else if err := s.pruneJournal(last); err != nil {
		return err
	}
	snaps, err := s.Snapshots()
	if err != nil {
		return err
	}
	for _, sn := range snaps {
		if err := s.db.Delete(key(prefixSnapshot, sn.Seq), pebble.NoSync); err != nil {
			return err
		}
	}
	if err := s.pruneKeys(key(prefixChunk, 0), key(prefixChunk+1, 0)); err != nil {
		return err
	}
	if err := s.WriteSnapshot(seq, snap); err != nil {
		return err
	}
	s.log.Warn("persist: the store was reset to a snapshot (a replica behind its leader's log)", "seq", seq, "bytes", len(snap))
	return nil
}

// SnapshotData returns the encoded engine state of the snapshot at seq,
// checking its header, its chunks and both checksums.
func (s *Store) SnapshotData(seq engine.Seq) ([]byte, error) {
	v, closer, err := s.db.Get(key(prefixSnapshot, seq))
	if err != nil {
		return nil, fmt.Errorf("persist: snapshot %d: %w", seq, err)
	}
	h, err := decodeSnapshotHeader(v)
	closer.Close()
	if err != nil {
		return nil, err
	}
	if h.seq != seq {
		return nil, fmt.Errorf("%w: snapshot under key %d says seq %d", ErrCorrupt, seq, h.seq)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: chunkKey(seq, 0), UpperBound: key(prefixChunk, seq+1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	data := make([]byte, 0, h.length)
	n := uint32(0)
	for it.First(); it.Valid(); it.Next() {
		data = append(data, it.Value()...)
		n++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if n != h.chunks || uint64(len(data)) != h.length || crc32.Checksum(data, castagnoli) != h.crc {
		return nil, fmt.Errorf("%w: snapshot %d: %d chunks, %d bytes, or checksum, disagree with its header",
			ErrCorrupt, seq, n, len(data))
	}
	return data, nil
}

// Metrics returns Pebble's metrics, for operators.
func (s *Store) Metrics() *pebble.Metrics { return s.db.Metrics() }
