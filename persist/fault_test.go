package persist

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/matchd/matchd/engine"
)

// TestCorruptionIsFailStopNotPanic damages the sstable that holds the
// journal on a real disk, then reads it (as the snapshotter does) and
// compacts it (as Pebble does in the background). Pebble's default for
// detected corruption is Fatalf, which crashed the whole server; the store
// must instead fail (Failed closed, Err says corrupt) and return errors.
func TestCorruptionIsFailStopNotPanic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	cfg, cmds := commands()
	st, err := Open(dir, cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(cmds[:20_000]); err != nil {
		t.Fatal(err)
	}
	if err := st.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := st.db.Flush(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable")
	}
	for _, f := range ssts {
		b, _ := os.ReadFile(f)
		for i := 4096; i < len(b)/2; i += 131 {
			b[i] ^= 0xff
		}
		os.WriteFile(f, b, 0o644)
	}
	st, err = Open(dir, cfg, Options{Logger: quiet})
	if err != nil {
		// Refusing at Open (the snapshot's block is damaged) is fine too,
		// as long as it is an error and not a crash.
		t.Logf("open refused: %v", err)
		return
	}
	defer st.Close()
	err = st.Replay(context.Background(), 1, 0, func(*engine.Command) error { return nil })
	if err == nil {
		t.Fatal("replay of a damaged journal succeeded")
	}
	// A compaction of the damaged table: Pebble reports DataCorruption.
	_ = st.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true)
	select {
	case <-st.Failed():
	case <-time.After(10 * time.Second):
		t.Fatalf("the store did not fail after reading corrupt data (replay said %v)", err)
	}
	if !errors.Is(st.Err(), ErrFailed) {
		t.Fatalf("Err: %v", st.Err())
	}
	if err := st.Write(cmds[20_000:20_001]); err == nil {
		t.Fatal("a failed store accepted a write")
	}
	t.Logf("replay: %v; store: %v", err, st.Err())
}
