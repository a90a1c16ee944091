// Command matchload drives matchd with an open-loop order flow and
// reports honest latency percentiles (see package loadtest).
//
//	matchload [--addr HOST:PORT | --matchd BIN [--config F] [--fsync=true]]
//	          [--accounts 1:alice-demo,2:bob-demo]
//	          [--rate 100000] [--duration 15s] [--warmup 3s] [--seed 1]
//	          [--out DIR] [--capacity [--p99 1ms] [--factor 1.5] [--steps 8]]
//	          [--passive 60 --cancel 30 --aggressive 10]
//
// Without --addr it starts its own fresh matchd (--matchd, default the
// matchd beside matchload or on PATH) on a temporary data directory and
// loopback ports, and stops it after: a load test never writes millions
// of orders into a server's data by accident. --addr names a running
// server to load instead (there is no default).
//
// It prints a progress line a second and, at the end, the run's parameters
// and a table of p50 to max per latency kind; --out DIR writes
// DIR/result.json (results and parameters), DIR/latency.svg (log-scaled)
// and DIR/KIND.hgrm for order-to-accept, order-to-fill and
// cancel-to-canceled (HdrHistogram's percentile
// format). It exits 1 if verification fails (an order never answered, a
// trade not reported to both sides) or the server cannot be reached or
// started, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/buildinfo"
	"github.com/matchd/matchd/loadtest"
)

