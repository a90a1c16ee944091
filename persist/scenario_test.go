package persist

import (
	"fmt"
	"io"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
)

var (
	genOnce sync.Once
	genCfg  engine.Config
	genCmds []engine.Command
)

// commands returns a fixed stream of realistic commands (workload A) with
// sequence numbers 1..n, and the configuration they run on.
func commands() (engine.Config, []engine.Command) {
	genOnce.Do(func() { genCfg, genCmds = workload.A(7, 200_000) })
	return genCfg, genCmds
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// persistScenario drives a Store on a crashable in-memory filesystem. It
// knows which commands were synced, so after a crash it can say what
// recovery must reproduce.
type persistScenario struct {
	fs     *vfs.MemFS
	store  *Store
	sn     *Snapshotter
	next   int        // index into commands of the next command to write
	synced engine.Seq // every command up to here was synced
	retain int
}

func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &persistScenario{fs: vfs.NewCrashableMem()}
		defer func() {
			if s.store != nil {
				s.store.Close()
			}
		}()
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return s.run(t, td)
		})
	})
}

func intArg(t *testing.T, td *datadriven.TestData, key string, def int) int {
	for _, a := range td.CmdArgs {
		if a.Key == key {
			n, err := strconv.Atoi(a.Vals[0])
			if err != nil {
				td.Fatalf(t, "%s: %v", key, err)
			}
			return n
		}
	}
	return def
}

