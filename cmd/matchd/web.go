package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/api/web"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
)

// helpText opens matchd --help; the settings follow it.
const helpText = `matchd is the matching engine server (README.md, docs/OPERATIONS.md).

usage: matchd [settings]

Every setting can also come from the environment (MATCHD_<NAME>, e.g.
MATCHD_LISTEN) or the config file's "server" object, in that order of
precedence after the command line.

Exit status: 0 stopped cleanly (or --help, --version), 1 failed while
serving or could not bind, 2 bad settings, 3 the data directory refused.

Settings:
`

// listenWeb binds the web view's address and serves the hub there, at
// most maxConns connections at once (more are closed at once), idle
// keep-alive connections closed after a minute.
func listenWeb(addr string, hub *web.Hub, maxConns int) (net.Addr, *http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: hub.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		MaxHeaderBytes: 16 << 10}
	go srv.Serve(&limitListener{Listener: ln, free: make(chan struct{}, maxConns)})
	return ln.Addr(), srv, nil
}

// limitListener accepts at most cap(free) connections at once; one over
// is closed as soon as it is accepted.
type limitListener struct {
	net.Listener
	free chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.free <- struct{}{}:
			return &limitConn{Conn: c, free: l.free}, nil
		default:
			c.Close()
		}
	}
}

type limitConn struct {
	net.Conn
	free chan struct{}
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() { <-c.free })
	return c.Conn.Close()
}

// panelOf reads the server panel's figures from the counters /metrics
// reads.
func panelOf(p *pipeline.Pipeline, srv *api.Server, fsync bool) func() web.Panel {
	return func() web.Panel {
		st := p.Metrics()
		ss := srv.Metrics()
		var cmds int64
		for k := range st.Commands {
			cmds += st.Commands[k][0] + st.Commands[k][1]
		}
		return web.Panel{Sessions: int(ss.Sessions), Connections: int(ss.Connections), Subscriptions: int(ss.Subscriptions),
			Commands: cmds, Fills: st.Fills, Sequenced: int64(p.Sequenced()), Durable: int64(p.Durable()),
			AckP50:  pipeline.Percentile(&ss.AckLatency, 0.5),
			AckP99:  pipeline.Percentile(&ss.AckLatency, 0.99),
			AckP999: pipeline.Percentile(&ss.AckLatency, 0.999),
			SyncP50: pipeline.Percentile(&st.SyncLatency, 0.5), SyncP99: pipeline.Percentile(&st.SyncLatency, 0.99),
			Fsync: fsync}
	}
}

// warnUnclean says at start when the last stop was not clean: a clean
// stop ends with a snapshot of everything, so commands after the newest
// snapshot mean the server was killed or crashed (or failed) and
// recovery replayed them from the journal.
func warnUnclean(log *slog.Logger, store *persist.Store, rec persist.RecoveryStats) {
	if store == nil || rec.LastSeq == 0 {
		return
	}
	snaps, err := store.Snapshots()
	if err != nil || len(snaps) == 0 {
		return
	}
	if newest := snaps[len(snaps)-1].Seq; newest < rec.LastSeq {
		log.Warn("matchd: the last stop was not clean (killed, crashed or failed); the commands after the newest snapshot were recovered from the journal",
			"newest_snapshot_seq", newest, "recovered_to_seq", rec.LastSeq, "commands_after_snapshot", rec.LastSeq-newest,
			"replayed", rec.Replayed)
	}
}

// banner is what a person starting matchd reads: the real addresses, the
// configured accounts, and a command to try.
func banner(orders net.Addr, st *settings, cfg *config, webAddr net.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nmatchd is listening for orders on %s (protocol: docs/PROTOCOL.md).\n", orders)
	if webAddr != nil {
		fmt.Fprintf(&b, "Web view: http://%s/  (market data: http://%s/api/v1/instruments, docs/HTTP.md)\n", webAddr, webAddr)
	}
	if st.admin != "" {
		fmt.Fprintf(&b, "Admin:    http://%s/healthz, /readyz, /metrics, /api/book/SYMBOL, /debug/pprof/\n", st.adminAddr)
	}
	operators := map[engine.AccountID]bool{}
	for _, a := range cfg.Engine.Accounts {
		operators[a.ID] = a.Operator
	}
	demo := st.config == defaultConfig
	var names []string
	for _, a := range cfg.Accounts {
		s := fmt.Sprintf("%d %s", a.ID, a.Name)
		if demo {
			s += " (token " + a.Token + ")"
		}
		if operators[a.ID] {
			s += " [operator]"
		}
		names = append(names, s)
	}
	fmt.Fprintf(&b, "Accounts: %s\n", strings.Join(names, ", "))
	if len(cfg.Accounts) > 0 {
		a := cfg.Accounts[0]
		for _, x := range cfg.Accounts {
			if !operators[x.ID] {
				a = x
				break
			}
		}
		token := "TOKEN"
		if demo {
			token = a.Token
		}
		sym := "SYMBOL"
		if len(cfg.Engine.Instruments) > 0 {
			sym = cfg.Engine.Instruments[0].Symbol
		}
		fmt.Fprintf(&b, "Try:      go run ./cmd/matchctl --addr %s --account %d --token %s top %s\n", orders, a.ID, token, sym)
	}
	if demo {
		b.WriteString("These are the demo's accounts and tokens (configs/demo.json): for local use only.\n")
	}
	b.WriteString("Press Ctrl-C to stop.\n\n")
	return b.String()
}
