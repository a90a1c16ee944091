// Command matchd is the matching engine server.
//
//	matchd [--config configs/demo.json] [--data ./data] [--listen 127.0.0.1:7001]
//	       [--fsync=true] [--snapshot-every 1000000] [--snapshot-interval 5m]
//	       [--log-format text|json] [--max-conns 10000] [--login-timeout 5s]
//	       [--heartbeat 1s] [--idle-timeout 15s] [--outbound-limit 4194304]
//	       [--cpuprofile FILE] [--admin 127.0.0.1:7002]
//
// Every flag can also come from the environment (MATCHD_CONFIG,
// MATCHD_DATA, MATCHD_LISTEN, MATCHD_FSYNC, MATCHD_LOG_FORMAT); a flag on the
// command line wins. On start it recovers the engine from the data
// directory, then serves the order-entry protocol (docs/PROTOCOL.md). On
// SIGINT or SIGTERM it stops accepting, says Goodbye to every session, lets
// everything submitted become durable, takes a final snapshot and exits 0.
// If the journal fails it stops acknowledging and exits 1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/engine/pipeline"
	"github.com/matchd/matchd/persist"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(args []string) int {
	fs := flag.NewFlagSet("matchd", flag.ContinueOnError)
	configPath := fs.String("config", envOr("MATCHD_CONFIG", "configs/demo.json"), "configuration file (accounts, instruments)")
	dataDir := fs.String("data", envOr("MATCHD_DATA", "./data"), "data directory (journal and snapshots)")
	listen := fs.String("listen", envOr("MATCHD_LISTEN", "127.0.0.1:7001"), "order-entry address")
	adminAddr := fs.String("admin", envOr("MATCHD_ADMIN", "127.0.0.1:7002"), "admin address: /healthz, /readyz, /debug/pprof/ (empty: off)")
	defFsync, _ := strconv.ParseBool(envOr("MATCHD_FSYNC", "true"))
	fsync := fs.Bool("fsync", defFsync, "fsync every group commit; false is UNSAFE: acknowledged orders can be lost in a machine crash")
	snapEvery := fs.Uint64("snapshot-every", 1_000_000, "take a snapshot after this many commands")
	snapInterval := fs.Duration("snapshot-interval", 5*time.Minute, "take a snapshot at least this often when busy")
	logFormat := fs.String("log-format", envOr("MATCHD_LOG_FORMAT", "text"), "log format: text or json")
	maxConns := fs.Int("max-conns", 10_000, "most concurrent connections")
	loginTimeout := fs.Duration("login-timeout", 5*time.Second, "time a new connection has to log in")
	heartbeat := fs.Duration("heartbeat", time.Second, "send a heartbeat after this long without sending")
	idleTimeout := fs.Duration("idle-timeout", 15*time.Second, "end sessions that send nothing for this long")
	outbound := fs.Int("outbound-limit", 4<<20, "bytes of unread responses before a client is disconnected")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until shutdown")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var log *slog.Logger
	switch *logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	case "json":
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	default:
		fmt.Fprintf(os.Stderr, "matchd: --log-format %q: want text or json\n", *logFormat)
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "matchd:", err)
			return 2
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log.Info("matchd: starting", "config", *configPath, "data", *dataDir, "listen", *listen, "fsync", *fsync,
		"instruments", len(cfg.Engine.Instruments), "accounts", len(cfg.Accounts))
	if !*fsync {
		log.Warn("matchd: FSYNC IS OFF: acknowledged orders can be lost if the machine crashes. Use only for benchmarks.")
	}

	adm := newAdmin()
	if *adminAddr != "" {
		aa, err := adm.listen(*adminAddr)
		if err != nil {
			log.Error("matchd: cannot listen on the admin address", "err", err)
			return 1
		}
		log.Info("matchd: admin endpoints", "admin", aa.String())
		defer adm.srv.Close()
	}
	adm.setReady(false, "recovering")
	store, err := persist.Open(*dataDir, cfg.Engine, persist.Options{NoSync: !*fsync, Logger: log})
	if err != nil {
		log.Error("matchd: cannot open the data directory", "err", err)
		return 1
	}
	defer store.Close()
	e, st, err := store.Recover()
	if err != nil {
		log.Error("matchd: recovery failed; refusing to start", "err", err)
		return 1
	}

	accounts := make([]api.Account, len(cfg.Accounts))
	for i, a := range cfg.Accounts {
		accounts[i] = api.Account{ID: a.ID, Name: a.Name, Token: a.Token}
	}
	var dir []wire.InstrumentInfo
	for _, in := range cfg.Engine.Instruments {
		dir = append(dir, wire.InstrumentInfo{ID: in.ID, Symbol: in.Symbol, TickSize: in.TickSize, LotSize: in.LotSize})
	}
	srv, err := api.NewServer(api.Config{Listen: *listen, Logger: log, Instruments: dir, MaxConns: *maxConns,
		LoginTimeout: *loginTimeout, Heartbeat: *heartbeat, IdleTimeout: *idleTimeout, OutboundLimit: *outbound}, accounts)
	if err != nil {
		log.Error("matchd: server", "err", err)
		return 2
	}
	p, err := pipeline.New(e, store, srv.Deliver, pipeline.Config{})
	if err != nil {
		log.Error("matchd: pipeline", "err", err)
		return 2
	}
	srv.Attach(p)
	sn, err := persist.NewSnapshotter(store, e, p.Durable, persist.SnapshotterConfig{
		Every: engine.Seq(*snapEvery), Interval: *snapInterval})
	if err != nil {
		log.Error("matchd: snapshotter", "err", err)
		return 1
	}
	addr, err := srv.Listen()
	if err != nil {
		log.Error("matchd: cannot listen", "err", err)
		return 1
	}
	p.Start()
	sn.Start()
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	adm.serve(promhttp.HandlerFor(newRegistry(newCollector(p, srv, sn, st)), promhttp.HandlerOpts{}),
		bookHandler(srv, cfg.Engine.Instruments))
	adm.setReady(true, "")
	log.Info("matchd: ready", "orders", addr.String(), "recovered_to_seq", st.LastSeq,
		"recovery", st.Duration, "replayed", st.Replayed)
	fmt.Fprintf(os.Stderr, "\nmatchd is listening for orders on %s (protocol: docs/PROTOCOL.md).\n"+
		"Admin: http://%s/healthz, /readyz, /metrics, /api/book/SYMBOL, /debug/pprof/\n"+
		"Try:   go run ./cmd/matchctl --addr %s --account 1 --token alice-demo top AAPL\n"+
		"Demo logins: account 1 token alice-demo, account 2 token bob-demo (local use only).\n"+
		"Press Ctrl-C to stop.\n\n", addr, *adminAddr, addr)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	code := 0
	select {
	case s := <-sig:
		log.Info("matchd: stopping", "signal", s.String())
	case <-p.Failed():
		adm.setReady(false, "journal failed")
		log.Error("matchd: journal failed; stopping without acknowledging anything more", "err", p.Err())
		code = 1
	case err := <-served:
		log.Error("matchd: accept loop ended", "err", err)
		code = 1
	}
	adm.setReady(false, "shutting down")
	srv.Shutdown(5 * time.Second)
	if err := p.Close(); err != nil {
		log.Error("matchd: pipeline", "err", err)
		code = 1
	}
	sn.Close()
	st2 := &p.Stats
	if n := st2.Syncs.Load(); n > 0 {
		log.Info("matchd: pipeline", "requests", st2.Requests.Load(), "batches", st2.Batches.Load(), "syncs", n,
			"sync_mean", time.Duration(st2.SyncNanos.Load()/n),
			"sync_p50_le", time.Duration(pipeline.Percentile(&st2.SyncLatency, 0.5))*time.Microsecond,
			"sync_p99_le", time.Duration(pipeline.Percentile(&st2.SyncLatency, 0.99))*time.Microsecond,
			"batch_p50_le", pipeline.Percentile(&st2.BatchSizes, 0.5), "batch_p99_le", pipeline.Percentile(&st2.BatchSizes, 0.99))
	}
	if code == 0 {
		start := time.Now()
		if err := store.SnapshotEngine(p.Engine()); err != nil && !errors.Is(err, persist.ErrClosed) {
			log.Error("matchd: final snapshot failed", "err", err)
			code = 1
		} else {
			log.Info("matchd: final snapshot", "seq", p.Engine().LastSeq(), "duration", time.Since(start))
		}
	}
	log.Info("matchd: stopped", "exit", code)
	return code
}