func (s *persistScenario) run(t *testing.T, td *datadriven.TestData) string {
	cfg, cmds := commands()
	switch td.Cmd {
	case "open":
		s.retain = intArg(t, td, "retain", 2)
		// The crashes here lose whatever was not synced (a power loss):
		// sync the high-water mark every time it is written.
		st, err := Open("db", cfg, Options{FS: s.fs, Logger: quiet, RetainSnapshots: s.retain,
			HighWaterSync: time.Nanosecond})
		if err != nil {
			return "error: " + err.Error()
		}
		s.store = st
		snaps, _ := st.Snapshots()
		return fmt.Sprintf("ok: snapshots %v", seqs(snaps))
	case "write", "append":
		// write stages commands; append also syncs them.
		n := intArg(t, td, "n", 1)
		if err := s.store.Write(cmds[s.next : s.next+n]); err != nil {
			return "error: " + err.Error()
		}
		s.next += n
		if td.Cmd == "append" {
			if err := s.store.Sync(); err != nil {
				return "error: " + err.Error()
			}
			s.synced = engine.Seq(s.next)
		}
		return fmt.Sprintf("staged through %d, synced through %d", s.next, s.synced)
	case "snapshot":
		// The replica snapshotter, reading only what is durable.
		if s.sn == nil {
			e, _, err := s.store.Recover()
			if err != nil {
				return "error: " + err.Error()
			}
			s.sn, err = NewSnapshotter(s.store, e, func() engine.Seq { return s.synced }, SnapshotterConfig{})
			if err != nil {
				return "error: " + err.Error()
			}
		}
		seq, err := s.sn.Snapshot()
		if err != nil {
			return "error: " + err.Error()
		}
		snaps, _ := s.store.Snapshots()
		first, err := s.store.FirstSeq()
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("snapshot at %d; snapshots %v; journal starts at %d", seq, seqs(snaps), first)
	case "crash":
		// Everything not synced is lost; the old handle is abandoned.
		s.fs = s.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
		s.store, s.sn = nil, nil
		s.next = int(s.synced)
		return fmt.Sprintf("crashed; %d commands were durable", s.synced)
	case "close":
		if s.sn != nil {
			s.sn.Close()
			s.sn = nil
		}
		err := s.store.Close()
		s.store = nil
		if err != nil {
			return "error: " + err.Error()
		}
		return "closed"
	case "recover":
		e, st, err := s.store.Recover()
		if err != nil {
			return "error: " + err.Error()
		}
		// The reference: a fresh engine that applied exactly the durable
		// commands.
		ref, _ := engine.New(cfg)
		var out []engine.Event
		for i := 0; i < int(st.LastSeq); i++ {
			out = ref.Apply(&cmds[i], out[:0])
		}
		match := "matches"
		if ref.StateHash() != e.StateHash() {
			match = "DIFFERS FROM"
		}
		s.next = int(st.LastSeq)
		s.synced = st.LastSeq
		return fmt.Sprintf("from snapshot %d replayed %d to seq %d (skipped snapshots: %d); state %s a fresh replay",
			st.SnapshotSeq, st.Replayed, st.LastSeq, st.SkippedSnapshots, match)
	case "truncate":
		n, err := s.store.TruncateJournal(engine.Seq(intArg(t, td, "from", 0)))
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("removed %d records; high-water mark %d", n, s.store.HighWater())
	case "wait-high-water":
		// The store's goroutine writes the mark every few milliseconds.
		want := s.synced
		for i := 0; i < 2000; i++ {
			if seq, _, _, _ := readHighWater(s.fs, "db"); seq >= want {
				break
			}
			time.Sleep(time.Millisecond)
		}
		seq, _, _, err := readHighWater(s.fs, "db")
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("high-water mark %d", seq)
	case "remove-files":
		// Deletes the files of db whose names match the pattern (the store
		// must be closed or crashed).
		pat := td.CmdArgs[0].Key
		names, _ := s.fs.List("db")
		sort.Strings(names)
		var gone []string
		for _, n := range names {
			if ok, _ := path.Match(pat, n); ok {
				if err := s.fs.Remove(s.fs.PathJoin("db", n)); err != nil {
					return "error: " + err.Error()
				}
				gone = append(gone, n)
			}
		}
		return fmt.Sprintf("removed %d file(s)", len(gone))
	case "cut-wal":
		// Cuts the newest write-ahead log to a fraction of its length (the
		// store must be closed or crashed), as a disk that lost its tail.
		names, _ := s.fs.List("db")
		sort.Strings(names)
		var wal string
		for _, n := range names {
			if strings.HasSuffix(n, ".log") {
				wal = n
			}
		}
		p := s.fs.PathJoin("db", wal)
		f, err := s.fs.Open(p)
		if err != nil {
			return "error: " + err.Error()
		}
		data, _ := io.ReadAll(f)
		f.Close()
		keep := len(data) * intArg(t, td, "percent", 50) / 100
		g, err := s.fs.Create(p, vfs.WriteCategoryUnspecified)
		if err != nil {
			return "error: " + err.Error()
		}
		g.Write(data[:keep])
		g.Sync()
		g.Close()
		return "newest WAL cut"
	case "corrupt":
		seq := engine.Seq(intArg(t, td, "seq", 0))
		v := AppendRecord(nil, &cmds[seq-1])
		v[40] ^= 0xff // flip a byte inside the checksummed part
		if err := s.store.setRecord(seq, v); err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("record %d damaged", seq)
	case "repair":
		seq := engine.Seq(intArg(t, td, "seq", 0))
		if err := s.store.setRecord(seq, AppendRecord(nil, &cmds[seq-1])); err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("record %d rewritten", seq)
	case "corrupt-snapshot":
		seq := engine.Seq(intArg(t, td, "seq", 0))
		if err := s.store.db.Set(key(prefixSnapshot, seq), []byte("garbage that is not a snapshot"), nil); err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("snapshot %d damaged", seq)
	case "delete":
		seq := engine.Seq(intArg(t, td, "seq", 0))
		if err := s.store.setRecord(seq, nil); err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("record %d deleted", seq)
	case "last-seq":
		n, err := s.store.LastSeq()
		if err != nil {
			return "error: " + err.Error()
		}
		return strconv.Itoa(int(n))
	}
	td.Fatalf(t, "unknown command %q", td.Cmd)
	return ""
}

func seqs(snaps []SnapshotInfo) string {
	var parts []string
	for _, s := range snaps {
		parts = append(parts, strconv.Itoa(int(s.Seq)))
	}
	return "[" + strings.Join(parts, " ") + "]"
}
