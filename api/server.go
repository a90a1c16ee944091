package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
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
	// LoginTimeout is how long a new connection has to log in. Default 5s.
	LoginTimeout time.Duration
	// Heartbeat is how long the server stays silent before it sends a
	// Heartbeat. Default 1s.
	Heartbeat time.Duration
	// IdleTimeout ends a session that sends nothing for this long (clients
	// should heartbeat). Default 15s.
	IdleTimeout time.Duration
	// OutboundLimit is how many bytes of responses may wait for a client
	// that does not read them before it is disconnected. Default 4 MiB.
	OutboundLimit int
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
	if c.LoginTimeout <= 0 || c.Heartbeat <= 0 || c.IdleTimeout <= c.Heartbeat {
		errs = append(errs, fmt.Errorf("api: timeouts must be positive and the idle timeout longer than the heartbeat"))
	}
	if c.OutboundLimit < 64<<10 {
		errs = append(errs, fmt.Errorf("api: outbound limit %d is below 64 KiB", c.OutboundLimit))
	}
	return errors.Join(errs...)
}

// Account is a login the server accepts.
type Account struct {
	ID    engine.AccountID
	Name  string
	Token string
}

// Server serves the order-entry protocol (docs/PROTOCOL.md) over TCP.
//
// Lock order: Server.mu, then session.mu. Deliver holds Server.mu for a
// whole batch; readers take it only to register and remove sessions.
type Server struct {
	cfg    Config
	log    *slog.Logger
	tokens map[engine.AccountID][32]byte // SHA-256 of each account's token
	p      *pipeline.Pipeline
	ln     net.Listener

	mu           sync.Mutex
	sessions     map[uint64]*session
	byAccount    map[engine.AccountID]map[uint64]*session
	scratch      []byte // frames being built by Deliver (under mu)
	makerScratch []byte
	orders       []engine.OrderInfo
	feed         feed

	acks    ackCounts
	waiters map[uint32]chan<- DepthAnswer // in-process queries (Depth), by token
	nextW   uint32
	epoch   time.Time // Request.Recv is nanoseconds since epoch

	// Stats are the server's counters for metrics.
	Stats Stats

	nextID  atomic.Uint32
	conns   atomic.Int64
	closing atomic.Bool
	wg      sync.WaitGroup // connection goroutines
	readers atomic.Int64   // session read loops running

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
		waiters: map[uint32]chan<- DepthAnswer{}, drained: make(chan struct{})}
	s.feed.subs = &s.Stats.Subscriptions
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

