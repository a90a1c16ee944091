package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/engine"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// logStore is the raft log of one replica: raft's MemoryStorage for
// reads, backed by a Pebble database of its own (a directory beside the
// node's journal) for durability. Everything raft hands over in a Ready
// is written here before the Ready's messages leave (save), and read
// back into memory at start (openLogStore).
//
// Keys: "h" the hard state; "s" the last snapshot (metadata and data);
// "e" and the 8-byte big-endian index, one entry each.
type logStore struct {
	*raft.MemoryStorage
	db   *pebble.DB
	sync bool
	// snapData returns the engine snapshot at seq from the node's store,
	// for a raft snapshot to send (see Snapshot).
	snapData func(seq engine.Seq) ([]byte, error)
	slowSync time.Duration // Config.SlowSync
	// stored is the hard state last written to the database; a newer one
	// that differs only in its commit index waits in memory for the next
	// write (see save).
	stored *pb.HardState
}

// A raft snapshot's data is the 8-byte big-endian sequence number of the
// engine snapshot it stands for, then, when it travels to a follower (or
// was received from the leader), that engine snapshot itself. The one a
// replica makes when it compacts its log holds the number only: the
// engine state is in the node's store (persist), read when raft needs
// to send it.

// snapshotSeq reads a raft snapshot's data.
func snapshotSeq(data []byte) (engine.Seq, []byte, bool) {
	if len(data) < 8 {
		return 0, nil, false
	}
	return engine.Seq(binary.BigEndian.Uint64(data)), data[8:], true
}

// Snapshot is raft's Storage.Snapshot with the engine state filled in.
func (ls *logStore) Snapshot() (*pb.Snapshot, error) {
	snap, err := ls.MemoryStorage.Snapshot()
	if err != nil || raft.IsEmptySnap(snap) {
		return snap, err
	}
	seq, state, ok := snapshotSeq(snap.GetData())
	if !ok || len(state) > 0 || ls.snapData == nil {
		return snap, nil
	}
	data, err := ls.snapData(seq)
	if err != nil {
		// Pruned meanwhile (a newer one replaces it at the next
		// compaction): raft asks again later.
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	full := proto.Clone(snap).(*pb.Snapshot)
	full.Data = append(binary.BigEndian.AppendUint64(nil, uint64(seq)), data...)
	return full, nil
}

// compactTo drops the entries up to index i (applied, and covered by the
// engine snapshot at seq in the node's store) from memory and disk,
// leaving a raft snapshot at i that names seq.
func (ls *logStore) compactTo(i uint64, cs *pb.ConfState, seq engine.Seq) error {
	snap, err := ls.CreateSnapshot(i, cs, binary.BigEndian.AppendUint64(nil, uint64(seq)))
	if err != nil {
		if errors.Is(err, raft.ErrSnapOutOfDate) {
			return nil
		}
		return err
	}
	if err := ls.Compact(i); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	v, err := proto.Marshal(snap)
	if err != nil {
		return err
	}
	b := ls.db.NewBatch()
	defer b.Close()
	b.Set(keySnapshot, v, nil)
	if err := ls.deleteFrom(b, 0, i+1); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

var (
	keyHardState = []byte("h")
	keySnapshot  = []byte("s")
)

func entryKey(i uint64) []byte {
	k := make([]byte, 9)
	k[0] = 'e'
	binary.BigEndian.PutUint64(k[1:], i)
	return k
}

// openLogStore opens (or creates) the raft log in dir and loads it.
// fresh reports that it held nothing (a new replica).
func openLogStore(dir string, fs vfs.FS, sync bool) (ls *logStore, fresh bool, err error) {
	if fs == nil {
		fs = vfs.Default
	}
	db, err := pebble.Open(dir, logOptions(fs))
	if err != nil {
		return nil, false, fmt.Errorf("replica: open the raft log in %s: %w", dir, err)
	}
	ls = &logStore{MemoryStorage: raft.NewMemoryStorage(), db: db, sync: sync}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	var snap pb.Snapshot
	hasSnap, err := getProto(db, keySnapshot, &snap)
	if err != nil {
		return nil, false, fmt.Errorf("replica: raft log in %s: snapshot: %w", dir, err)
	}
	if hasSnap {
		if err := ls.ApplySnapshot(&snap); err != nil {
			return nil, false, err
		}
	}
	var hs pb.HardState
	hasHS, err := getProto(db, keyHardState, &hs)
	if err != nil {
		return nil, false, fmt.Errorf("replica: raft log in %s: hard state: %w", dir, err)
	}
	if hasHS {
		if err := ls.SetHardState(&hs); err != nil {
			return nil, false, err
		}
		ls.stored = proto.Clone(&hs).(*pb.HardState)
	}
	fresh = !hasSnap && !hasHS
	first, _ := ls.FirstIndex()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: entryKey(first), UpperBound: []byte{'f'}})
	if err != nil {
		return nil, false, err
	}
	var ents []*pb.Entry
	for it.First(); it.Valid(); it.Next() {
		e := &pb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			it.Close()
			return nil, false, fmt.Errorf("replica: raft log in %s: entry %d: %w", dir, binary.BigEndian.Uint64(it.Key()[1:]), err)
		}
		ents = append(ents, e)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, false, err
	}
	if len(ents) > 0 {
		fresh = false
		if err := ls.Append(ents); err != nil {
			return nil, false, fmt.Errorf("replica: raft log in %s: %w", dir, err)
		}
	}
	return ls, fresh, nil
}

