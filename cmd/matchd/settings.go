package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/api/web"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/replica"
)

// settings are the server's run-time settings. Each comes from, in order of
// precedence: its command-line flag, the environment variable MATCHD_<NAME>
// (the flag name upper-cased, '-' as '_'), the config file's "server"
// object (keyed by flag name), or the default.
type settings struct {
	config, data, listen, admin, logFormat, cpuProfile string
	fsync                                              bool
	snapEvery                                          uint64
	snapInterval, loginTimeout, heartbeat, idleTimeout time.Duration
	shutdownWait                                       time.Duration
	maxConns, outbound                                 int
	maxPreLogin, maxPreLoginPerAddr                    int
	outboundBudget                                     int64
	sessionCredit, sessionRetention, feedRetention     int
	orderHistory                                       int
	sessionRetentionBytes                              int64
	adminToken, adminHosts                             string
	web                                                string
	webTickerWindow                                    time.Duration
	webMaxStreams, webStreamQueue, webStreamBytes      int
	version                                            bool
	nodeID                                             uint64
	cluster                                            string
	join                                               bool
	peers                                              []replica.Peer // cluster, parsed (not a setting)
	adminAddr                                          string         // the admin address bound (not a setting)
}

// flags defines the command line. Defaults of the parts' settings are the
// packages' own (EnsureDefaults), never restated here.
func (s *settings) flags(out io.Writer) *flag.FlagSet {
	var ad api.Config
	ad.EnsureDefaults()
	var sd persist.SnapshotterConfig
	sd.EnsureDefaults()
	var wd web.Config
	wd.EnsureDefaults()
	fs := flag.NewFlagSet("matchd", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&s.config, "config", defaultConfig, "configuration file (accounts, instruments, server settings)")
	fs.StringVar(&s.data, "data", "./data", "data directory (journal and snapshots)")
	fs.StringVar(&s.listen, "listen", ad.Listen, "order-entry and market data address")
	fs.StringVar(&s.admin, "admin", "127.0.0.1:7002", "admin address: /healthz, /readyz, /metrics, /api/book/, /debug/pprof/ (empty: off)")
	fs.BoolVar(&s.fsync, "fsync", true, "fsync every group commit; false is UNSAFE: acknowledged orders can be lost in a machine crash")
	fs.Uint64Var(&s.snapEvery, "snapshot-every", uint64(sd.Every), "take a snapshot after this many commands")
	fs.DurationVar(&s.snapInterval, "snapshot-interval", sd.Interval, "take a snapshot at least this often when busy")
	fs.StringVar(&s.logFormat, "log-format", "text", "log format: text or json")
	fs.IntVar(&s.maxConns, "max-conns", ad.MaxConns, "most concurrent connections")
	fs.IntVar(&s.maxPreLogin, "max-prelogin", ad.MaxPreLogin, "most connections not yet logged in (the oldest is closed to make room)")
	fs.IntVar(&s.maxPreLoginPerAddr, "max-prelogin-per-addr", ad.MaxPreLoginPerAddr, "most connections not yet logged in from one source address")
	fs.StringVar(&s.adminToken, "admin-token", "", "bearer token the admin endpoints (all but /healthz and /readyz) require (empty: none)")
	fs.StringVar(&s.adminHosts, "admin-hosts", "", "comma-separated Host names the admin endpoints accept besides loopback and the admin address (* for any)")
	fs.DurationVar(&s.loginTimeout, "login-timeout", ad.LoginTimeout, "time a new connection has to log in")
	fs.DurationVar(&s.heartbeat, "heartbeat", ad.Heartbeat, "send a heartbeat after this long without sending")
	fs.DurationVar(&s.idleTimeout, "idle-timeout", ad.IdleTimeout, "end sessions that send nothing for this long")
	fs.IntVar(&s.outbound, "outbound-limit", ad.OutboundLimit, "bytes of unread responses and market data one session may hold before it is disconnected")
	fs.IntVar(&s.sessionCredit, "session-credit", ad.SessionCredit, "requests one session may have in the pipeline before the server stops reading it")
	fs.Int64Var(&s.outboundBudget, "outbound-budget", ad.OutboundBudget, "bytes all sessions together may hold; past it the sessions holding the most are disconnected")
	fs.IntVar(&s.sessionRetention, "session-retention", ad.SessionRetention, "messages each named session's stream keeps for a client that resumes")
	fs.Int64Var(&s.sessionRetentionBytes, "session-retention-bytes", ad.SessionRetentionBytes, "bytes all sessions' streams together keep (past it the largest gives up its older half)")
	fs.IntVar(&s.feedRetention, "feed-retention", ad.FeedRetention, "market data messages kept per instrument for subscribers that resume")
	fs.IntVar(&s.orderHistory, "order-history", ad.OrderHistory, "latest orders (of all accounts) whose status is kept for order status queries, besides all open ones")
	fs.DurationVar(&s.shutdownWait, "shutdown-wait", 5*time.Second, "how long shutdown waits for sessions to finish")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "write a CPU profile to this file until shutdown")
	fs.StringVar(&s.web, "web", "127.0.0.1:7003", "web view and public market data address: /, /api/v1/ (docs/HTTP.md; empty: off)")
	fs.DurationVar(&s.webTickerWindow, "web-ticker-window", wd.TickerWindow, "rolling window of the ticker's volume, high and low (whole minutes)")
	fs.IntVar(&s.webMaxStreams, "web-max-streams", wd.MaxStreams, "most WebSocket market data clients at once")
	fs.IntVar(&s.webStreamQueue, "web-stream-queue", wd.StreamQueue, "messages a WebSocket client may let pile up before it is cut off as too slow")
	fs.IntVar(&s.webStreamBytes, "web-stream-bytes", wd.StreamBytes, "bytes of messages a WebSocket client may let pile up before it is cut off as too slow")
	fs.BoolVar(&s.version, "version", false, "print the version and build information, and exit")
	fs.StringVar(&s.cluster, "cluster", "", "the replicas of a raft cluster, as ID=PEER_ADDR/ORDER_ADDR,… (for example "+
		"1=127.0.0.1:7101/127.0.0.1:7001,2=…); empty: a single node. docs/OPERATIONS.md, \"A cluster\"")
	fs.Uint64Var(&s.nodeID, "node-id", 0, "this replica's id in --cluster")
	fs.BoolVar(&s.join, "join", false, "start a new replica that joins a running cluster (--cluster lists the members and this node): "+
		"it waits until the leader adds it (matchctl cluster add); docs/OPERATIONS.md, \"Membership\"")
	return fs
}