// Serve accepts connections until Shutdown.
func (s *Server) Serve() error {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if s.conns.Add(1) > int64(s.cfg.MaxConns) {
			s.conns.Add(-1)
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(wire.AppendReason(nil, wire.TypeLoginRejected, wire.LoginTooManyConnection))
			c.Close()
			s.Stats.Disconnects[CauseTooManyConnections].Add(1)
			continue
		}
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

// Connections returns the number of open connections, logged in or not.
func (s *Server) Connections() int64 { return s.conns.Load() }

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
func (s *Server) Shutdown(wait time.Duration) {
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
	if s.p != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if _, err := s.Depth(ctx, 0, 1); err != nil { // a barrier: answered after everything before it
			s.log.Warn("api: responses may be missing at shutdown", "err", err)
		}
		cancel()
	}
	s.mu.Lock()
	for _, ss := range s.sessions {
		ss.bye(wire.ByeShutdown)
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

// session is one logged-in connection.
type session struct {
	id      uint64
	acct    engine.AccountID
	conn    net.Conn
	cod     bool
	limit   int
	log     *slog.Logger
	beat    time.Duration
	mu      sync.Mutex
	out     []byte // frames waiting for the writer
	spare   []byte
	closing bool                  // flush what is queued, then close
	byeWhy  uint8                 // the first Goodbye reason queued or meant (0: none)
	feeds   []engine.InstrumentID // subscribed instruments (under Server.mu)
	wake    chan struct{}
	done    chan struct{} // closed when the writer has finished
	stopped atomic.Bool   // set when the writer has finished
}

// send queues one or more whole frames. It reports false if the session
// is closing or has just been cut off as a slow consumer.
func (ss *session) send(frames []byte) bool {
	ss.mu.Lock()
	if ss.closing {
		ss.mu.Unlock()
		return false
	}
	// The limit is on what waits: one answer larger than it (a long list
	// of open orders) is still queued whole if nothing else is waiting.
	if len(ss.out) > 0 && len(ss.out)+len(frames) > ss.limit {
		ss.closing = true
		ss.byeWhy = wire.ByeSlowConsumer
		ss.out = wire.AppendReason(ss.out[:0], wire.TypeGoodbye, wire.ByeSlowConsumer)
		ss.mu.Unlock()
		ss.log.Warn("api: disconnecting slow consumer", "session", ss.id, "account", ss.acct)
		ss.signal()
		return false
	}
	ss.out = append(ss.out, frames...)
	ss.mu.Unlock()
	ss.signal()
	return true
}

// bye queues a Goodbye and closes the session once it is written.
func (ss *session) bye(reason uint8) {
	ss.mu.Lock()
	if !ss.closing {
		ss.out = wire.AppendReason(ss.out, wire.TypeGoodbye, reason)
		ss.closing = true
		ss.byeWhy = reason
	}
	ss.mu.Unlock()
	ss.signal()
}

func (ss *session) signal() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// writer flushes queued frames with one write each time, sends heartbeats
// when idle, and once closing and flushed, shuts its side of the
// connection (the session's goroutine closes it, see linger). If a write
// fails it closes the connection at once.
func (ss *session) writer() {
	defer close(ss.done)
	defer func() { // stop the reader too
		ss.stopped.Store(true)
		ss.conn.SetReadDeadline(time.Now())
	}()
	hb := time.NewTicker(ss.beat)
	defer hb.Stop()
	last := time.Now()
	for {
		select {
		case <-ss.wake:
		case <-hb.C:
			if time.Since(last) >= ss.beat {
				ss.mu.Lock()
				if len(ss.out) == 0 && !ss.closing {
					ss.out = wire.AppendEmpty(ss.out, wire.TypeHeartbeat)
				}
				ss.mu.Unlock()
			}
		}
		ss.mu.Lock()
		buf, closing := ss.out, ss.closing
		ss.out = ss.spare[:0]
		ss.mu.Unlock()
		if len(buf) > 0 {
			ss.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := ss.conn.Write(buf); err != nil {
				ss.mu.Lock()
				ss.closing = true
				if isTimeout(err) && ss.byeWhy == 0 {
					ss.byeWhy = wire.ByeSlowConsumer
				}
				ss.mu.Unlock()
				if isTimeout(err) {
					ss.log.Warn("api: disconnecting slow consumer: write timed out", "session", ss.id, "account", ss.acct)
				}
				ss.conn.Close()
				return
			}
			last = time.Now()
		}
		ss.mu.Lock()
		ss.spare = buf[:0]
		ss.mu.Unlock()
		if closing {
			if tc, ok := ss.conn.(*net.TCPConn); ok {
				tc.CloseWrite() // FIN after the last frame
			}
			return
		}
	}
}

// lingerTime bounds how long a closed session's connection is drained.
const lingerTime = 2 * time.Second

// linger closes a session's connection after its writer is done, reading
// and discarding what the client still sends (for up to lingerTime) until
// it closes its side. Closing a socket with unread input makes the kernel
// reset the connection, and a reset can destroy responses the client has
// not read yet: the last acknowledgments before a Goodbye.
func linger(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(lingerTime))
	var buf [4096]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			break
		}
	}
	c.Close()
}