// logOptions are the raft log's Pebble options. The log is appended in
// index order and deleted from the front once a snapshot covers it, read
// back only at start: like the node's journal (persist.Open) it is not
// compressed (entries are small integers, and compressing them cost the
// replica's CPU), its memtables are large (Pebble's default 4 MiB made a
// flush every few thousand commands, and flushing and compacting the log
// took a fifth of every replica's CPU under load) and L0 may hold many
// files before a compaction: the key space is append-only, so files do
// not overlap and there is little to gain from merging them.
func logOptions(fs vfs.FS) *pebble.Options {
	o := &pebble.Options{FS: fs, Logger: quietPebble{}}
	o.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	o.MemTableSize = 64 << 20
	o.MemTableStopWritesThreshold = 4
	o.L0CompactionThreshold = 8
	o.L0StopWritesThreshold = 1000
	return o
}

// getProto reads the message stored under key into m; found is false if
// there is none.
func getProto(db *pebble.DB, key []byte, m proto.Message) (found bool, err error) {
	v, c, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer c.Close()
	return true, proto.Unmarshal(v, m)
}

// save makes a Ready's snapshot, entries and hard state durable (synced
// when raft says it must be and the replica syncs at all), then adds them
// to the in-memory log. Entries replace any at the same or later indexes
// (a new leader's log wins over an old, uncommitted suffix).
//
// A hard state that moves only the commit index is not written by itself:
// raft does not need the commit index durable (a restarted replica learns
// it again from the leader, and applying is idempotent here), and writing
// it cost a database commit for every entry committed, on every replica.
// It goes to disk with the next write, or at close.
func (ls *logStore) save(snap *pb.Snapshot, ents []*pb.Entry, hs *pb.HardState, mustSync bool) error {
	if raft.IsEmptySnap(snap) && len(ents) == 0 && !raft.IsEmptyHardState(hs) &&
		hs.GetTerm() == ls.stored.GetTerm() && hs.GetVote() == ls.stored.GetVote() {
		return ls.SetHardState(hs)
	}
	if raft.IsEmptyHardState(hs) {
		if cur, _, _ := ls.InitialState(); !raft.IsEmptyHardState(cur) && !proto.Equal(cur, ls.stored) {
			hs = cur // a commit index kept in memory only so far
		}
	}
	b := ls.db.NewBatch()
	defer b.Close()
	if !raft.IsEmptySnap(snap) {
		v, err := proto.Marshal(snap)
		if err != nil {
			return err
		}
		b.Set(keySnapshot, v, nil)
		if err := ls.deleteFrom(b, 0, snap.GetMetadata().GetIndex()+1); err != nil {
			return err
		}
	}
	if len(ents) > 0 {
		last, _ := ls.LastIndex()
		if from := ents[0].GetIndex(); from <= last {
			if err := ls.deleteFrom(b, from, last+1); err != nil {
				return err
			}
		}
		for _, e := range ents {
			v, err := proto.Marshal(e)
			if err != nil {
				return err
			}
			b.Set(entryKey(e.GetIndex()), v, nil)
		}
	}
	if !raft.IsEmptyHardState(hs) {
		v, err := proto.Marshal(hs)
		if err != nil {
			return err
		}
		b.Set(keyHardState, v, nil)
	}
	opt := pebble.NoSync
	if mustSync && ls.sync {
		opt = pebble.Sync
	}
	if err := b.Commit(opt); err != nil {
		return fmt.Errorf("replica: write the raft log: %w", err)
	}
	if opt == pebble.Sync && ls.slowSync > 0 {
		time.Sleep(ls.slowSync) // an injected slow disk
	}
	if !raft.IsEmptySnap(snap) {
		if err := ls.ApplySnapshot(snap); err != nil {
			return err
		}
	}
	if len(ents) > 0 {
		if err := ls.Append(ents); err != nil {
			return err
		}
	}
	if !raft.IsEmptyHardState(hs) {
		ls.stored = proto.Clone(hs).(*pb.HardState)
		return ls.SetHardState(hs)
	}
	return nil
}

// deleteFrom deletes the stored entries with indexes in [lo, hi), point
// by point (see persist.Store.pruneJournal for why not DeleteRange).
func (ls *logStore) deleteFrom(b *pebble.Batch, lo, hi uint64) error {
	it, err := ls.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(lo), UpperBound: entryKey(hi)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		b.Delete(it.Key(), nil)
	}
	return errors.Join(it.Error(), it.Close())
}

// close writes a hard state kept in memory (see save) and closes the
// database.
func (ls *logStore) close() error {
	var err error
	if cur, _, e := ls.InitialState(); e == nil && !raft.IsEmptyHardState(cur) && !proto.Equal(cur, ls.stored) {
		if v, e := proto.Marshal(cur); e == nil {
			err = ls.db.Set(keyHardState, v, pebble.NoSync)
		}
	}
	return errors.Join(err, ls.db.Close())
}

// syncOpt is how a write that must be durable is committed.
func (ls *logStore) syncOpt() *pebble.WriteOptions {
	if ls.sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// quietPebble drops Pebble's informational lines.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("replica: pebble: "+format, args...))
}
