package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
	"github.com/matchd/matchd/persist"
)

// makeStore writes n commands of workload A and one snapshot at half way.
func makeStore(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	cfg, cmds := workload.A(9, n)
	st, err := persist.Open(dir, cfg, persist.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e, _, _ := st.Recover()
	var out []engine.Event
	for i := range cmds {
		out = e.Apply(&cmds[i], out[:0])
		if i == n/2 {
			st.Write(cmds[:i+1])
			st.Sync()
			st.WriteSnapshot(e.LastSeq(), e.Snapshot(nil))
		}
	}
	// The second half one record a write, each its own group under its
	// own key, as matchd wrote every record before groups: the tests damage
	// records by key, and a journal of both kinds must read as one.
	for i := n/2 + 1; i < n; i++ {
		st.Write(cmds[i : i+1])
	}
	st.Sync()
	st.Close()
	return dir
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestJournalCommands(t *testing.T) {
	dir := makeStore(t, 2000)
	code, out, errs := runCmd("journal", "verify", "--data", dir)
	if code != 0 || !strings.Contains(out, "snapshot 1001: ok, equals the replayed state") ||
		!strings.Contains(out, "to seq 2000") || !strings.Contains(out, "verify: ok") {
		t.Fatalf("verify: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd("journal", "snapshots", "--data", dir)
	if code != 0 || !strings.Contains(out, "1001") {
		t.Fatalf("snapshots: %d %s", code, out)
	}
	code, out, _ = runCmd("journal", "dump", "--data", dir, "--from", "10", "--to", "12")
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, "seq=10 ") {
		t.Fatalf("dump: %d %s", code, out)
	}
	// Damage a record in the middle: verify must say so and fail.
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Set(append([]byte{'j'}, 0, 0, 0, 0, 0, 0, 0x05, 0xdc), []byte("not a record"), pebble.Sync) // seq 1500
	db.Close()
	code, out, _ = runCmd("journal", "verify", "--data", dir)
	if code != 1 || !strings.Contains(out, "CORRUPT") || !strings.Contains(out, "record 1500") {
		t.Fatalf("verify of a damaged journal: %d\n%s", code, out)
	}
}

func TestJournalBadInput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if code, _, errs := runCmd("journal", "verify", "--data", missing); code != 1 || errs == "" {
		t.Fatalf("missing dir: %d %q", code, errs)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("inspecting a missing directory created it")
	}
	if code, _, _ := runCmd("journal"); code != 2 {
		t.Fatalf("bad usage: %d", code)
	}
	if code, _, _ := runCmd("journal", "frobnicate", "--data", missing); code != 2 {
		t.Fatalf("unknown subcommand: %d", code)
	}
}

// A damaged last record is corruption (a committed batch cannot be torn):
// verify fails, and the record goes only by the operator's truncate. A
// journal that ends before the high-water mark is reported as lost.
func TestJournalTruncate(t *testing.T) {
	dir := makeStore(t, 2000)
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Set(append([]byte{'j'}, 0, 0, 0, 0, 0, 0, 0x07, 0xd0), []byte("not a record"), pebble.Sync) // seq 2000
	db.Close()
	code, out, _ := runCmd("journal", "verify", "--data", dir)
	if code != 1 || !strings.Contains(out, "CORRUPT") || !strings.Contains(out, "record 2000 at the end") {
		t.Fatalf("verify of a damaged last record: %d\n%s", code, out)
	}
	code, out, _ = runCmd("journal", "truncate", "--data", dir, "--from", "2000")
	if code != 0 || !strings.Contains(out, "would delete journal records 2000..2000") {
		t.Fatalf("truncate without --confirm: %d\n%s", code, out)
	}
	if code, _, _ = runCmd("journal", "verify", "--data", dir); code != 1 {
		t.Fatal("truncate without --confirm changed the journal")
	}
	code, out, errs := runCmd("journal", "truncate", "--data", dir, "--from", "2000", "--confirm")
	if code != 0 || !strings.Contains(out, "deleted 1 journal records") || !strings.Contains(errs, "truncated by the operator") {
		t.Fatalf("truncate: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd("journal", "verify", "--data", dir)
	if code != 0 || !strings.Contains(out, "to seq 1999") || !strings.Contains(out, "high-water mark 1999: ok") {
		t.Fatalf("verify after truncate: %d\n%s", code, out)
	}
	// Records lost behind Pebble's back (as a WAL that lost its tail).
	db, err = pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for seq := 1900; seq <= 1999; seq++ {
		db.Delete(append([]byte{'j'}, 0, 0, 0, 0, 0, 0, byte(seq>>8), byte(seq)), pebble.Sync)
	}
	db.Close()
	code, out, _ = runCmd("journal", "verify", "--data", dir)
	if code != 1 || !strings.Contains(out, "LOST: ends at seq 1899") {
		t.Fatalf("verify of a journal that lost its tail: %d\n%s", code, out)
	}
	if code, _, errs = runCmd("journal", "truncate", "--data", dir); code != 2 || !strings.Contains(errs, "--from") {
		t.Fatalf("truncate without --from: %d %s", code, errs)
	}
}

// TestVerifyDamagedSSTable: bytes flipped inside an sstable are reported
// as CORRUPT with exit status 1, never a panic.
func TestVerifyDamagedSSTable(t *testing.T) {
	dir := makeStore(t, 5000)
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Flush()
	db.Close()
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable")
	}
	for _, f := range ssts {
		b, _ := os.ReadFile(f)
		for i := 200; i < len(b)/2; i += 97 {
			b[i] ^= 0xff
		}
		os.WriteFile(f, b, 0o644)
	}
	code, out, errs := runCmd("journal", "verify", "--data", dir)
	if code != 1 || strings.Contains(errs, "panic") || !strings.Contains(out, "CORRUPT") {
		t.Fatalf("verify of a damaged sstable: %d\n%s%s", code, out, errs)
	}
}
