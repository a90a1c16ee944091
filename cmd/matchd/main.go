// Command matchd is the matching engine server.
//
//	matchd [--config configs/demo.json] [--data ./data] [--listen 127.0.0.1:7001]
//	       [--fsync=true] [--snapshot-every 1000000] [--snapshot-interval 5m]
//	       [--log-format text|json] [--max-conns 10000] [--login-timeout 5s]
//	       [--heartbeat 1s] [--idle-timeout 15s] [--outbound-limit 4194304]
//	       [--outbound-budget 268435456] [--session-credit 256]
//	       [--max-prelogin 4096] [--max-prelogin-per-addr 1024]
//	       [--cpuprofile FILE] [--admin 127.0.0.1:7002] [--admin-token T]
//	       [--admin-hosts H,...] [--shutdown-wait 5s]
//
// Every setting can come from its flag, the environment variable
// MATCHD_<FLAG> (upper case, '-' as '_', e.g. MATCHD_OUTBOUND_LIMIT) or the
// config file's "server" object (e.g. "server": {"listen": "0.0.0.0:7001"}),
// in that order of precedence. Everything is checked at start, and every
// problem is reported at once. On start it recovers the engine from the
// data directory, then serves the order-entry protocol (docs/PROTOCOL.md).
// On SIGINT or SIGTERM it stops accepting, says Goodbye to every session,
// lets everything submitted become durable, takes a final snapshot and
// exits 0.
//
// Exit status (docs/OPERATIONS.md):
//
//	0  stopped on a signal, everything answered and snapshotted
//	1  fail-stop while serving (the journal or the store failed: a write
//	   or sync error, corruption found, a full disk), or the environment
//	   refused at start (cannot bind a port, cannot read the data
//	   directory, cannot write the CPU profile)
//	2  bad settings or usage: nothing was started
//	3  the data directory was refused: not a store, corrupt, acknowledged
//	   commands missing, or it disagrees with the config; nothing was
//	   changed
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/api/web"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/buildinfo"
	"github.com/matchd/matchd/node"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
	"github.com/matchd/matchd/replica"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"net/http"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT says otherwise (docs/OPERATIONS.md).
const defaultMemoryLimit = 768 << 20

// Exit statuses.
const (
	exitOK       = 0
	exitFailed   = 1
	exitSettings = 2
	exitData     = 3
)

// checkFileLimit says at start whether the process may open enough file
// descriptors for --max-conns (plus the store's and the admin port's):
// running out makes accepts fail (they are retried, and counted), not the
// server stop. Go raises the soft limit to the hard one at start.
func checkFileLimit(log *slog.Logger, maxConns int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	const reserve = 256 // Pebble's files, the admin port, the profile
	if need := uint64(maxConns) + reserve; rl.Cur < need {
		log.Warn("matchd: the file descriptor limit is below --max-conns; connections past it wait in the backlog "+
			"until others close (raise ulimit -n, or lower --max-conns)",
			"nofile", rl.Cur, "max_conns", maxConns, "needed", need)
		return
	}
	log.Info("matchd: file descriptors", "nofile", rl.Cur, "max_conns", maxConns)
}

// refusedData reports whether err is the data directory's refusal (as
// opposed to the environment's).
func refusedData(err error) bool {
	return errors.Is(err, persist.ErrCorrupt) || errors.Is(err, persist.ErrNotStore) ||
		errors.Is(err, persist.ErrLost) || errors.Is(err, node.ErrConfigMismatch)
}

// defaultConfig is the config file used without --config: the demo's,
// relative to the repository.
const defaultConfig = "configs/demo.json"

