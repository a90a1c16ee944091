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
	st.Write(cmds[n/2+1:])
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