const usageText = `matchload drives matchd with an open-loop order flow and reports latency
percentiles. Without --addr it starts a fresh matchd of its own (a
temporary data directory, loopback ports) and stops it after.

usage: matchload [flags]

`

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("matchload", flag.ContinueOnError)
	addr := fs.String("addr", "", "a running matchd's order-entry address, or a cluster's, comma-separated (default: start a fresh matchd of its own)")
	matchd := fs.String("matchd", "", "the matchd binary to start when --addr is not given (default: beside matchload, or on PATH)")
	config := fs.String("config", "configs/demo.json", "own server: its configuration")
	fsyncOn := fs.Bool("fsync", true, "own server: fsync every group commit (with --addr: what the server does, for the report)")
	version := fs.Bool("version", false, "print the build and exit")
	accounts := fs.String("accounts", "1:alice-demo,2:bob-demo", "sessions: account:token, comma separated")
	rate := fs.Float64("rate", 100_000, "offered commands per second, all sessions together")
	duration := fs.Duration("duration", 15*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 3*time.Second, "warm-up before measuring (excluded)")
	seed := fs.Uint64("seed", 1, "seed of the order flow")
	mid := fs.Int64("mid", 10_000, "mid price in ticks (10000 = AAPL 100.00 in the demo config)")
	inst := fs.Uint("instrument", 1, "instrument id")
	out := fs.String("out", "", "directory for result.json and latency.svg")
	capacity := fs.Bool("capacity", false, "search for the highest sustainable rate, starting at --rate (up while it holds, down if --rate does not)")
	p99 := fs.Duration("p99", time.Millisecond, "capacity: the accept p99 bound")
	factor := fs.Float64("factor", 1.5, "capacity: rate multiplier per step")
	steps := fs.Int("steps", 8, "capacity: most steps")
	wait := fs.Duration("wait", 10*time.Second, "keep trying to reach the server this long")
	passive := fs.Int("passive", 60, "mix: percent passive limit orders near the drifting mid")
	cancels := fs.Int("cancel", 30, "mix: percent cancels of the session's own open orders")
	aggressive := fs.Int("aggressive", 10, "mix: percent aggressive IOC orders that trade")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(os.Stdout, usageText)
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintln(os.Stderr, "matchload --help lists the flags")
		return 2
	}
	if *version {
		fmt.Println(buildinfo.Read().String("matchload"))
		return 0
	}
	var bad []string
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Sprintf("unexpected argument %q (every setting is a flag)", fs.Arg(0)))
	}
	if !(*rate > 0) || math.IsInf(*rate, 0) {
		bad = append(bad, fmt.Sprintf("--rate %v: want a positive number of commands a second", *rate))
	}
	if *duration <= 0 {
		bad = append(bad, fmt.Sprintf("--duration %v: want a positive duration", *duration))
	}
	if *warmup < 0 {
		bad = append(bad, fmt.Sprintf("--warmup %v: want zero or more", *warmup))
	}
	if *capacity && (!(*factor > 1) || *steps < 1 || *p99 <= 0) {
		bad = append(bad, "--capacity: --factor must be above 1, --steps at least 1 and --p99 positive")
	}
	if *addr != "" && *matchd != "" {
		bad = append(bad, "--addr and --matchd: either load a running server or start one, not both")
	}
	fsyncSet := false
	fs.Visit(func(f *flag.Flag) { fsyncSet = fsyncSet || f.Name == "fsync" })
	if len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintln(os.Stderr, "matchload:", b)
		}
		return 2
	}
	var accts []loadtest.Account
	for _, part := range strings.Split(*accounts, ",") {
		id, tok, ok := strings.Cut(part, ":")
		n, err := strconv.ParseUint(id, 10, 32)
		if !ok || err != nil || n == 0 {
			fmt.Fprintf(os.Stderr, "matchload: --accounts: %q is not account:token\n", part)
			return 2
		}
		accts = append(accts, loadtest.Account{ID: engine.AccountID(n), Token: tok})
	}
	if *passive < 0 || *cancels < 0 || *aggressive < 0 || *passive+*cancels+*aggressive == 0 {
		fmt.Fprintln(os.Stderr, "matchload: the mix percentages must be non-negative and not all zero")
		return 2
	}
	params := loadtest.Params{Started: time.Now().UTC().Format(time.RFC3339), Addr: *addr, Server: "external", Fsync: "unknown",
		Rate: *rate, Duration: duration.String(), Warmup: warmup.String(), Seed: *seed, Sessions: len(accts),
		Mix: fmt.Sprintf("%d/%d/%d", *passive, *cancels, *aggressive), Commit: buildinfo.Read().Revision, Go: runtime.Version()}
	if *addr != "" && fsyncSet {
		params.Fsync = onOff(*fsyncOn)
	}
	if *addr == "" {
		srv, err := startOwn(*matchd, *config, *fsyncOn)
		if err != nil {
			fmt.Fprintln(os.Stderr, "matchload:", err)
			return 1
		}
		defer srv.stop()
		*addr = srv.addr
		params.Addr, params.Server, params.Fsync = srv.addr, "own", onOff(*fsyncOn)
		fmt.Printf("matchload: started its own matchd (%s, fsync %s) on %s, data in %s (removed after)\n",
			srv.bin, params.Fsync, srv.addr, srv.data)
	}
	cfg := loadtest.Config{Addr: *addr, Accounts: accts, Rate: *rate, Duration: *duration, Warmup: *warmup,
		Seed: *seed, Mid: engine.Price(*mid), Instrument: engine.InstrumentID(*inst), Progress: os.Stdout,
		PassivePct: *passive, CancelPct: *cancels, AggressivePct: *aggressive}
	ctx := context.Background()
	if err := waitFor(*addr, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "matchload:", err)
		return 1
	}
	if *capacity {
		best, st, err := loadtest.Capacity(ctx, cfg, *factor, *p99, 0.95, *steps)
		if err != nil {
			fmt.Fprintln(os.Stderr, "matchload:", err)
			return 1
		}
		fmt.Printf("highest sustainable rate: %.0f commands/s (accept p99 <= %v, achieved >= 95%% of offered)\n", best, *p99)
		for _, s := range st {
			fmt.Printf("  offered %9.0f/s  achieved %9.0f/s  p99 %9.1f µs  %v\n", s.Offered, s.Achieved, s.P99us, s.OK)
		}
		return 0
	}
	r, err := loadtest.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "matchload:", err)
		return 1
	}
	r.Params = params
	fmt.Println()
	r.Table(os.Stdout)
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "matchload:", err)
			return 1
		}
		title := fmt.Sprintf("matchd latency, fsync %s: %.0f/s offered (%.0f achieved), %d sessions", params.Fsync, r.Offered, r.Achieved, len(accts))
		files := []string{"result.json", "latency.svg"}
		err := r.WriteJSON(filepath.Join(*out, "result.json"))
		if err == nil {
			err = r.WritePlot(filepath.Join(*out, "latency.svg"), title)
		}
		for _, k := range []string{loadtest.KindAccept, loadtest.KindFill, loadtest.KindCancel} {
			if err == nil && r.Hists[k] != nil {
				err = r.WriteHgrm(filepath.Join(*out, k+".hgrm"), k)
				files = append(files, k+".hgrm")
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "matchload:", err)
			return 1
		}
		fmt.Printf("wrote %s in %s\n", strings.Join(files, ", "), *out)
	}
	if !r.OK() {
		return 1
	}
	return 0
}

// waitFor waits until addr accepts connections (a server just started).
func waitFor(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := netDial(addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cannot reach %s: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