func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer s.conns.Add(-1)
	rd := wire.NewReader(c, wire.MaxClientFrame, 64<<10)
	c.SetReadDeadline(time.Now().Add(s.cfg.LoginTimeout))
	reject := func(typ byte, reason uint8) {
		if typ == wire.TypeLoginRejected {
			s.Stats.Disconnects[CauseLoginRejected].Add(1)
		} else {
			s.Stats.Disconnects[reason].Add(1)
		}
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(wire.AppendReason(nil, typ, reason))
		c.Close()
	}
	typ, body, err := rd.Next()
	switch {
	case isTimeout(err):
		reject(wire.TypeGoodbye, wire.ByeLoginTimeout)
		return
	case err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		s.Stats.Disconnects[CauseClosed].Add(1)
		c.Close()
		return
	case err != nil:
		reject(wire.TypeGoodbye, wire.ByeMalformed)
		return
	case typ != wire.TypeLogin:
		reject(wire.TypeGoodbye, wire.ByeNotLoggedIn)
		return
	}
	var login wire.Login
	login.Decode(body)
	if login.Version != wire.Version {
		reject(wire.TypeLoginRejected, wire.LoginBadVersion)
		return
	}
	tok := login.Token[:]
	for len(tok) > 0 && tok[len(tok)-1] == 0 {
		tok = tok[:len(tok)-1]
	}
	want, known := s.tokens[login.Account]
	got := sha256.Sum256(tok)
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 || !known {
		s.log.Info("api: login rejected", "account", login.Account, "remote", c.RemoteAddr())
		reject(wire.TypeLoginRejected, wire.LoginBadCredentials)
		return
	}
	ss := &session{
		id: uint64(s.nextID.Add(1)), acct: login.Account, conn: c, log: s.log,
		cod: login.Flags&wire.FlagCancelOnDisconnect != 0, limit: s.cfg.OutboundLimit,
		beat: s.cfg.Heartbeat, wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	// Queued before the session is visible to Deliver, so that nothing can
	// overtake it.
	ss.out = (&wire.LoginAccepted{Session: ss.id, Version: wire.Version}).Append(nil)
	s.mu.Lock()
	s.sessions[ss.id] = ss
	if s.byAccount[ss.acct] == nil {
		s.byAccount[ss.acct] = map[uint64]*session{}
	}
	s.byAccount[ss.acct][ss.id] = ss
	s.mu.Unlock()
	s.Stats.Sessions.Add(1)
	go ss.writer()
	ss.signal()
	if s.closing.Load() {
		// Shutdown may have said goodbye to everyone just before this
		// session became visible to it.
		ss.bye(wire.ByeShutdown)
	}
	s.log.Info("api: session opened", "session", ss.id, "account", ss.acct, "remote", c.RemoteAddr(),
		"cancel_on_disconnect", ss.cod)
	cause := s.readLoop(ss, rd)
	if cause == causeShutdown {
		<-s.drained // everything this session sent is answered
		ss.bye(wire.ByeShutdown)
	}
	ss.mu.Lock()
	why := ss.byeWhy // before the Logout Goodbye below, which is a no-op if one was sent
	ss.mu.Unlock()
	s.Stats.Disconnects[why].Add(1)
	s.Stats.Sessions.Add(-1)
	s.mu.Lock()
	delete(s.sessions, ss.id)
	delete(s.byAccount[ss.acct], ss.id)
	s.feed.drop(ss)
	s.mu.Unlock()
	if ss.cod {
		s.p.Submit(pipeline.Request{Cmd: engine.Command{Kind: engine.CmdMassCancel, Account: ss.acct}})
	}
	ss.bye(wire.ByeLogout) // no-op if a Goodbye is already queued
	<-ss.done
	linger(c)
	s.log.Info("api: session closed", "session", ss.id, "account", ss.acct, "cause", cause)
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// readLoop's answers when the server stopped it: Shutdown, or the end of
// the session's writer (a Goodbye sent, or a write failed).
const (
	causeShutdown   = "server shutdown"
	causeWriterDone = "closed by the server"
)

// readLoop reads requests until the session ends and returns why.
func (s *Server) readLoop(ss *session, rd *wire.Reader) string {
	s.readers.Add(1)
	defer s.readers.Add(-1)
	reqs := make([]pipeline.Request, 0, 64)
	flush := func() bool {
		if len(reqs) > 0 {
			if err := s.p.Submit(reqs...); err != nil {
				ss.bye(wire.ByeFailStop)
				return false
			}
			reqs = reqs[:0]
		}
		return true
	}
	token := ss.id << 32
	var recv int64 // when the frames being parsed arrived
	for {
		fresh := rd.Buffered() == 0
		if fresh {
			if !flush() {
				return "journal failure"
			}
			ss.conn.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
			if s.closing.Load() { // after the deadline: Shutdown's comes later, or this sees it
				return causeShutdown
			}
			if ss.stopped.Load() { // likewise for the writer's
				return causeWriterDone
			}
		}
		typ, body, err := rd.Next()
		if fresh {
			recv = int64(time.Since(s.epoch))
		}
		switch {
		case err == nil:
		case isTimeout(err) && s.closing.Load():
			flush()
			return causeShutdown
		case isTimeout(err) && ss.stopped.Load():
			return causeWriterDone // what it sent since would never be answered
		case isTimeout(err):
			flush()
			ss.bye(wire.ByeIdle)
			return "idle timeout"
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
			flush()
			return "connection closed"
		case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrUnknownType),
			errors.Is(err, wire.ErrBadLength), errors.Is(err, wire.ErrEmptyFrame):
			flush()
			ss.bye(wire.ByeMalformed)
			return "malformed frame: " + err.Error()
		default:
			flush()
			return "read error: " + err.Error()
		}
		switch typ {
		case wire.TypeHeartbeat:
		case wire.TypeLogout:
			flush()
			ss.bye(wire.ByeLogout)
			return "logout"
		case wire.TypeNewOrder:
			var m wire.NewOrder
			m.Decode(body)
			reqs = append(reqs, pipeline.Request{Cmd: m.Command(ss.acct), Token: token, Recv: recv})
		case wire.TypeCancel:
			var m wire.Cancel
			m.Decode(body)
			reqs = append(reqs, pipeline.Request{Cmd: engine.Command{Kind: engine.CmdCancel, Account: ss.acct, OrderID: m.OrderID},
				Token: token, Recv: recv})
		case wire.TypeReplace:
			var m wire.Replace
			m.Decode(body)
			reqs = append(reqs, pipeline.Request{Cmd: engine.Command{Kind: engine.CmdReplace, Account: ss.acct,
				OrderID: m.OrderID, Ref: m.Ref, Price: m.Price, Qty: m.Qty}, Token: token, Recv: recv})
		case wire.TypeMassCancel:
			var m wire.MassCancel
			m.Decode(body)
			reqs = append(reqs, pipeline.Request{Cmd: engine.Command{Kind: engine.CmdMassCancel, Account: ss.acct,
				Instrument: m.Instrument}, Token: token, Recv: recv})
		case wire.TypeSubscribe:
			var m wire.Subscribe
			m.Decode(body)
			switch m.Action {
			case wire.SubscribeOn:
				reqs = append(reqs, pipeline.Request{Token: token | uint64(m.Request), Query: pipeline.Query{
					Kind: pipeline.QueryBook, Instrument: m.Instrument}})
			case wire.Unsubscribe:
				s.mu.Lock()
				s.feed.unsubscribe(ss, m.Instrument)
				s.mu.Unlock()
			default:
				flush()
				ss.bye(wire.ByeMalformed)
				return "unknown subscribe action"
			}
		case wire.TypeQuery:
			var m wire.Query
			m.Decode(body)
			if m.Kind == wire.QueryInstrument { // static: answered here, at once
				ss.send((&wire.Instruments{Request: m.Request}).Append(nil, s.cfg.Instruments))
				continue
			}
			kind := pipeline.QueryKind(m.Kind) // the wire and pipeline kinds 1-4 agree
			if kind < pipeline.QueryTop || kind > pipeline.QueryOpenOrders {
				flush()
				ss.bye(wire.ByeMalformed)
				return "unknown query kind"
			}
			reqs = append(reqs, pipeline.Request{Token: token | uint64(m.Request), Query: pipeline.Query{
				Kind: kind, Instrument: m.Instrument, Account: ss.acct, OrderID: m.OrderID, Levels: int32(m.Levels)}})
		default:
			// A second Login, or a server-to-client type: not ours to send.
			flush()
			ss.bye(wire.ByeMalformed)
			return fmt.Sprintf("unexpected message type %q", typ)
		}
		if len(reqs) == cap(reqs) && !flush() {
			return "journal failure"
		}
	}
}

