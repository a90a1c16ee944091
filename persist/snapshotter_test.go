package persist

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/engine"
)

// TestSnapshotterBuildsFromTheStore: the snapshotter's replica is built
// from the store when the first snapshot is due, from the newest snapshot
// that loads (here the newest is damaged, so from the one before), and
// reaches the live engine's state.
func TestSnapshotterBuildsFromTheStore(t *testing.T) {
	s, err := Open("db", replayConfig(), Options{FS: vfs.NewMem(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmds := replayScript(7, 3000)
	live, _, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	var out []engine.Event
	apply := func(cs []engine.Command) {
		for i := range cs {
			out = live.Apply(&cs[i], out[:0])
		}
		if err := s.Write(cs); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	apply(cmds[:1000])
	if err := s.SnapshotEngine(live); err != nil {
		t.Fatal(err)
	}
	apply(cmds[1000:2000])
	if err := s.SnapshotEngine(live); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(key(prefixSnapshot, 2000), []byte("not a snapshot header"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	e, st, err := s.Recover()
	if err != nil || st.SnapshotSeq != 1000 || st.SkippedSnapshots != 1 {
		t.Fatalf("recover: %+v, %v", st, err)
	}
	sn, err := NewSnapshotter(s, e, func() engine.Seq { return live.LastSeq() }, SnapshotterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	apply(cmds[2000:])
	seq, err := sn.Snapshot()
	if err != nil || seq != 3000 {
		t.Fatalf("Snapshot() = %d, %v", seq, err)
	}
	got, err := s.LoadSnapshot(3000)
	if err != nil {
		t.Fatal(err)
	}
	if got.StateHash() != live.StateHash() {
		t.Fatal("the snapshot built from the store differs from the live engine")
	}
}
