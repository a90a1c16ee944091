package main

// The disk-fault suite: a real matchd, a real data directory, damage done
// to it between runs (files removed, truncated, bytes flipped) and a real
// tmpfs filled to the brim while it serves. Each case either recovers
// exactly or refuses with a clear message and exit status 3; none starts
// with fewer acknowledged commands than it had without saying so.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// runToExit runs matchd until it exits by itself (a refusal) and returns
// its exit status and log.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(matchdBin, append(args, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--web", "127.0.0.1:0")...)
	var log bytes.Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), log.String()
		}
		return 0, log.String()
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("matchd did not exit; log:\n%s", log.String())
		return -1, ""
	}
}

// acknowledge sends n resting buy orders in blocks and returns the highest
// sequence number acknowledged.
func acknowledge(t *testing.T, c *client, firstRef, n int) engine.Seq {
	t.Helper()
	var last engine.Seq
	const block = 500
	for i := 0; i < n; i += block {
		var frames []byte
		k := min(block, n-i)
		for j := range k {
			ref := firstRef + i + j
			frames = (&wire.NewOrder{Ref: engine.ClientRef(ref), Instrument: aapl, Side: engine.Buy, Type: engine.Limit,
				TIF: engine.GTC, Price: engine.Price(9_000 + ref%900), Qty: 1}).Append(frames)
		}
		c.send(frames)
		for range k {
			var acc wire.Accepted
			acc.Decode(c.expect(wire.TypeAccepted))
			last = acc.Seq
		}
	}
	return last
}

// killed starts matchd on data, has n orders acknowledged, waits for the
// high-water mark to be written (every 10 ms) and SIGKILLs it.
func killed(t *testing.T, data string, n int) engine.Seq {
	t.Helper()
	srv := startServer(t, data)
	alice := login(t, srv.addr, 1, "alice-demo")
	last := acknowledge(t, alice, 1, n)
	time.Sleep(100 * time.Millisecond)
	srv.cmd.Process.Kill()
	<-srv.exit
	return last
}

