package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/pipeline"
)

// Config configures a Server.
type Config struct {
	// Listen is the order-entry address. Default 127.0.0.1:7001.
	Listen string
	// MaxConns limits concurrent connections. Default 10,000.
	MaxConns int
	// MaxPreLogin limits connections that have not logged in yet; when
	// it is reached the oldest of them is closed to make room. Default
	// 4,096.
	MaxPreLogin int
	// MaxPreLoginPerAddr limits one source address's connections that
	// have not logged in yet; when it is reached that address's oldest is
	// closed to make room. Default 1,024.
	MaxPreLoginPerAddr int
	// LoginTimeout is how long a new connection has to log in. Default 5s.
	LoginTimeout time.Duration
	// Heartbeat is how long the server stays silent before it sends a
	// Heartbeat. Default 1s.
	Heartbeat time.Duration
	// IdleTimeout ends a session that sends nothing for this long (clients
	// should heartbeat). Default 15s.
	IdleTimeout time.Duration
	// OutboundLimit is how many bytes of responses and market data one
	// session may hold for a client that does not read them (what waits
	// and what is being written) before it is disconnected. Default 4 MiB.
	OutboundLimit int
	// OutboundBudget bounds what all sessions together may hold; when it
	// is passed, sessions holding more than their share whose clients
	// have stopped reading are cut off (Goodbye 5), largest first, until
	// all hold less than nine tenths of it; past twice the budget, the
	// largest are cut whether they read or not. Default 256 MiB.
	OutboundBudget int64
	// SessionCredit is how many requests one session may have in the
	// pipeline, submitted and not yet answered, while other sessions have
	// requests there too; past it the server stops reading from that
	// session until answers return, so one client's flood waits behind
	// itself, not in front of everyone. A session alone in the pipeline
	// may have four times as many. Default 256.
	SessionCredit int
	// SessionRetention is how many of its latest messages each session's
	// stream keeps for a client that resumes. Default 100,000.
	SessionRetention int
	// SessionRetentionBytes bounds what all streams together keep; past
	// it the largest stream gives up its older half. Default 256 MiB.
	SessionRetentionBytes int64
	// FeedRetention is how many of an instrument's latest market data
	// messages the server keeps for subscribers that resume. Default
	// 100,000.
	FeedRetention int
	// OrderHistory is how many of the latest orders (of all accounts;
	// rounded up to a power of two) the server keeps the status of, open
	// or finished, for order status queries; older orders are kept while
	// they are open. Default 131,072.
	OrderHistory int
	// Logger receives session events. Default slog.Default().
	Logger *slog.Logger
	// Instruments is the directory answered to QueryInstrument.
	Instruments []wire.InstrumentInfo
}

// EnsureDefaults fills in zero fields.
func (c *Config) EnsureDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7001"
	}
	if c.MaxConns == 0 {
		c.MaxConns = 10_000
	}
	if c.MaxPreLogin == 0 {
		c.MaxPreLogin = 4096
	}
	if c.MaxPreLoginPerAddr == 0 {
		c.MaxPreLoginPerAddr = 1024
	}
	if c.LoginTimeout == 0 {
		c.LoginTimeout = 5 * time.Second
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 15 * time.Second
	}
	if c.OutboundLimit == 0 {
		c.OutboundLimit = 4 << 20
	}
	if c.SessionCredit == 0 {
		c.SessionCredit = 256
	}
	if c.OutboundBudget == 0 {
		c.OutboundBudget = 256 << 20
	}
	if c.OrderHistory == 0 {
		c.OrderHistory = 1 << 17
	}
	if c.FeedRetention == 0 {
		c.FeedRetention = 100_000
	}
	if c.SessionRetention == 0 {
		c.SessionRetention = 100_000
	}
	if c.SessionRetentionBytes == 0 {
		c.SessionRetentionBytes = 256 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("api: max connections %d must be positive", c.MaxConns))
	}
	if c.SessionCredit < 64 {
		errs = append(errs, fmt.Errorf("api: session credit %d is below 64", c.SessionCredit))
	}
	if c.MaxPreLogin < 1 || c.MaxPreLoginPerAddr < 1 {
		errs = append(errs, fmt.Errorf("api: pre-login limits %d and %d must be positive", c.MaxPreLogin, c.MaxPreLoginPerAddr))
	}
	if c.LoginTimeout <= 0 || c.Heartbeat <= 0 || c.IdleTimeout <= c.Heartbeat {
		errs = append(errs, fmt.Errorf("api: timeouts must be positive and the idle timeout longer than the heartbeat"))
	}
	if c.OutboundLimit < 64<<10 {
		errs = append(errs, fmt.Errorf("api: outbound limit %d is below 64 KiB", c.OutboundLimit))
	}
	if c.OrderHistory < 1 {
		errs = append(errs, fmt.Errorf("api: order history %d must be positive", c.OrderHistory))
	}
	if c.FeedRetention < 1 {
		errs = append(errs, fmt.Errorf("api: feed retention %d must be positive", c.FeedRetention))
	}
	if c.SessionRetention < 1 || c.SessionRetentionBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("api: session retention %d messages and %d bytes must be at least 1 and 1 MiB",
			c.SessionRetention, c.SessionRetentionBytes))
	}
	if c.OutboundBudget < int64(c.OutboundLimit) {
		errs = append(errs, fmt.Errorf("api: outbound budget %d is below the outbound limit %d", c.OutboundBudget, c.OutboundLimit))
	}
	return errors.Join(errs...)
}