// Deliver routes a durable batch's results to the sessions: a command's
// own responses to the session that sent it; fills of resting orders and
// cancels of orders the command did not name (self-trade prevention, mass
// cancel) to every session of the order's account; query answers to the
// asking session, filtered to its account's orders; trades and level
// changes to the instrument's market data subscribers, after the batch's
// other responses. It runs on the pipeline's journal goroutine.
func (s *Server) Deliver(b *pipeline.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.Stats.publish(&s.acks)
	defer s.feed.flush()
	now := int64(time.Since(s.epoch))
	cmd := 0
	for i := range b.Results {
		r := &b.Results[i]
		ss := s.sessions[r.Token>>32]
		if r.Query != 0 && r.Token>>32 == 0 { // an in-process query (session ids start at 1)
			s.answerLocal(b, r)
			continue
		}
		if r.Query == pipeline.QueryBook {
			if ss != nil {
				s.scratch = s.feed.subscribe(ss, b, r, s.scratch)
			}
			continue
		}
		if r.Query != 0 {
			if ss != nil {
				s.answer(ss, b, r)
			}
			continue
		}
		c := &b.Cmds[cmd]
		cmd++
		own := c.OrderID
		if ss != nil && r.Recv != 0 {
			s.acks.observe(now - r.Recv)
		}
		for j, evs := 0, b.EventsOf(r); j < len(evs); j++ {
			ev := &evs[j]
			rep := wire.Report{Seq: ev.Seq, Time: ev.Time, OrderID: ev.OrderID, Ref: ev.Ref}
			f := s.scratch[:0]
			to := ss
			switch ev.Kind {
			case engine.EvAccepted:
				own = ev.OrderID
				f = (&wire.Accepted{Report: rep, Instrument: ev.Instrument, Side: ev.Side, Type: c.Type,
					TIF: c.TIF, STP: c.STP, Price: ev.Price, Qty: ev.Qty}).Append(f)
			case engine.EvRejected:
				f = (&wire.Rejected{Report: rep, Reason: engine.RejectReason(ev.Reason)}).Append(f)
			case engine.EvFill:
				f = (&wire.Executed{Report: rep, Trade: ev.TradeID, Price: ev.Price, Qty: ev.Qty,
					Leaves: ev.Leaves, Liquidity: wire.LiquidityRemoved}).Append(f)
				maker := wire.Report{Seq: ev.Seq, Time: ev.Time, OrderID: ev.MakerOrder, Ref: ev.MakerRef}
				s.makerScratch = (&wire.Executed{Report: maker, Trade: ev.TradeID, Price: ev.Price, Qty: ev.Qty,
					Leaves: ev.MakerLeaves, Liquidity: wire.LiquidityAdded}).Append(s.makerScratch[:0])
				s.toAccount(ev.MakerAccount, s.makerScratch)
				s.feed.publish(ev)
			case engine.EvCanceled:
				f = (&wire.Canceled{Report: rep, Qty: ev.Qty, Reason: engine.CancelReason(ev.Reason)}).Append(f)
				if ev.OrderID != own {
					s.toAccount(ev.Account, f)
					to = nil
				}
			case engine.EvReplaced:
				f = (&wire.Replaced{Report: rep, OrigRef: ev.OrigRef, Price: ev.Price, Qty: ev.Qty, Leaves: ev.Leaves}).Append(f)
			case engine.EvMassCanceled:
				f = (&wire.MassCanceled{Seq: ev.Seq, Time: ev.Time, Instrument: ev.Instrument, Count: uint32(ev.Qty)}).Append(f)
			case engine.EvLevel:
				s.feed.publish(ev)
				continue
			default:
				continue // top of book: derived from the levels by subscribers
			}
			if to != nil {
				to.send(f)
			}
			s.scratch = f
		}
	}
}

