package persist

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// TestFullDiskFailsTheStore fills a real tmpfs with small memtables, so
// that flushes as well as the write-ahead log run out of space: the store
// must fail (Failed closed, an error naming the disk), never hang in a
// write stall with nothing said.
func TestFullDiskFailsTheStore(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=6m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root; CI runs as root): %v", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	cfg, cmds := commands()
	st, err := Open(filepath.Join(mnt, "db"), cfg, Options{Logger: quiet, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i = (i + 1000) % (len(cmds) - 1000) {
			select {
			case <-st.Failed(): // the test may end now: write nothing into a directory about to go
				done <- st.Err()
				return
			default:
			}
			batch := append([]engine.Command(nil), cmds[i:i+1000]...)
			if err := st.Write(batch); err != nil {
				done <- err
				return
			}
			if err := st.Sync(); err != nil {
				done <- err
				return
			}
		}
	}()
	// The store fails (Failed closes) when Pebble reports the full disk;
	// the writer may then be stuck in a write stall inside Pebble, which
	// is why the node fail-stops on Failed rather than waiting for writes
	// to return (under load the test saw that: the store failed, the
	// writer never came back).
	select {
	case err := <-done:
		t.Logf("writes stopped: %v", err)
		defer st.Close() // only once the writer has stopped: Write and Commit are not safe beside Close
	case <-st.Failed():
		t.Logf("the store failed with the writer still inside a write: %v", st.Err())
		// Let a writer that is not stuck come out before the tmpfs goes
		// (one that went on into a WAL rotation after the directory was
		// removed crashed the race run).
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no failure 30 s into filling a 6 MiB disk (background errors: %d, the last: %v)", st.BackgroundErrors(), st.bgLast.Load())
	}
	select {
	case <-st.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("the store did not fail")
	}
	if !strings.Contains(st.Err().Error(), "no space") {
		t.Fatalf("Err: %v", st.Err())
	}
}

// TestInUseIsNotCorruption: a directory another process (here, another
// Store) has open is "in use", not "not a valid store" — matchctl journal
// on a running server's data used to say the latter, which reads like
// damage.
func TestInUseIsNotCorruption(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	cfg, cmds := commands()
	st, err := Open(dir, cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Write(cmds[:10]); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		_, err := Open(dir, cfg, Options{Logger: quiet, ReadOnly: ro})
		if !errors.Is(err, ErrInUse) || errors.Is(err, ErrNotStore) || !strings.Contains(err.Error(), "is a matchd running") {
			t.Errorf("read-only %v: %v", ro, err)
		}
	}
}