// route is the Token the server gives a pipeline request: the session in
// the high 32 bits (0: the server itself, for in-process queries) and the
// client's request id of a query in the low 32.
type route uint64

func newRoute(session uint64, request uint32) route { return route(session<<32 | uint64(request)) }
func (r route) session() uint64                     { return uint64(r) >> 32 }
func (r route) request() uint32                     { return uint32(r) }

// Account is a login the server accepts.
type Account struct {
	ID    engine.AccountID
	Name  string
	Token string
}

// Server serves the order-entry protocol (docs/PROTOCOL.md) over TCP.
// Its code is split by the goroutine that runs it: reader.go (each
// connection's goroutine), release.go (the pipeline's release stage),
// writer.go (each session's writer). The locks and their order are in
// doc.go.
type Server struct {
	cfg    Config
	log    *slog.Logger
	tokens map[engine.AccountID][32]byte // SHA-256 of each account's token
	p      *pipeline.Pipeline
	ln     net.Listener

	mu           sync.Mutex
	sessions     map[uint64]*session
	byAccount    map[engine.AccountID]map[uint64]*session
	scratch      []byte     // frames being built by Deliver (under mu)
	dirty        []*session // sessions with frames pending in this batch (under mu)
	makerScratch []byte
	orders       []engine.OrderInfo
	feed         feed
	streams      streams     // every session's stream (under mu)
	hist         history     // every account's orders and fills (under mu)
	fills        []wire.Fill // an answer being built (under mu)
	putFn        putFunc     // s.put, made once
	cur          *session    // the connection whose command Deliver encodes (under mu)
	tap          *MarketTap  // the in-process market data consumer, if any (under mu)
	tapBuf       []byte      // frames published for it since the last hand-over (under mu)

	acks    ackCounts
	waiters map[uint32]chan<- DepthAnswer // in-process queries (Depth), by token
	nextW   uint32
	epoch   time.Time // Request.Recv is nanoseconds since epoch

	stats stats // counters, read through Metrics
	adm   *admission
	logs  rateLog // rate-limited log lines

	outQueued atomic.Int64 // bytes all sessions hold for their clients
	active    atomic.Int64 // sessions with requests in the pipeline

	nextID     atomic.Uint32
	conns      atomic.Int64
	closing    atomic.Bool
	leadership atomic.Pointer[Leadership] // nil: a single node, every login taken
	wg         sync.WaitGroup             // connection goroutines
	readers    atomic.Int64               // session read loops running

	drained   chan struct{} // closed by Shutdown once everything read is answered
	drainOnce sync.Once
}

// NewServer returns a server for the accounts. Attach a pipeline, whose
// Deliver is the server's Deliver, before Serve.
func NewServer(cfg Config, accounts []Account) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, tokens: map[engine.AccountID][32]byte{}, epoch: time.Now(),
		sessions: map[uint64]*session{}, byAccount: map[engine.AccountID]map[uint64]*session{},
		waiters: map[uint32]chan<- DepthAnswer{}, drained: make(chan struct{}), adm: newAdmission()}
	s.feed.subs, s.feed.srv, s.feed.keep = &s.stats.subscriptions, s, cfg.FeedRetention
	s.streams = newStreams(cfg.SessionRetention, cfg.SessionRetentionBytes)
	s.hist = newHistory(cfg.OrderHistory, cfg.SessionRetention, &s.streams)
	s.putFn = s.put
	for _, a := range accounts {
		s.tokens[a.ID] = sha256.Sum256([]byte(a.Token))
	}
	return s, nil
}