// envName is the environment variable of a flag.
func envName(flag string) string {
	return "MATCHD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// errUsage marks a command line the flag package could not parse (it has
// already said why).
var errUsage = errors.New("matchd: bad command line")

// errHelp is --help (or -h): the usage goes to standard output, exit 0.
var errHelp = errors.New("matchd: help")

// loadSettings parses the command line, reads the config file and layers
// flags over environment over file over defaults. It checks everything and
// reports every problem at once; the config is nil only if the file could
// not be read or parsed at all.
func loadSettings(args []string, getenv func(string) string, stderr io.Writer) (*settings, *config, error) {
	s := &settings{}
	fs := s.flags(stderr)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return s, nil, errHelp
		}
		fmt.Fprintln(stderr, "matchd --help lists the settings")
		return nil, nil, errUsage
	}
	if s.version {
		return s, nil, nil
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "matchd: unexpected argument %q\n", fs.Arg(0))
		return nil, nil, errUsage
	}
	onCmdLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCmdLine[f.Name] = true })
	var errs []error
	inEnv := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" {
			inEnv[f.Name] = v
		}
	})
	if v, ok := inEnv["config"]; ok && !onCmdLine["config"] {
		s.config = v
	}
	cfg, err := loadConfig(s.config)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg != nil {
		names := make([]string, 0, len(cfg.Server))
		for name := range cfg.Server {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			v := cfg.Server[name]
			switch {
			case fs.Lookup(name) == nil:
				errs = append(errs, fmt.Errorf("config: %s: server.%s: no such setting", s.config, name))
			case name == "config":
				errs = append(errs, fmt.Errorf("config: %s: server.config: the config file cannot name itself", s.config))
			case onCmdLine[name] || inEnv[name] != "":
				// overridden
			default:
				if err := set(fs, name, v); err != nil {
					errs = append(errs, fmt.Errorf("config: %s: server.%s: %v", s.config, name, err))
				}
			}
		}
	}
	envNames := make([]string, 0, len(inEnv))
	for name := range inEnv {
		envNames = append(envNames, name)
	}
	slices.Sort(envNames)
	for _, name := range envNames {
		if onCmdLine[name] || name == "config" {
			continue
		}
		if err := set(fs, name, inEnv[name]); err != nil {
			errs = append(errs, fmt.Errorf("environment: %s: %v", envName(name), err))
		}
	}
	errs = append(errs, s.validate()...)
	return s, cfg, errors.Join(errs...)
}

// set sets a flag from a string, keeping its previous value if the string
// does not parse, and says what the flag wants.
func set(fs *flag.FlagSet, name, v string) error {
	f := fs.Lookup(name)
	old := f.Value.String()
	if err := f.Value.Set(v); err != nil {
		f.Value.Set(old)
		want := "a string"
		if g, ok := f.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case time.Duration:
				want = "a duration such as 5s or 250ms"
			case bool:
				want = "true or false"
			case int, uint64:
				want = "a whole number"
			}
		}
		return fmt.Errorf("invalid value %q: want %s", v, want)
	}
	return nil
}