func (s *Server) toAccount(a engine.AccountID, f []byte) {
	for _, ss := range s.byAccount[a] {
		ss.send(f)
	}
}

// answer sends a query's answer to the session that asked.
func (s *Server) answer(ss *session, b *pipeline.Batch, r *pipeline.Result) {
	req := uint32(r.Token)
	f := s.scratch[:0]
	switch r.Query {
	case pipeline.QueryTop:
		f = (&wire.Top{Request: req, Seq: r.Seq, Instrument: r.Instrument, Found: r.Found, TopOfBook: r.Top}).Append(f)
	case pipeline.QueryDepth:
		bids, asks := b.DepthOf(r)
		f = (&wire.Depth{Request: req, Seq: r.Seq, Instrument: r.Instrument, Found: r.Found}).Append(f, bids, asks)
	case pipeline.QueryOrder, pipeline.QueryOpenOrders:
		s.orders = s.orders[:0]
		for _, o := range b.OrdersOf(r) {
			if o.Account == ss.acct { // never another account's order
				s.orders = append(s.orders, o)
			}
		}
		os := s.orders
		for {
			n := min(len(os), wire.MaxOrdersPerFrame)
			f = (&wire.Orders{Request: req, Seq: r.Seq, More: n < len(os)}).Append(f, os[:n])
			os = os[n:]
			if len(os) == 0 {
				break
			}
		}
	}
	ss.send(f)
	s.scratch = f
}

