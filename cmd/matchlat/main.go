// Command matchlat measures matchd's latency against this machine's floors,
// all in one run (make latency):
//
//	matchlat [--matchd bin/matchd] [--config configs/demo.json] [--runs 3]
//	         [--rates 10000,50000,100000,200000] [--duration 5s] [--warmup 1s]
//	         [--closed 5000] [--capacity-from 100000] [--capacity-factor 1.25]
//	         [--capacity-steps 8] [--fsync on,off] [--cluster] [--out latency-out]
//
// Each run measures the floors (loopback TCP ping-pong between two
// processes, closed loop and then paced at each open-loop rate, latency
// from the intended send time as in the open loop; write + fdatasync of
// appended 4 KiB blocks on the data directory's filesystem), then, for fsync on and off, starts a fresh
// matchd on an empty data directory and measures one order in flight
// (order → Accepted, cancel → Canceled, raw frames), the open loop at each
// rate (two sessions, latency from each order's intended send time, the
// generator's own lateness beside it, the server's CPU per order from
// /proc), and the capacity: the highest rate whose accept p99 stays within
// 2 ms with at least 99% of it achieved (searched up from --capacity-from,
// or down from it when that rate does not hold). It prints every figure
// next to its floor and as a ratio to it (medians over the runs, with
// their range), checks the goals of docs/BENCHMARKS.md, and writes
// OUT/result.json and OUT/latency.svg. With --cluster (the default) it measures a three-node
// cluster (three matchd processes with --cluster on loopback, fsync on)
// the same way, mode cluster-fsync-on, its CPU the three nodes' together,
// beside the single node: what replication adds. It exits 1 if a run
// failed or its verification did.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/matchd/matchd/internal/buildinfo"
	"github.com/matchd/matchd/internal/testnet"
	"github.com/matchd/matchd/loadtest"
)

func main() { os.Exit(run(os.Args[1:])) }

// options are the command's flags.
type options struct {
	matchd, config, out   string
	runs, closed, steps   int
	rates                 []float64
	duration, warmup      time.Duration
	capFrom, capFactor    float64
	modes                 []bool // fsync on, off
	cluster               bool   // also a three-node cluster, fsync on
	pingN, syncN          int
	p99Bound, minAchieved float64
}

