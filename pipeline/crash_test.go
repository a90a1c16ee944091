package pipeline_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
)

const (
	envChild  = "MATCHD_CRASH_CHILD"  // data directory: run as the crash test's child
	envVerify = "MATCHD_CRASH_VERIFY" // with envChild: recover, report, exit
)

// TestCrash kills a process running the durable pipeline with SIGKILL at
// random moments and restarts it on the same data directory. Every time,
// every command the child acknowledged must have survived, and recovery
// from the newest snapshot must reach the same state as replaying the
// journal from the oldest retained snapshot. CRASH_ITERATIONS sets the
// number of kills (make crashtest runs 100).
func TestCrash(t *testing.T) {
	if os.Getenv(envChild) != "" {
		t.Skip("in the child")
	}
	iterations := 3
	if n, err := strconv.Atoi(os.Getenv("CRASH_ITERATIONS")); err == nil {
		iterations = n
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("CRASH_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (CRASH_SEED=%d to repeat the kill times), %d iterations", seed, seed, iterations)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	var maxAcked engine.Seq
	totalAcks := 0
	for i := 0; i <= iterations; i++ {
		verify := i == iterations // the last run only recovers and checks
		child := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		child.Env = append(os.Environ(), envChild+"="+dir)
		if verify {
			child.Env = append(child.Env, envVerify+"=1")
		}
		child.Stderr = os.Stderr
		out, err := child.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		recovered := false
		acks := 0
		var killAt <-chan time.Time
		lines := make(chan string)
		go func() {
			// Only newline-terminated lines count: the kill can cut a
			// line short mid-write, and a cut "ack 1234" is no ack at all.
			r := bufio.NewReader(out)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					break
				}
				lines <- strings.TrimSuffix(line, "\n")
			}
			close(lines)
		}()
	read:
		for {
			select {
			case <-killAt:
				child.Process.Kill() // SIGKILL
				killAt = nil
			case line, ok := <-lines:
				if !ok {
					break read
				}
				f := strings.Fields(line)
				switch {
				case len(f) == 4 && f[0] == "recovered":
					last, _ := strconv.ParseUint(f[1], 10, 64)
					if engine.Seq(last) < maxAcked {
						t.Fatalf("run %d: recovered to seq %d, but %d had been acknowledged", i, last, maxAcked)
					}
					if f[2] != f[3] {
						t.Fatalf("run %d: newest snapshot + journal gives %s, oldest snapshot + journal %s", i, f[2], f[3])
					}
					recovered = true
					if !verify {
						killAt = time.After(time.Duration(20+rng.IntN(300)) * time.Millisecond)
					}
				case len(f) == 2 && f[0] == "ack":
					s, _ := strconv.ParseUint(f[1], 10, 64)
					if engine.Seq(s) <= maxAcked {
						t.Fatalf("run %d: ack %d after %d", i, s, maxAcked)
					}
					maxAcked = engine.Seq(s)
					acks++
				default:
					t.Fatalf("run %d: child said %q", i, line)
				}
			}
		}
		child.Wait()
		if !recovered {
			t.Fatalf("run %d: the child did not recover", i)
		}
		totalAcks += acks
		if !verify && testing.Verbose() {
			t.Logf("run %d: %d acknowledged, up to seq %d, then SIGKILL", i, acks, maxAcked)
		}
	}
	t.Logf("tally: %d kills, %d commands acknowledged, all present after each restart; last acknowledged seq %d",
		iterations, totalAcks, maxAcked)
}

// TestCrashChild is the child side of TestCrash; it does nothing unless
// started by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envChild)
	if dir == "" {
		t.Skip("only run as TestCrash's child")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := workload.Config(0)
	store, err := persist.Open(dir, cfg, persist.Options{Logger: log})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	e, st, err := store.Recover()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	// An independent route to the same state: the oldest retained
	// snapshot and every journal record after it.
	snaps, _ := store.Snapshots()
	base, err := store.LoadSnapshot(snaps[0].Seq)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var scratch []engine.Event
	if err := store.Replay(context.Background(), snaps[0].Seq+1, 0, func(c *engine.Command) error {
		scratch = base.Apply(c, scratch[:0])
		return nil
	}); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	h1, h2 := e.StateHash(), base.StateHash()
	stdout := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(stdout, "recovered %d %s %s\n", st.LastSeq, hex.EncodeToString(h1[:8]), hex.EncodeToString(h2[:8]))
	stdout.Flush()
	if os.Getenv(envVerify) != "" {
		os.Exit(0)
	}

	p, err := pipeline.New(e, store, func(b *pipeline.Batch) {
		for i := range b.Results {
			fmt.Fprintf(stdout, "ack %d\n", b.Results[i].Seq)
		}
		stdout.Flush() // the acknowledgment is released here
	}, pipeline.Config{})
	if err != nil {
		panic(err)
	}
	sn, err := persist.NewSnapshotter(store, e, p.Durable, persist.SnapshotterConfig{Every: 20_000, Poll: 5 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	p.Start()
	sn.Start()
	// Steady load until killed (bounded in case the parent is gone).
	rng := rand.New(rand.NewPCG(uint64(st.LastSeq), 2))
	next := uint64(st.LastSeq)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		next++
		c := engine.Command{Kind: engine.CmdNewOrder, Account: engine.AccountID(1 + rng.IntN(50)),
			Instrument: workload.Instrument, Side: engine.Side(1 + rng.IntN(2)), Type: engine.Limit,
			TIF: engine.GTC, Price: engine.Price(99_950 + rng.IntN(101)), Qty: engine.Qty(1 + rng.IntN(100)),
			Ref: engine.ClientRef(next)}
		if rng.IntN(3) == 0 {
			c = engine.Command{Kind: engine.CmdCancel, Account: c.Account, OrderID: engine.OrderID(1 + rng.Uint64N(next))}
		}
		if err := p.Submit(pipeline.Request{Cmd: c}); err != nil {
			panic(err)
		}
		if next%64 == 0 {
			time.Sleep(100 * time.Microsecond) // steady, not a flood
		}
	}
	p.Close()
	os.Exit(0)
}