// Attach sets the pipeline requests go to.
func (s *Server) Attach(p *pipeline.Pipeline) { s.p = p }

// Listen binds the order-entry address.
func (s *Server) Listen() (net.Addr, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("api: listen: %w", err)
	}
	s.ln = ln
	return ln.Addr(), nil
}

// Serve accepts connections until Shutdown. A failed accept (out of file
// descriptors, most often) is counted, logged at most once a second and
// retried after a backoff of up to a second: no client can make it
// return.
func (s *Server) Serve() error {
	backoff := time.Duration(0)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.stats.acceptErrors.Add(1)
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logs.warn(s.log, "accept", "api: accept failed; retrying", "err", err, "backoff", backoff,
				"total", s.stats.acceptErrors.Load())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if s.conns.Add(1) > int64(s.cfg.MaxConns) {
			s.conns.Add(-1)
			refuse(c, wire.LoginTooManyConnection)
			s.stats.disconnects[CauseTooManyConnections].Add(1)
			continue
		}
		e, evict := s.adm.admit(c, s.cfg.MaxPreLogin, s.cfg.MaxPreLoginPerAddr)
		if evict != nil {
			evict.Close() // its goroutine sees the close and counts it
		}
		s.wg.Add(1)
		go s.serveConn(c, e)
	}
}

// refuse answers a connection the server will not serve with
// LoginRejected and closes it, without waiting for a slow client.
func refuse(c net.Conn, reason uint8) {
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.Write(wire.AppendReason(nil, wire.TypeLoginRejected, reason))
	c.Close()
}

// Leadership says whether this server takes order entry (lead) and, if
// not, which node leads and at what order-entry address (0 and "" when
// none is known).
type Leadership func() (lead bool, leader uint64, addr string)

// SetLeadership makes logins ask f first: a replica of a cluster that
// does not lead answers every login with NotLeader and closes. Without
// it (a single node) every login is taken.
func (s *Server) SetLeadership(f Leadership) { s.leadership.Store(&f) }

// Closing reports whether Shutdown has begun.
func (s *Server) Closing() bool { return s.closing.Load() }

// Sessions returns the number of logged-in sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown ends service gracefully, within about wait: it stops accepting
// connections, stops reading from every session (what each has read so
// far still goes to the pipeline), waits until everything submitted has
// been delivered, so that every command the server took is answered, then
// says Goodbye to every session and waits for their goroutines. The
// pipeline must still be running: sessions with cancel-on-disconnect
// submit their mass cancels on the way out, so close the pipeline after.
func (s *Server) Shutdown(wait time.Duration) { s.shutdown(wait, wire.ByeShutdown) }

// Fail is Shutdown after the journal failed: every session's Goodbye
// says reason 8 (fail-stop), after whatever answers could still be
// delivered.
func (s *Server) Fail(wait time.Duration) { s.shutdown(wait, wire.ByeFailStop) }

func (s *Server) shutdown(wait time.Duration, reason uint8) {
	deadline := time.Now().Add(wait)
	s.closing.Store(true)
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Lock()
	for _, ss := range s.sessions {
		ss.conn.SetReadDeadline(time.Now()) // the reader sees closing and stops
	}
	s.mu.Unlock()
	for s.readers.Load() > 0 {
		if time.Now().After(deadline) {
			s.log.Warn("api: session readers still running at shutdown", "readers", s.readers.Load())
			break
		}
		time.Sleep(time.Millisecond)
	}
	if s.p != nil && s.p.Err() == nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if _, err := s.Depth(ctx, 0, 1); err != nil { // a barrier: answered after everything before it
			s.log.Warn("api: responses may be missing at shutdown", "err", err)
		}
		cancel()
	}
	s.mu.Lock()
	for _, ss := range s.sessions {
		ss.bye(reason)
	}
	s.mu.Unlock()
	s.drainOnce.Do(func() { close(s.drained) })
	if !waitGroup(&s.wg, deadline) {
		s.log.Warn("api: sessions still open at shutdown", "sessions", s.Sessions())
	}
}

// waitGroup waits for wg until the deadline and reports whether it ended.
func waitGroup(wg *sync.WaitGroup, deadline time.Time) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(time.Until(deadline)):
		return false
	}
}