func run(args []string) int {
	fs := flag.NewFlagSet("matchlat", flag.ContinueOnError)
	fs.Usage = func() {} // -h: the flags on stdout below
	echo := fs.String("echo", "", "internal: serve the ping-pong floor on this address and print it")
	o := options{}
	fs.StringVar(&o.matchd, "matchd", "bin/matchd", "the matchd binary to start")
	fs.StringVar(&o.config, "config", "configs/demo.json", "matchd's config file (accounts 1 and 2, instrument 1 at 100.00)")
	fs.StringVar(&o.out, "out", "latency-out", "directory for result.json, latency.svg and the runs' data directories")
	fs.IntVar(&o.runs, "runs", 3, "repetitions; figures are medians with their range")
	fs.IntVar(&o.closed, "closed", 5000, "one-in-flight order/cancel pairs per run")
	rates := fs.String("rates", "10000,50000,100000,200000", "open-loop offered rates, orders/s")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per open-loop rate")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up per open-loop rate (excluded)")
	fs.Float64Var(&o.capFrom, "capacity-from", 100_000, "capacity search: first rate (0 skips the search); stepped up while it holds, down (by the factor squared) if it does not")
	fs.Float64Var(&o.capFactor, "capacity-factor", 1.25, "capacity search: rate multiplier per step")
	fs.IntVar(&o.steps, "capacity-steps", 8, "capacity search: most steps")
	fsync := fs.String("fsync", "on,off", "server modes to measure: on, off or both")
	fs.BoolVar(&o.cluster, "cluster", true, "also measure a three-node cluster (raft, fsync on) on loopback")
	fs.IntVar(&o.pingN, "ping", 20000, "ping-pong round trips per run")
	fs.IntVar(&o.syncN, "syncs", 2000, "fdatasync samples per run")
	version := fs.Bool("version", false, "print the build and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return 0
		}
		return 2
	}
	if *version {
		fmt.Println(buildinfo.Read().String("matchlat"))
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "matchlat: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *echo != "" {
		return serveEcho(*echo)
	}
	o.p99Bound, o.minAchieved = 2000, 0.99
	for _, r := range strings.Split(*rates, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "matchlat: --rates: %q is not a positive rate\n", r)
			return 2
		}
		o.rates = append(o.rates, v)
	}
	for _, m := range strings.Split(*fsync, ",") {
		switch strings.TrimSpace(m) {
		case "on":
			o.modes = append(o.modes, true)
		case "off":
			o.modes = append(o.modes, false)
		default:
			fmt.Fprintf(os.Stderr, "matchlat: --fsync: %q is neither on nor off\n", m)
			return 2
		}
	}
	if o.runs < 1 || o.closed < 10 {
		fmt.Fprintln(os.Stderr, "matchlat: --runs must be >= 1 and --closed >= 10")
		return 2
	}
	if _, err := os.Stat(o.matchd); err != nil {
		fmt.Fprintf(os.Stderr, "matchlat: %v (build it with: go build -o bin/matchd ./cmd/matchd)\n", err)
		return 2
	}
	// The generator's own pauses are part of every figure: keep its
	// collector out of the way (its state is a few maps of integers).
	debug.SetGCPercent(400)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "matchlat:", err)
		return 1
	}
	rep := &report{Machine: machine(), Rates: o.rates}
	failed := false
	for i := range o.runs {
		fmt.Printf("== run %d of %d\n", i+1, o.runs)
		r, err := oneRun(&o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "matchlat:", err)
			failed = true
		}
		if r != nil {
			rep.Runs = append(rep.Runs, r)
		}
	}
	rep.summarize(&o)
	rep.print(os.Stdout)
	if err := rep.writeJSON(filepath.Join(o.out, "result.json")); err != nil {
		fmt.Fprintln(os.Stderr, "matchlat:", err)
		return 1
	}
	if err := rep.writePlot(filepath.Join(o.out, "latency.svg")); err != nil {
		fmt.Fprintln(os.Stderr, "matchlat:", err)
		return 1
	}
	fmt.Printf("wrote %s and %s\n", filepath.Join(o.out, "result.json"), filepath.Join(o.out, "latency.svg"))
	if failed || rep.verifyFailed() {
		return 1
	}
	return 0
}

// serveEcho is the child process of the ping-pong floor.
func serveEcho(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "matchlat:", err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	go func() { // stop with the parent
		bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(0)
	}()
	loadtest.Echo(ln)
	return 0
}