// DepthAnswer is the answer to Server.Depth.
type DepthAnswer struct {
	Seq        engine.Seq // the last command applied when it was read
	Found      bool       // whether the instrument exists
	Bids, Asks []engine.LevelInfo
}

// Depth reads up to levels levels of each side of the instrument (all if
// levels <= 0) through the matching loop, like a session's depth query:
// the answer reflects every command sequenced before it and comes once
// those are durable. It is for the admin endpoints, not the hot path (it
// allocates).
func (s *Server) Depth(ctx context.Context, inst engine.InstrumentID, levels int) (DepthAnswer, error) {
	ch := make(chan DepthAnswer, 1)
	s.mu.Lock()
	s.nextW++
	if s.nextW == 0 {
		s.nextW = 1
	}
	id := s.nextW
	s.waiters[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, id)
		s.mu.Unlock()
	}()
	kind := pipeline.QueryDepth
	if levels <= 0 {
		kind = pipeline.QueryBook
	}
	err := s.p.Submit(pipeline.Request{Token: uint64(id), Query: pipeline.Query{Kind: kind, Instrument: inst, Levels: int32(levels)}})
	if err != nil {
		return DepthAnswer{}, err
	}
	select {
	case a := <-ch:
		return a, nil
	case <-ctx.Done():
		return DepthAnswer{}, ctx.Err()
	case <-s.p.Failed():
		return DepthAnswer{}, s.p.Err()
	}
}

// answerLocal answers an in-process query (under mu).
func (s *Server) answerLocal(b *pipeline.Batch, r *pipeline.Result) {
	ch := s.waiters[uint32(r.Token)]
	if ch == nil || (r.Query != pipeline.QueryDepth && r.Query != pipeline.QueryBook) {
		return
	}
	bids, asks := b.DepthOf(r)
	ch <- DepthAnswer{Seq: r.Seq, Found: r.Found, Bids: slices.Clone(bids), Asks: slices.Clone(asks)}
}