func filesOf(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

var recoveredRE = `recovered_to_seq=`

// recoveredSeq starts matchd on data (with the demo config) and returns
// the sequence it recovered to (it must start).
func recoveredSeq(t *testing.T, data string) engine.Seq {
	t.Helper()
	return recoveredSeqWith(t, "../../configs/demo.json", data)
}

// recoveredSeqWith is recoveredSeq on a config of its own.
func recoveredSeqWith(t *testing.T, config, data string) engine.Seq {
	t.Helper()
	srv := startWith(t, "--config", config, "--data", data)
	line := srv.logLine("matchd: ready")
	i := strings.Index(line, recoveredRE)
	if i < 0 {
		t.Fatalf("no recovered_to_seq in %q", line)
	}
	seq, err := strconv.ParseUint(strings.Fields(line[i+len(recoveredRE):])[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
	return engine.Seq(seq)
}

func refuses(t *testing.T, data, want string) {
	t.Helper()
	code, log := runToExit(t, "--config", "../../configs/demo.json", "--data", data)
	if code != exitData || !strings.Contains(log, want) || strings.Contains(log, "panic") {
		t.Fatalf("exit %d, want %d with %q; log:\n%s", code, exitData, want, log)
	}
}

// TestDiskFaultManifestRemoved: a directory that lost its MANIFEST is not
// a new, empty store.
func TestDiskFaultManifestRemoved(t *testing.T) {
	data := t.TempDir()
	killed(t, data, 2000)
	for _, f := range filesOf(t, data, "MANIFEST-*") {
		os.Remove(f)
	}
	refuses(t, data, "holds files but is not a valid store")
	for _, f := range filesOf(t, data, "marker.*") {
		os.Remove(f)
	}
	refuses(t, data, "holds files but is not a valid store")
}

// TestDiskFaultWALTail: the newest WAL cut short or damaged after a kill
// loses acknowledged commands Pebble cannot see are gone; the high-water
// mark sees it.
func TestDiskFaultWALTail(t *testing.T) {
	for _, damage := range []string{"truncate", "flip"} {
		t.Run(damage, func(t *testing.T) {
			data := t.TempDir()
			last := killed(t, data, 20_000)
			wals := filesOf(t, data, "*.log")
			wal := wals[len(wals)-1]
			b, err := os.ReadFile(wal)
			if err != nil {
				t.Fatal(err)
			}
			if damage == "truncate" {
				b = b[:len(b)/2]
			} else {
				for i := len(b) / 2; i < len(b)/2+64; i++ {
					b[i] ^= 0x5a
				}
			}
			os.WriteFile(wal, b, 0o644)
			refuses(t, data, "acknowledged commands are missing")
			t.Logf("acknowledged through seq %d; refused", last)
		})
	}
}

// flushed stops nothing (matchd must be stopped): it opens the directory
// with Pebble itself and flushes its memtable, so that the journal and
// the snapshots are in sstables.
func flushed(t *testing.T, data string) {
	t.Helper()
	db, err := pebble.Open(data, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	db.Close()
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)           {}
func (quietPebble) Errorf(string, ...any)          {}
func (quietPebble) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

// TestDiskFaultSSTable: bytes flipped in, or a cut of, the sstable that
// holds the journal and snapshots: the start refuses (never a panic, never
// fewer commands).
func TestDiskFaultSSTable(t *testing.T) {
	for _, damage := range []string{"flip", "truncate"} {
		t.Run(damage, func(t *testing.T) {
			data := t.TempDir()
			killed(t, data, 5000)
			flushed(t, data)
			ssts := filesOf(t, data, "*.sst")
			if len(ssts) == 0 {
				t.Fatal("no sstable after a flush")
			}
			sst := ssts[len(ssts)-1]
			b, _ := os.ReadFile(sst)
			if damage == "flip" {
				for i := 100; i < 200; i++ {
					b[i] ^= 0xff
				}
			} else {
				b = b[:len(b)*2/3]
			}
			os.WriteFile(sst, b, 0o644)
			code, log := runToExit(t, "--config", "../../configs/demo.json", "--data", data)
			if code != exitData && code != exitFailed || strings.Contains(log, "panic") || strings.Contains(log, "matchd: ready") {
				t.Fatalf("exit %d; log:\n%s", code, log)
			}
		})
	}
}

// TestDiskFaultSnapshotCorruptWhileServing: a block of the journal found
// corrupt by the snapshotter while the server runs is the store's
// fail-stop: Goodbye 8, /readyz 503, exit 1, no panic.
func TestDiskFaultSnapshotCorruptWhileServing(t *testing.T) {
	data := t.TempDir()
	killed(t, data, 5000)
	flushed(t, data)
	ssts := filesOf(t, data, "*.sst")
	// Start (recovery reads the sstable: it is intact), then damage it
	// and make the snapshotter read it.
	srv := startWith(t, "--config", "../../configs/demo.json", "--data", data, "--snapshot-every", "100")
	alice := login(t, srv.addr, 1, "alice-demo")
	for _, sst := range ssts {
		b, _ := os.ReadFile(sst)
		for i := 64; i < len(b)/2; i += 97 {
			b[i] ^= 0xff
		}
		os.WriteFile(sst, b, 0o644)
	}
	// The replica snapshotter replays only what is new since the last
	// snapshot, and Pebble caches blocks it read: this case is about the
	// server not panicking whatever it reads; it must either go on
	// serving or fail-stop cleanly.
	acknowledge(t, alice, 10_001, 1000)
	time.Sleep(500 * time.Millisecond)
	if l := srv.logLine("panic"); l != "" {
		t.Fatalf("server panicked: %s", l)
	}
	code := srv.stop(t)
	if code != exitOK && code != exitFailed {
		t.Fatalf("exit %d", code)
	}
}

// TestDiskFull: a tmpfs filled while orders arrive. The server fail-stops
// (Goodbye 8, /readyz 503 with the reason, exit 1), and once there is room
// again (the directory copied to a larger disk) it recovers every
// acknowledged command. At 24 MiB the write-ahead log fills the disk; at
// 100 MiB the first memtable flush does (Pebble reports it as a
// background error and retries; writes would then stall for ever).
func TestDiskFull(t *testing.T) {
	for _, size := range []string{"24m", "100m"} {
		t.Run(size, func(t *testing.T) { diskFull(t, size) })
	}
}

func diskFull(t *testing.T, size string) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root; CI runs as root): %v", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	data := filepath.Join(mnt, "data")
	srv := startWith(t, "--config", "../../configs/demo.json", "--data", data, "--snapshot-every", "100000000")
	alice := login(t, srv.addr, 1, "alice-demo")
	var acked engine.Seq
	bye := uint8(0)
	const limit = 3_000_000
	deadline := time.Now().Add(60 * time.Second)
	for ref := 1; ref < limit && bye == 0 && time.Now().Before(deadline); ref += 1000 {
		var frames []byte
		for j := range 1000 {
			frames = (&wire.NewOrder{Ref: engine.ClientRef(ref + j), Instrument: aapl, Side: engine.Buy, Type: engine.Limit,
				TIF: engine.IOC, Price: 9_000, Qty: 1}).Append(frames)
		}
		if _, err := alice.c.Write(frames); err != nil {
			break
		}
		for got := 0; got < 2000 && bye == 0; got++ { // Accepted, then Canceled (IOC)
			alice.c.SetReadDeadline(time.Now().Add(20 * time.Second))
			typ, body, err := alice.rd.Next()
			if err != nil {
				t.Fatalf("read: %v (acknowledged through %d)", err, acked)
			}
			switch typ {
			case wire.TypeAccepted, wire.TypeCanceled:
				acked = engine.Seq(binary.BigEndian.Uint64(body)) // every report starts with its sequence
			case wire.TypeGoodbye:
				bye = body[0]
			case wire.TypeHeartbeat:
				got--
			}
		}
	}
	if bye != wire.ByeFailStop {
		t.Fatalf("Goodbye %d after acknowledging through %d, want %d (fail-stop)", bye, acked, wire.ByeFailStop)
	}
	// The server lingers for this still-open session: readiness says why.
	if code, body := srv.get(t, "/readyz"); code != 503 || !strings.Contains(body, "failed") || !strings.Contains(body, "no space") {
		t.Errorf("/readyz after the disk filled: %d %s", code, body)
	}
	select {
	case err := <-srv.exit:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailed {
			t.Fatalf("exit: %v, want status %d", err, exitFailed)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("matchd did not exit after the disk filled")
	}
	if l := srv.logLine("FAIL-STOP"); !strings.Contains(l, "no space") {
		t.Fatalf("fail-stop log line: %q", l)
	}
	// Room again: the same directory on a larger disk.
	big := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", data, big).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if got := recoveredSeq(t, big); got < acked {
		t.Fatalf("recovered to seq %d, but seq %d was acknowledged", got, acked)
	}
	t.Logf("acknowledged through %d before the disk filled; all recovered", acked)
}

// TestConfigDisagreesWithData: instruments changed in the config of an
// existing directory are refused, with the differences listed.
func TestConfigDisagreesWithData(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, data)
	srv.stop(t)
	raw, err := os.ReadFile("../../configs/demo.json")
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(raw), `"0.01"`, `"0.05"`, 1)
	if changed == string(raw) {
		t.Fatal("demo config has no tick size 0.01 to change")
	}
	cfg := filepath.Join(t.TempDir(), "changed.json")
	os.WriteFile(cfg, []byte(changed), 0o644)
	code, log := runToExit(t, "--config", cfg, "--data", data)
	if code != exitData || !strings.Contains(log, "differ from the data directory") || !strings.Contains(log, "TickSize:0.05") {
		t.Fatalf("exit %d; log:\n%s", code, log)
	}
	if got := recoveredSeq(t, data); got != 0 {
		t.Fatalf("the refused start changed the directory: seq %d", got)
	}
}