// oneRun is one repetition: the floors, then every server mode.
func oneRun(o *options) (*runResult, error) {
	r := &runResult{Modes: map[string]*modeResult{}}
	var err error
	if r.PingPong, r.PacedEcho, err = echoFloors(o.pingN, o.rates); err != nil {
		return nil, err
	}
	dataRoot, err := filepath.Abs(filepath.Join(o.out, "data"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataRoot, 0o755); err != nil {
		return nil, err
	}
	h, err := loadtest.Fdatasync(dataRoot, o.syncN)
	if err != nil {
		return nil, err
	}
	r.Fdatasync = loadtest.Summarize(h)
	for _, rate := range o.rates {
		if e := r.PacedEcho[rateKey(rate)]; e != nil {
			fmt.Printf("floor: paced loopback echo at %.0f/s: p50 %.1f µs p99 %.1f µs p99.9 %.1f µs\n", rate, e.P50, e.P99, e.P999)
		}
	}
	fmt.Printf("floors: ping-pong p50 %.1f µs p99 %.1f µs p99.9 %.1f µs; fdatasync p50 %.1f µs p99 %.1f µs p99.9 %.1f µs\n",
		r.PingPong.P50, r.PingPong.P99, r.PingPong.P999, r.Fdatasync.P50, r.Fdatasync.P99, r.Fdatasync.P999)
	for _, fsync := range o.modes {
		m, err := measureMode(o, dataRoot, fsync, false)
		if err != nil {
			return r, err
		}
		r.Modes[modeName(fsync)] = m
	}
	if o.cluster {
		m, err := measureMode(o, dataRoot, true, true)
		if err != nil {
			return r, err
		}
		r.Modes[clusterMode] = m
	}
	return r, nil
}

// clusterMode names the three-node cluster's results.
const clusterMode = "cluster-fsync-on"

// modeOf names a mode's results: the single node's by fsync, or the
// cluster's.
func modeOf(fsync, cluster bool) string {
	if cluster {
		return clusterMode
	}
	return modeName(fsync)
}

func modeName(fsync bool) string {
	if fsync {
		return "fsync-on"
	}
	return "fsync-off"
}

// echoFloors starts the echo child, measures n closed-loop round trips and
// then, for each rate, 3 s of paced (open-loop) echoes, and stops it.
func echoFloors(n int, rates []float64) (*loadtest.LatencySummary, map[string]*loadtest.LatencySummary, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(self, "--echo", "127.0.0.1:0")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, nil, fmt.Errorf("echo server: %w", err)
	}
	addr = strings.TrimSpace(addr)
	h, err := loadtest.PingPong(addr, n)
	if err != nil {
		return nil, nil, err
	}
	paced := map[string]*loadtest.LatencySummary{}
	for _, rate := range rates {
		ph, err := loadtest.PacedEcho(addr, rate, 3*time.Second)
		if err != nil {
			return nil, nil, err
		}
		paced[rateKey(rate)] = loadtest.Summarize(ph)
	}
	return loadtest.Summarize(h), paced, nil
}

func rateKey(rate float64) string { return strconv.FormatFloat(rate, 'f', 0, 64) }

// server is the matchd processes this run started: one, or a cluster's
// three. addr is their order addresses, comma-separated (the load
// generator's sessions go to the leader).
type server struct {
	nodes []*process
	addr  string
}

// process is one matchd.
type process struct {
	cmd *exec.Cmd
	dir string
	log *os.File
}

