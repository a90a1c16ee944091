// Command peers times matchd's engine and other Go order books on the same
// workloads, one engine and one workload per process (see
// scripts/peers.sh, which builds it in a module of its own with the peers'
// sources, and docs/BENCHMARKS.md).
//
// The workloads are the engine benchmarks' (A, B and C), read from the
// files BenchmarkWorkload{A,B,C} write under MATCHD_WORKLOAD_CACHE. Each is
// translated into each book's calls before the clock starts. A run prints
// one line: the engine, the workload, ns per command, and a check (trades,
// quantity traded, open orders at the end) that the driver compares
// across engines, so that a book that did less work is not taken for a
// faster one.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/matchd/matchd/engine"
)

// check summarises what a book did with a workload.
type check struct {
	Trades, Traded, Open uint64
}

// runner prepares a workload for one book and returns the timed part, or
// an error if the book cannot run it.
type runner func(cfg engine.Config, cmds []engine.Command) (run func() check, err error)

// runners holds the books; those whose sources are optional
// (i25959341.go, x5487.go) add themselves when scripts/peers.sh builds
// them in.
var runners = map[string]runner{
	"matchd": func(cfg engine.Config, cmds []engine.Command) (func() check, error) {
		return prepareMatchd(cfg, cmds, true)
	},
	// matchd-noprefetch: the engine applying each command as if none were
	// queued behind it (no Engine.Prefetch), as it runs at a light load.
	"matchd-noprefetch": func(cfg engine.Config, cmds []engine.Command) (func() check, error) {
		return prepareMatchd(cfg, cmds, false)
	},
	"geseq":    prepareGeseq,
	"fmstephe": prepareFmstephe,
}

func main() {
	dir := flag.String("cache", os.Getenv("MATCHD_WORKLOAD_CACHE"), "the directory holding the workload files")
	name := flag.String("engine", "matchd", "the book to time: matchd, matchd-noprefetch, geseq, fmstephe, i25959341 or x5487")
	wl := flag.String("workload", "A", "A, B or C")
	distinct := flag.Bool("distinct", false, "give every order its own account (see distinctAccounts)")
	flag.Parse()
	prep, ok := runners[*name]
	if !ok {
		fmt.Fprintf(os.Stderr, "peers: unknown engine %q\n", *name)
		os.Exit(2)
	}
	cfg, cmds, err := load(*dir, *wl)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
	if *distinct {
		cmds = distinctAccounts(cmds)
	}
	run, err := prep(cfg, cmds)
	if err != nil {
		fmt.Printf("%s %s n/a: %v\n", *name, *wl, err)
		return
	}
	runtime.GC()
	debug.SetGCPercent(100)
	start := time.Now()
	c := run()
	d := time.Since(start)
	fmt.Printf("%s %s %.1f ns/cmd trades=%d traded=%d open=%d\n", *name, *wl,
		float64(d.Nanoseconds())/float64(len(cmds)), c.Trades, c.Traded, c.Open)
}

func load(dir, name string) (engine.Config, []engine.Command, error) {
	var cfg engine.Config
	cj, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return cfg, nil, fmt.Errorf("%w (write the workloads first: MATCHD_WORKLOAD_CACHE=%s go test -run '^$' -bench 'Workload(A|B|C)$' -benchtime 1x ./engine)", err, dir)
	}
	if err := json.Unmarshal(cj, &cfg); err != nil {
		return cfg, nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, name+".cmds"))
	if err != nil {
		return cfg, nil, err
	}
	size := int(unsafe.Sizeof(engine.Command{}))
	cmds := make([]engine.Command, len(raw)/size)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(cmds))), len(cmds)*size), raw)
	return cfg, cmds, nil
}

// accounts is how many accounts distinctAccounts spreads orders over.
const accounts = 60_000

// distinctAccounts gives orders accounts by their order ID (the engine
// numbers every accepted order 1, 2, 3, …, and every order of these
// workloads is accepted), so that self-trade prevention, which the other
// books do not have, almost never applies; a cancel is sent by the
// account that owns its order. Only workload A can meet self-trade
// prevention (B never crosses; C's sweeps come from an account with no
// resting orders); 60,000 accounts cost matchd's engine their first use
// and their cache footprint, so the driver uses this only to check A.
func distinctAccounts(cmds []engine.Command) []engine.Command {
	out := make([]engine.Command, len(cmds))
	id := engine.OrderID(0)
	for i, c := range cmds {
		switch c.Kind {
		case engine.CmdNewOrder:
			id++
			c.Account = engine.AccountID(1 + uint64(id-1)%accounts)
		case engine.CmdCancel:
			c.Account = engine.AccountID(1 + uint64(c.OrderID-1)%accounts)
		}
		out[i] = c
	}
	return out
}

// prepareMatchd runs the engine over the workload. With prefetch, it tells
// the engine, before each command, which commands are queued behind it, as
// the server's matching loop does for the rest of a batch from its ring
// (and recovery for the journal it replays).
func prepareMatchd(cfg engine.Config, cmds []engine.Command, prefetch bool) (func() check, error) {
	e, err := engine.New(cfg)
	if err != nil {
		panic(err)
	}
	out := make([]engine.Event, 0, 4096)
	return func() check {
		var c check
		for i := range cmds {
			if prefetch {
				e.PrefetchAhead(cmds, i)
			}
			out = e.Apply(&cmds[i], out[:0])
			for j := range out {
				if out[j].Kind == engine.EvFill {
					c.Trades++
					c.Traded += uint64(out[j].Qty)
				}
			}
		}
		c.Open = uint64(e.OpenOrderCount())
		return c
	}, nil
}
