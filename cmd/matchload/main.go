// Command matchload drives a running matchd with an open-loop order flow
// and reports honest latency percentiles (see package loadtest).
//
//	matchload [--addr 127.0.0.1:7001] [--accounts 1:alice-demo,2:bob-demo]
//	          [--rate 100000] [--duration 15s] [--warmup 3s] [--seed 1]
//	          [--out DIR] [--capacity [--p99 1ms] [--factor 1.5] [--steps 8]]
//	          [--passive 60 --cancel 30 --aggressive 10]
//
// It prints a progress line a second and, at the end, a table of p50 to
// max per latency kind; --out DIR writes DIR/result.json and
// DIR/latency.svg. It exits 1 if verification fails (an order never
// answered, a trade not reported to both sides) or the server cannot be
// reached, 2 on bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/loadtest"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("matchload", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:7001", "matchd order-entry address")
	accounts := fs.String("accounts", "1:alice-demo,2:bob-demo", "sessions: account:token, comma separated")
	rate := fs.Float64("rate", 100_000, "offered commands per second, all sessions together")
	duration := fs.Duration("duration", 15*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 3*time.Second, "warm-up before measuring (excluded)")
	seed := fs.Uint64("seed", 1, "seed of the order flow")
	mid := fs.Int64("mid", 10_000, "mid price in ticks (10000 = AAPL 100.00 in the demo config)")
	inst := fs.Uint("instrument", 1, "instrument id")
	out := fs.String("out", "", "directory for result.json and latency.svg")
	capacity := fs.Bool("capacity", false, "search for the highest sustainable rate, starting at --rate")
	p99 := fs.Duration("p99", time.Millisecond, "capacity: the accept p99 bound")
	factor := fs.Float64("factor", 1.5, "capacity: rate multiplier per step")
	steps := fs.Int("steps", 8, "capacity: most steps")
	wait := fs.Duration("wait", 10*time.Second, "keep trying to reach the server this long")
	passive := fs.Int("passive", 60, "mix: percent passive limit orders near the drifting mid")
	cancels := fs.Int("cancel", 30, "mix: percent cancels of the session's own open orders")
	aggressive := fs.Int("aggressive", 10, "mix: percent aggressive IOC orders that trade")
	if err := fs.Parse(args); err != nil {
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
	fmt.Println()
	r.Table(os.Stdout)
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "matchload:", err)
			return 1
		}
		title := fmt.Sprintf("matchd latency at %.0f/s offered (%.0f achieved), %d sessions", r.Offered, r.Achieved, len(accts))
		if err := r.WriteJSON(filepath.Join(*out, "result.json")); err != nil {
			fmt.Fprintln(os.Stderr, "matchload:", err)
			return 1
		}
		if err := r.WritePlot(filepath.Join(*out, "latency.svg"), title); err != nil {
			fmt.Fprintln(os.Stderr, "matchload:", err)
			return 1
		}
		fmt.Printf("wrote %s and %s\n", filepath.Join(*out, "result.json"), filepath.Join(*out, "latency.svg"))
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