func run(args []string) int {
	st, cfg, err := loadSettings(args, os.Getenv, os.Stderr)
	switch {
	case errors.Is(err, errHelp):
		fmt.Fprint(os.Stdout, helpText)
		fs := (&settings{}).flags(os.Stdout)
		fs.PrintDefaults()
		return exitOK
	case errors.Is(err, errUsage):
		return exitSettings
	case st != nil && st.version:
		fmt.Println(buildinfo.Read().String("matchd"))
		return exitOK
	case err != nil:
		fmt.Fprintf(os.Stderr, "matchd: cannot start:\n%v\n", err)
		if st != nil && st.config == defaultConfig && errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "matchd: without --config it reads %s, relative to the current directory (the repository's demo);\n"+
				"give your own with --config FILE or MATCHD_CONFIG=FILE (docs/OPERATIONS.md, \"Settings\")\n", defaultConfig)
		}
		return exitSettings
	}
	var log *slog.Logger
	if st.logFormat == "json" {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	} else {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if st.cpuProfile != "" {
		f, err := os.Create(st.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "matchd:", err)
			return exitFailed
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	log.Info("matchd: starting", append(st.logAttrs(), "instruments", len(cfg.Engine.Instruments), "accounts", len(cfg.Accounts))...)
	if !st.fsync {
		log.Warn("matchd: FSYNC IS OFF: acknowledged orders can be lost if the machine crashes. Use only for benchmarks.")
	}

	var hosts []string
	for _, h := range strings.Split(st.adminHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	adm := newAdmin(st.adminToken, hosts)
	if st.admin != "" {
		aa, err := adm.listen(st.admin)
		if err != nil {
			log.Error("matchd: cannot listen on the admin address", "err", err)
			return exitFailed
		}
		st.adminAddr = aa.String()
		log.Info("matchd: admin endpoints", "admin", aa.String())
		defer adm.srv.Close()
	}
	// Caught from here on: a SIGTERM that arrives as soon as the server
	// says it is ready (a supervisor, a test) must stop it gracefully,
	// not kill it.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	webConns := 0
	if st.web != "" {
		webConns = st.webMaxStreams + 256
	}
	checkFileLimit(log, st.maxConns+webConns)
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit makes the collector work harder as the heap nears
		// it, so memory freed after a spike (sessions cut off, long
		// answers) is given back before the heap doubles.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	for {
		code, again := serveNode(log, st, cfg, adm, sig, webConns)
		if !again {
			log.Info("matchd: stopped", "exit", code)
			return code
		}
	}
}

// serveNode opens, runs and closes the node (and its web view) once. again
// says it stopped because a replica was deposed: it must start again from
// what is committed.
func serveNode(log *slog.Logger, st *settings, cfg *config, adm *admin, sig chan os.Signal, webConns int) (code int, again bool) {
	adm.setReady(false, "recovering")
	accounts := make([]api.Account, len(cfg.Accounts))
	for i, a := range cfg.Accounts {
		accounts[i] = api.Account{ID: a.ID, Name: a.Name, Token: a.Token}
	}
	ac := st.apiConfig()
	for _, in := range cfg.Engine.Instruments {
		ac.Instruments = append(ac.Instruments, wire.InstrumentInfo{ID: in.ID, Symbol: in.Symbol, TickSize: in.TickSize, LotSize: in.LotSize})
	}
	nc := node.Config{Dir: st.data, Engine: cfg.Engine, Accounts: accounts, API: ac,
		Store:     persist.Options{NoSync: !st.fsync},
		Snapshots: persist.SnapshotterConfig{Every: engine.Seq(st.snapEvery), Interval: st.snapInterval},
		Logger:    log}
	if len(st.peers) > 0 {
		// The raft log is the durable copy (synced with --fsync); the
		// local journal holds committed commands only and is rebuilt from
		// the raft log after a crash, so it is not synced itself.
		nc.Cluster = &replica.Config{ID: st.nodeID, Peers: st.peers, Fsync: st.fsync, Join: st.join}
		if d, err := time.ParseDuration(os.Getenv("MATCHD_FAULT_SLOW_RAFT_SYNC")); err == nil && d > 0 {
			// Fault injection for tests: a slow disk under the raft log.
			log.Warn("matchd: FAULT INJECTED: every synced raft log write is slowed", "by", d)
			nc.Cluster.SlowSync = d
		}
		nc.Store.NoSync, nc.Store.Replicated = true, true
	}
	n, err := node.Open(nc)
	if err != nil {
		if refusedData(err) {
			log.Error("matchd: the data directory is refused; nothing was changed", "data", st.data, "err", err)
			return exitData, false
		}
		log.Error("matchd: cannot start", "err", err)
		return exitFailed, false
	}
	rec := n.Recovery()
	warnUnclean(log, n.Store(), rec)
	p := n.Pipeline()
	n.Start()
	reg := newRegistry(newCollector(p, n.Server(), n.Snapshotter(), n.Store(), rec))
	if r := n.Replica(); r != nil {
		reg.MustRegister(newClusterCollector(r))
	}
	adm.serve(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), bookHandler(n.Server(), cfg.Engine.Instruments))
	adm.cluster.Store(n.Replica())
	var webAddr net.Addr
	var webSrv *http.Server
	if st.web != "" {
		hub, err := web.New(web.Config{Instruments: cfg.Engine.Instruments, TickerWindow: st.webTickerWindow,
			MaxStreams: st.webMaxStreams, StreamQueue: st.webStreamQueue, StreamBytes: st.webStreamBytes, Token: st.adminToken, Logger: log,
			Panel: panelOf(p, n.Server(), st.fsync)}, n.Server())
		if err == nil {
			webAddr, webSrv, err = listenWeb(st.web, hub, webConns)
		}
		if err != nil {
			log.Error("matchd: cannot serve the web view", "err", err)
			n.Close(st.shutdownWait)
			return exitFailed, false
		}
		hub.Start()
		defer hub.Close()
		defer webSrv.Close()
		log.Info("matchd: web view", "web", "http://"+webAddr.String()+"/")
	}
	adm.setReady(true, "")
	addr := n.Addr()
	log.Info("matchd: ready", "orders", addr.String(), "recovered_to_seq", rec.LastSeq,
		"recovery", rec.Duration, "replayed", rec.Replayed)
	fmt.Fprint(os.Stderr, banner(addr, st, cfg, webAddr))

	code = exitOK
	select {
	case s := <-sig:
		log.Info("matchd: stopping", "signal", s.String())
		adm.setReady(false, "shutting down")
	case <-n.Failed():
		if replica.NeedsRestart(n.Err()) {
			adm.setReady(false, "restarting: "+n.Err().Error())
			log.Warn("matchd: the replica restarts from what the cluster committed", "why", n.Err())
			n.Close(st.shutdownWait)
			return exitOK, true
		}
		adm.setReady(false, "failed: "+n.Err().Error())
		if errors.Is(n.Err(), replica.ErrRemoved) {
			log.Error("matchd: this node was removed from the cluster; exiting 1 (to bring the machine back, start it with a new data directory, a new --node-id and --join, and add it: matchctl cluster add)")
			n.Close(st.shutdownWait)
			return exitFailed, false
		}
		log.Error("matchd: FAIL-STOP: nothing more is acknowledged; every session gets Goodbye 8; exiting 1 without a snapshot "+
			"(the journal on disk is what the next start recovers)", "err", n.Err())
		code = exitFailed
	}
	if err := n.Close(st.shutdownWait); err != nil {
		log.Error("matchd: shutdown", "err", err)
		code = exitFailed
	}
	st2 := p.Metrics()
	if k := st2.Syncs; k > 0 {
		log.Info("matchd: pipeline", "requests", st2.Requests, "batches", st2.Batches, "commits", k,
			"await_mean", time.Duration(st2.SyncNanos/k),
			"await_p50_le", time.Duration(pipeline.Percentile(&st2.SyncLatency, 0.5))*time.Microsecond,
			"await_p99_le", time.Duration(pipeline.Percentile(&st2.SyncLatency, 0.99))*time.Microsecond,
			"batch_p50_le", pipeline.Percentile(&st2.BatchSizes, 0.5), "batch_p99_le", pipeline.Percentile(&st2.BatchSizes, 0.99))
	}
	return code, false
}