func startServer(o *options, dataRoot string, fsync, cluster bool) (*server, error) {
	n := 1
	if cluster {
		n = 3
	}
	var orders, peers []string
	for i := range n {
		a, err := testnet.PickAddr()
		if err != nil {
			return nil, err
		}
		p, err := testnet.PickAddr()
		if err != nil {
			return nil, err
		}
		orders = append(orders, a)
		peers = append(peers, fmt.Sprintf("%d=%s/%s", i+1, p, a))
	}
	s := &server{addr: strings.Join(orders, ",")}
	name := modeOf(fsync, cluster)
	for i := range n {
		dir, err := os.MkdirTemp(dataRoot, name+"-")
		if err != nil {
			s.stop()
			return nil, err
		}
		logf, err := os.Create(dir + ".log")
		if err != nil {
			s.stop()
			return nil, err
		}
		args := []string{"--config", o.config, "--data", dir, "--listen", orders[i], "--admin", "", "--web", "",
			"--fsync=" + strconv.FormatBool(fsync)}
		if cluster {
			args = append(args, "--cluster", strings.Join(peers, ","), "--node-id", strconv.Itoa(i+1))
		}
		cmd := exec.Command(o.matchd, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			s.stop()
			return nil, err
		}
		s.nodes = append(s.nodes, &process{cmd: cmd, dir: dir, log: logf})
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range orders {
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				s.stop()
				return nil, fmt.Errorf("matchd did not start on %s (logs beside %s)", addr, dataRoot)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return s, nil
}

// stop ends the servers with SIGTERM and removes their data (and their
// logs, if they stopped cleanly).
func (s *server) stop() error {
	var errs []error
	for _, p := range s.nodes {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range s.nodes {
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			err = errors.Join(errors.New("matchd did not stop within 30 s of SIGTERM"), <-done)
		}
		p.log.Close()
		os.RemoveAll(p.dir)
		if err == nil {
			os.Remove(p.log.Name())
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cpu returns the servers' user+system CPU time so far, from /proc: for a
// cluster, the three nodes' together.
func (s *server) cpu() time.Duration {
	var total time.Duration
	for _, p := range s.nodes {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces) in parentheses.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	return total
}

var accounts = []loadtest.Account{{ID: 1, Token: "alice-demo"}, {ID: 2, Token: "bob-demo"}}

// measureMode starts a fresh matchd (or cluster) with fsync on or off
// and measures it.
func measureMode(o *options, dataRoot string, fsync, cluster bool) (*modeResult, error) {
	srv, err := startServer(o, dataRoot, fsync, cluster)
	if err != nil {
		return nil, err
	}
	name := modeOf(fsync, cluster)
	m := &modeResult{}
	err = func() error {
		ctx := context.Background()
		acc, cxl, err := loadtest.ClosedLoop(ctx, srv.addr, accounts[0], 1, 9_500, o.closed)
		if err != nil {
			return fmt.Errorf("closed loop: %w", err)
		}
		m.ClosedAccept, m.ClosedCancel = loadtest.Summarize(acc), loadtest.Summarize(cxl)
		fmt.Printf("%s: one in flight: accept p50 %.1f p99 %.1f p99.9 %.1f µs; cancel p50 %.1f p99 %.1f p99.9 %.1f µs\n",
			name, m.ClosedAccept.P50, m.ClosedAccept.P99, m.ClosedAccept.P999,
			m.ClosedCancel.P50, m.ClosedCancel.P99, m.ClosedCancel.P999)
		for i, rate := range o.rates {
			cfg := loadtest.Config{Addr: srv.addr, Accounts: accounts, Rate: rate, Warmup: o.warmup,
				Duration: o.duration, Seed: uint64(i + 1)}
			c0, t0 := srv.cpu(), time.Now()
			r, err := loadtest.Run(ctx, cfg)
			if err != nil {
				return fmt.Errorf("open loop at %.0f/s: %w", rate, err)
			}
			cpu, wall := srv.cpu()-c0, time.Since(t0)
			ol := &openResult{Rate: rate, Achieved: r.Achieved, Sent: r.Sent, Errors: r.Errors,
				Accept: r.Latency[loadtest.KindAccept], Cancel: r.Latency[loadtest.KindCancel],
				Lateness: r.Latency[loadtest.KindLateness]}
			if r.Sent > 0 {
				ol.CPUPerOrderUs = float64(cpu.Microseconds()) / float64(r.Sent)
				ol.CPUCores = cpu.Seconds() / wall.Seconds()
			}
			m.Open = append(m.Open, ol)
			fmt.Printf("%s: open loop %7.0f/s: achieved %7.0f/s accept p50 %8.1f p99 %8.1f p99.9 %8.1f µs; generator lateness p99 %.1f µs; server CPU %.2f µs/order %s\n",
				name, rate, r.Achieved, ol.Accept.P50, ol.Accept.P99, ol.Accept.P999, ol.Lateness.P99,
				ol.CPUPerOrderUs, verdict(r))
		}
		if o.capFrom > 0 {
			cfg := loadtest.Config{Addr: srv.addr, Accounts: accounts, Rate: o.capFrom, Warmup: o.warmup,
				Duration: min(o.duration, 3*time.Second), Seed: 99}
			best, steps, err := loadtest.Capacity(ctx, cfg, o.capFactor, time.Duration(o.p99Bound)*time.Microsecond,
				o.minAchieved, o.steps)
			if err != nil {
				return fmt.Errorf("capacity: %w", err)
			}
			m.Capacity, m.CapacitySteps = best, steps
			fmt.Printf("%s: capacity (accept p99 <= 2 ms, >= 99%% achieved): %.0f/s\n", name, best)
		}
		return nil
	}()
	if serr := srv.stop(); serr != nil && err == nil {
		err = fmt.Errorf("stopping matchd: %w", serr)
	}
	runtime.GC()
	return m, err
}

func verdict(r *loadtest.Result) string {
	if r.OK() {
		return "verified"
	}
	return "VERIFICATION FAILED: " + strings.Join(r.Errors, "; ")
}