// validate checks the values themselves.
func (s *settings) validate() []error {
	var errs []error
	if s.logFormat != "text" && s.logFormat != "json" {
		errs = append(errs, fmt.Errorf("settings: log-format %q: want text or json", s.logFormat))
	}
	if s.data == "" {
		errs = append(errs, errors.New("settings: data: a data directory is required"))
	}
	if s.listen == "" {
		errs = append(errs, errors.New("settings: listen: an address is required"))
	}
	if s.snapEvery == 0 {
		errs = append(errs, errors.New("settings: snapshot-every must be positive"))
	}
	if s.snapInterval <= 0 || s.shutdownWait <= 0 {
		errs = append(errs, errors.New("settings: snapshot-interval and shutdown-wait must be positive"))
	}
	if s.join && s.cluster == "" {
		errs = append(errs, errors.New("settings: --join needs --cluster (the members to join, and this node)"))
	}
	if s.cluster != "" || s.nodeID != 0 {
		peers, err := parsePeers(s.cluster)
		if err != nil {
			errs = append(errs, err)
		}
		s.peers = peers
		if err := replica.ValidateMembership(s.nodeID, peers); err != nil && len(peers) > 0 {
			errs = append(errs, fmt.Errorf("settings: cluster: %w", err))
		}
		for _, p := range peers {
			if p.ID == s.nodeID && p.Client != s.listen {
				errs = append(errs, fmt.Errorf("settings: cluster: node %d's order address is %s, but --listen is %s", p.ID, p.Client, s.listen))
			}
		}
	}
	c := s.apiConfig()
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	wc := web.Config{TickerWindow: s.webTickerWindow, MaxStreams: s.webMaxStreams, StreamQueue: s.webStreamQueue, StreamBytes: s.webStreamBytes}
	wc.EnsureDefaults()
	if err := wc.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// apiConfig is the order server's part of the settings.
func (s *settings) apiConfig() api.Config {
	return api.Config{Listen: s.listen, MaxConns: s.maxConns, MaxPreLogin: s.maxPreLogin, MaxPreLoginPerAddr: s.maxPreLoginPerAddr,
		LoginTimeout: s.loginTimeout,
		Heartbeat:    s.heartbeat, IdleTimeout: s.idleTimeout, OutboundLimit: s.outbound, OutboundBudget: s.outboundBudget,
		SessionCredit: s.sessionCredit, SessionRetention: s.sessionRetention, SessionRetentionBytes: s.sessionRetentionBytes,
		FeedRetention: s.feedRetention, OrderHistory: s.orderHistory}
}

// logAttrs lists the settings for the start-up log line.
func (s *settings) logAttrs() []any {
	return []any{"config", s.config, "data", s.data, "listen", s.listen, "admin", s.admin, "fsync", s.fsync,
		"snapshot_every", s.snapEvery, "snapshot_interval", s.snapInterval, "log_format", s.logFormat,
		"max_conns", s.maxConns, "max_prelogin", s.maxPreLogin, "max_prelogin_per_addr", s.maxPreLoginPerAddr,
		"admin_token", s.adminToken != "", "admin_hosts", s.adminHosts, "login_timeout", s.loginTimeout, "heartbeat", s.heartbeat,
		"idle_timeout", s.idleTimeout, "outbound_limit", s.outbound, "outbound_budget", s.outboundBudget, "session_credit", s.sessionCredit,
		"session_retention", s.sessionRetention, "session_retention_bytes", s.sessionRetentionBytes, "feed_retention", s.feedRetention, "order_history", s.orderHistory, "shutdown_wait", s.shutdownWait,
		"cluster", s.cluster, "node_id", s.nodeID, "join", s.join, "web", s.web, "web_ticker_window", s.webTickerWindow, "web_max_streams", s.webMaxStreams, "web_stream_queue", s.webStreamQueue, "web_stream_bytes", s.webStreamBytes}
}

// parsePeers reads --cluster: ID=PEER_ADDR/ORDER_ADDR, comma-separated.
func parsePeers(v string) ([]replica.Peer, error) {
	var peers []replica.Peer
	if strings.TrimSpace(v) == "" {
		return nil, errors.New("settings: cluster: --node-id without --cluster (ID=PEER_ADDR/ORDER_ADDR,…)")
	}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		id, addrs, ok := strings.Cut(part, "=")
		peer, order, ok2 := strings.Cut(addrs, "/")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || !ok2 || err != nil || n == 0 || peer == "" || order == "" {
			return nil, fmt.Errorf("settings: cluster: %q: want ID=PEER_ADDR/ORDER_ADDR with an id from 1", part)
		}
		peers = append(peers, replica.Peer{ID: n, Addr: peer, Client: order})
	}
	return peers, nil
}
