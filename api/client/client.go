// Package client is the Go client for matchd's order-entry protocol
// (docs/PROTOCOL.md).
//
//	c, err := client.Dial(ctx, client.Config{Addr: "127.0.0.1:7001", Account: 1, Token: "alice-demo"})
//	defer c.Close()
//	res, err := c.Submit(ctx, wire.NewOrder{Instrument: 1, Side: engine.Buy, Type: engine.Limit,
//		TIF: engine.GTC, Price: 10_000, Qty: 5})          // waits for Accepted or Rejected
//	top, err := c.Top(ctx, 1)
//
// For throughput, Send any number of messages without waiting (they are
// pipelined on the connection) and receive every response through
// Config.OnMessage. The synchronous helpers (Submit, Cancel, Replace,
// MassCancel and the queries) may be mixed with that freely; each waits for
// the response that answers it.
//
// # Resumable sessions
//
// With Config.Session set the client logs in to that named session, and
// with Config.Reconnect it reconnects by itself when the connection
// breaks (or the server restarts), resuming the session's stream from the
// message after the last one it delivered: OnMessage sees every message
// of the stream exactly once, in order, across reconnects (LastMsg says
// where it is; keep it to resume in a later process with Config.Next).
// Once a reconnect's replay is delivered, a synchronous helper still
// waiting for the answer to a command sent before it returns
// ErrNotReceived: the command never reached the engine, and may be sent
// again; OnCaughtUp tells pipelining callers the same moment.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/units"
)

// Config configures a client.
type Config struct {
	// Addr is the server's order-entry address, or a cluster's: several
	// addresses separated by commas. The client logs in to the node that
	// leads (a follower names the leader, and the client goes there), and
	// after a failover to the new leader.
	Addr               string
	Account            engine.AccountID
	Token              string
	CancelOnDisconnect bool
	// Session names the session: 1 to 8 printable ASCII characters.
	// Empty: the account's unnamed session, which cannot be resumed.
	Session string
	// Next is the first message of the session's stream wanted at the
	// first login (0: none of those already sent). Reconnects resume
	// from LastMsg + 1.
	Next uint64
	// TakeOver ends the session's current connection, if it has one, at
	// the first login (reconnects always take over).
	TakeOver bool
	// Reconnect makes the client reconnect and resume a named session when
	// its connection breaks, with a backoff from 50 ms to 1 s, for up to
	// ReconnectFor (default 30 s). It does not after Close, a Logout, a
	// protocol error, a take-over by another connection, or a login the
	// server refuses for good.
	Reconnect    bool
	ReconnectFor time.Duration
	// OnCaughtUp, if set, is called on the reader goroutine after each
	// login once the replay it asked for has been delivered to OnMessage:
	// any command sent before a reconnect whose answer has not arrived by
	// then never reached the engine.
	OnCaughtUp func(acc wire.LoginAccepted)
	// Heartbeat is how long the client stays silent before it sends a
	// Heartbeat (the server cuts sessions idle for 15 s). Default 1s.
	Heartbeat time.Duration
	// ServerTimeout is how long the client waits without receiving
	// anything (the server sends a heartbeat after a second of silence)
	// before it takes the connection for dead: a network partition sends
	// no FIN. With Reconnect it then reconnects. Default 3s.
	ServerTimeout time.Duration
	// OnMessage, if set, receives every message from the server, in order,
	// on the client's reader goroutine. m is valid only during the call.
	OnMessage func(m *Message)
}

// Message is one message from the server, decoded into the field its Type
// names.
type Message struct {
	Type             byte
	Accepted         wire.Accepted
	Rejected         wire.Rejected
	Executed         wire.Executed
	Canceled         wire.Canceled
	Replaced         wire.Replaced
	MassCanceled     wire.MassCanceled
	Top              wire.Top
	InstrumentStatus wire.InstrumentStatus
	Depth            wire.Depth
	Bids, Asks       []engine.LevelInfo
	Orders           wire.Orders
	OrderList        []engine.OrderInfo
	Instruments      []wire.InstrumentInfo
	Snapshot         wire.BookSnapshot // one frame of it: its levels are in Bids and Asks
	Level            wire.LevelUpdate
	Trade            wire.Trade
	Status           wire.OrderStatus
	Fills            []wire.Fill
	Reason           uint8 // Goodbye
	Triggered        wire.Triggered
	PhaseChanged     wire.PhaseChanged
	PhaseUpdate      wire.PhaseUpdate
	Indicative       wire.Indicative
}

// Errors.
var (
	ErrLoginRejected = errors.New("client: login rejected")
	ErrClosed        = errors.New("client: connection closed")
	// ErrNotReceived answers a command sent before a reconnect that the
	// engine never received (its answer is not in the resumed stream):
	// sending it again is safe.
	ErrNotReceived = errors.New("client: the command did not reach the server before the connection broke")
)

// ErrNotOrderPort is a login answered by something that does not speak
// the order-entry protocol (an HTTP port, most often).
var ErrNotOrderPort = errors.New("client: not an order port")

// firstBytes reads through r and keeps the first few bytes read, to say
// what answered a login that made no sense.
type firstBytes struct {
	r io.Reader
	b []byte
}

func (f *firstBytes) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if len(f.b) < 8 {
		f.b = append(f.b, p[:min(n, 8-len(f.b))]...)
	}
	return n, err
}

// LoginError is a login the server refused, with its reason
// (wire.Login*). It wraps ErrLoginRejected.
type LoginError struct{ Reason uint8 }

// Error says the reason in words, and its number (wire.Login*).
func (e *LoginError) Error() string {
	return fmt.Sprintf("client: login rejected: %s (reason %d)", wire.LoginReasonText(e.Reason), e.Reason)
}

// Unwrap makes errors.Is(err, ErrLoginRejected) hold.
func (e *LoginError) Unwrap() error { return ErrLoginRejected }

// retryable reports whether a reconnect may try again after it.
func (e *LoginError) retryable() bool {
	return e.Reason == wire.LoginTooManyConnection || e.Reason == wire.LoginRetryLater || e.Reason == wire.LoginSessionInUse
}

// Report returns the report head of a stream message (Accepted, Rejected,
// Executed, Canceled, Replaced, MassCanceled).
func (m *Message) Report() (wire.Report, bool) {
	switch m.Type {
	case wire.TypeAccepted:
		return m.Accepted.Report, true
	case wire.TypeRejected:
		return m.Rejected.Report, true
	case wire.TypeExecuted:
		return m.Executed.Report, true
	case wire.TypeCanceled:
		return m.Canceled.Report, true
	case wire.TypeReplaced:
		return m.Replaced.Report, true
	case wire.TypeMassCanceled:
		return m.MassCanceled.Report, true
	case wire.TypeTriggered:
		return m.Triggered.Report, true
	case wire.TypePhaseChanged:
		return m.PhaseChanged.Report, true
	}
	return wire.Report{}, false
}

// EndOfCommand reports whether m is the last message its command sends
// this session.
func (m *Message) EndOfCommand() bool {
	r, ok := m.Report()
	return ok && r.Flags&wire.FlagEndOfCommand != 0
}

// RejectError is returned by the synchronous helpers when the server
// rejects the command.
type RejectError struct{ Reason engine.RejectReason }

func (e *RejectError) Error() string { return "client: rejected: " + e.Reason.String() }

type waitKey struct {
	kind byte
	v    uint64
}

// waiter is a synchronous helper waiting for its answer: ch gets it, or
// is closed when it will not come (ErrNotReceived).
type waiter struct {
	ch  chan Message
	gen int // the connection it was sent on
}

// Client is a logged-in session. Its methods are safe for concurrent use.
type Client struct {
	cfg     Config
	conn    net.Conn // under wmu
	session uint64
	name    wire.SessionName
	lastMsg atomic.Uint64

	wmu       sync.Mutex
	lastWrite time.Time
	massMu    sync.Mutex // one mass cancel at a time: its answer carries no reference

	mu      sync.Mutex
	waiters map[waitKey]waiter
	gen     int                 // connections so far - 1
	closing bool                // Close was called
	partial map[uint32]*Message // Orders answers still receiving frames
	lastRef engine.ClientRef
	nextReq uint32
	err     error
	dir     []wire.InstrumentInfo
	books   map[engine.InstrumentID]*Book

	at   string // the address that took the last login (under mu)
	done chan struct{}
}

// Dial connects and logs in.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.ReconnectFor == 0 {
		cfg.ReconnectFor = 30 * time.Second
	}
	if cfg.ServerTimeout == 0 {
		cfg.ServerTimeout = 3 * time.Second
	}
	if len(cfg.Token) > wire.TokenSize {
		return nil, fmt.Errorf("client: token longer than %d bytes", wire.TokenSize)
	}
	c := &Client{cfg: cfg, waiters: map[waitKey]waiter{}, partial: map[uint32]*Message{},
		books: map[engine.InstrumentID]*Book{}, done: make(chan struct{}), lastWrite: time.Now()}
	if cfg.Session != "" {
		n, err := wire.ParseSessionName(cfg.Session)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		c.name = n
	} else if cfg.Reconnect || cfg.Next != 0 {
		return nil, errors.New("client: only a named session (Config.Session) can be resumed")
	}
	if cfg.Next > 0 {
		c.lastMsg.Store(cfg.Next - 1)
	}
	conn, rd, acc, err := c.login(ctx, cfg.Next, cfg.TakeOver)
	if err != nil {
		return nil, err
	}
	c.conn, c.session = conn, acc.Connection
	go c.run(conn, rd, acc)
	go c.heartbeat()
	return c, nil
}

// ErrNoLeader reports that every address answered, but none leads and
// none knows a leader (a cluster between leaders): retry shortly.
var ErrNoLeader = errors.New("client: no node of the cluster leads (an election is under way?)")

// addrs is Config.Addr as a list: one address, or several separated by
// commas (the nodes of a cluster).
func (c *Client) addrs() []string {
	var out []string
	for _, a := range strings.Split(c.cfg.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Addr is the address of the node the client last logged in to.
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

// login connects and logs in to the session from stream message next. With
// several addresses (a cluster), it starts at the one that last took the
// login, follows a follower's NotLeader to the leader, and tries the next
// address when one cannot be reached; while the cluster has no leader it
// tries again every 50 ms until ctx ends.
func (c *Client) login(ctx context.Context, next uint64, takeOver bool) (net.Conn, *wire.Reader, wire.LoginAccepted, error) {
	addrs := c.addrs()
	if len(addrs) == 0 {
		return nil, nil, wire.LoginAccepted{}, errors.New("client: no address (Config.Addr)")
	}
	c.mu.Lock()
	at := c.at
	c.mu.Unlock()
	start := 0
	for i, a := range addrs {
		if a == at {
			start = i
		}
	}
	var lastErr error
	for {
		sawNotLeader := false
		for k := range addrs {
			a := addrs[(start+k)%len(addrs)]
			for hops := 0; hops < 3 && a != ""; hops++ { // a follower's hint, then the hint's hint
				conn, rd, acc, redirect, err := c.loginAt(ctx, a, next, takeOver)
				if err == nil {
					c.mu.Lock()
					c.at = a
					c.mu.Unlock()
					return conn, rd, acc, nil
				}
				var le *LoginError
				if errors.As(err, &le) || errors.Is(err, ErrNotOrderPort) || len(addrs) == 1 && redirect == nil {
					return nil, nil, acc, err // the same answer from every node
				}
				lastErr = err
				if redirect == nil {
					break // unreachable: the next address
				}
				sawNotLeader = true
				a = redirect.Addr
			}
		}
		if !sawNotLeader || ctx.Err() != nil {
			return nil, nil, wire.LoginAccepted{}, lastErr // the reconnect loop's backoff takes over
		}
		select { // a live node knows no leader: an election is under way
		case <-ctx.Done():
			return nil, nil, wire.LoginAccepted{}, lastErr
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// loginAt logs in at one address. A NotLeader answer is returned as
// redirect (with ErrNoLeader as the error).
func (c *Client) loginAt(ctx context.Context, addr string, next uint64, takeOver bool) (net.Conn, *wire.Reader, wire.LoginAccepted, *wire.NotLeader, error) {
	var acc wire.LoginAccepted
	var d net.Dialer
	if len(c.addrs()) > 1 {
		// A node cut off by the network does not refuse, it stays
		// silent: try it for a while, not for the whole login.
		d.Timeout = time.Second
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, acc, nil, fmt.Errorf("client: %w", err)
	}
	login := wire.Login{Version: wire.Version, Account: c.cfg.Account, Session: c.name, Next: next}
	if c.cfg.CancelOnDisconnect {
		login.Flags |= wire.FlagCancelOnDisconnect
	}
	if takeOver {
		login.Flags |= wire.FlagTakeOver
	}
	copy(login.Token[:], c.cfg.Token)
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	first := &firstBytes{r: conn}
	rd := wire.NewReader(first, wire.MaxFrame, 1<<17)
	if _, err := conn.Write(login.Append(nil)); err != nil {
		conn.Close()
		return nil, nil, acc, nil, fmt.Errorf("client: %w", err)
	}
	typ, body, err := rd.Next()
	if bytes.HasPrefix(first.b, []byte("HTTP/")) {
		conn.Close()
		return nil, nil, acc, nil, fmt.Errorf("%w: %s answered in HTTP: it is an HTTP port (matchd's admin or web port?), "+
			"not the order port (matchd --listen, 127.0.0.1:7001 by default)", ErrNotOrderPort, addr)
	}
	if err != nil {
		conn.Close()
		return nil, nil, acc, nil, fmt.Errorf("client: login at %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	switch typ {
	case wire.TypeLoginAccepted:
	case wire.TypeLoginRejected:
		conn.Close()
		return nil, nil, acc, nil, &LoginError{Reason: body[0]}
	case wire.TypeNotLeader:
		conn.Close()
		var nl wire.NotLeader
		nl.Decode(body)
		return nil, nil, acc, &nl, fmt.Errorf("%w (%s answered that node %d leads, at %q)", ErrNoLeader, addr, nl.Leader, nl.Addr)
	default:
		conn.Close()
		return nil, nil, acc, nil, fmt.Errorf("client: login answered with %q", typ)
	}
	acc.Decode(body)
	return conn, rd, acc, nil, nil
}

// run reads from each connection in turn, reconnecting while it may.
func (c *Client) run(conn net.Conn, rd *wire.Reader, acc wire.LoginAccepted) {
	defer close(c.done)
	for {
		err, again := c.read(conn, rd, acc)
		conn.Close()
		if !again || !c.cfg.Reconnect {
			c.end(err)
			return
		}
		deadline := time.Now().Add(c.cfg.ReconnectFor)
		backoff := 50 * time.Millisecond
		for {
			c.mu.Lock()
			closing := c.closing
			c.mu.Unlock()
			if closing {
				c.end(err)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var lerr error
			var rd2 *wire.Reader
			conn, rd2, acc, lerr = c.login(ctx, c.lastMsg.Load()+1, true)
			cancel()
			if lerr == nil {
				rd = rd2
				break
			}
			var le *LoginError
			if errors.As(lerr, &le) && !le.retryable() || time.Now().After(deadline) {
				c.end(fmt.Errorf("client: reconnecting after %v: %w", err, lerr))
				return
			}
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
		}
		c.wmu.Lock()
		c.conn = conn
		c.wmu.Unlock()
		c.mu.Lock()
		c.gen++
		c.session = acc.Connection
		clear(c.partial)
		closing := c.closing
		c.mu.Unlock()
		if closing {
			// Close or Kill came while this connection was being made:
			// they closed the one before it.
			conn.Close()
		}
		c.resubscribe()
	}
}

// end records why the client stopped and tells every waiting helper.
func (c *Client) end(err error) {
	c.finish(err)
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	c.failWaiters(gen + 1)
}

// failWaiters tells every helper waiting on an answer to a command sent
// on a connection before gen that it will not come.
func (c *Client) failWaiters(gen int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, w := range c.waiters {
		if w.gen < gen {
			close(w.ch)
			delete(c.waiters, k)
		}
	}
}

// caughtUp is called once a login's replay has been delivered.
func (c *Client) caughtUp(acc wire.LoginAccepted) {
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	c.failWaiters(gen)
	if c.cfg.OnCaughtUp != nil {
		c.cfg.OnCaughtUp(acc)
	}
}

// LastMsg is the number of the last stream message delivered (0: none).
func (c *Client) LastMsg() uint64 { return c.lastMsg.Load() }

// SessionName is the session's name ("" if unnamed).
func (c *Client) SessionName() string { return c.name.String() }

// Session returns the server's id for this session's connection.
func (c *Client) Session() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Close logs out and closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.Send(wire.AppendEmpty(nil, wire.TypeLogout))
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.conn.Close()
}

// Drop closes the connection without a Logout, as a network failure
// would (tests of resumption use it): with Reconnect, the client
// reconnects and resumes.
func (c *Client) Drop() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.Close()
}

// Kill closes the connection without a Logout and does not reconnect, as
// if the client's process died (tests of resumption use it). Done is
// closed once the client has stopped.
func (c *Client) Kill() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.Drop()
}

// Err returns why the connection ended, once it has.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// NextRef returns a client reference greater than any this process has
// used and than the clock in nanoseconds: references must increase per
// session across connections, and the clock carries that across
// restarts.
func (c *Client) NextRef() engine.ClientRef {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastRef = max(c.lastRef+1, engine.ClientRef(time.Now().UnixNano()))
	return c.lastRef
}

// Send writes whole frames (built with the wire package) without waiting
// for any answer.
func (c *Client) Send(frames []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.lastWrite = time.Now()
	if _, err := c.conn.Write(frames); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

func (c *Client) heartbeat() {
	t := time.NewTicker(c.cfg.Heartbeat / 2)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.wmu.Lock()
			idle := time.Since(c.lastWrite) >= c.cfg.Heartbeat
			c.wmu.Unlock()
			if idle {
				c.Send(wire.AppendEmpty(nil, wire.TypeHeartbeat))
			}
		}
	}
}

// read delivers one connection's messages until it ends, and says why
// and whether a reconnect may resume.
func (c *Client) read(conn net.Conn, rd *wire.Reader, acc wire.LoginAccepted) (error, bool) {
	var m Message
	pending := acc.Next != 0 && acc.Next <= acc.Last // a replay to deliver before caughtUp
	if !pending {
		c.caughtUp(acc)
	}
	var renewed time.Time
	for {
		// The server sends at least a heartbeat a second: a connection
		// silent for ServerTimeout is dead even without a FIN (a cut
		// network link). Renewed at most every eighth of it.
		if now := time.Now(); now.Sub(renewed) > c.cfg.ServerTimeout/8 {
			conn.SetReadDeadline(now.Add(c.cfg.ServerTimeout))
			renewed = now
		}
		typ, body, err := rd.Next()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrClosed, err), true
		}
		if typ == wire.TypeHeartbeat {
			continue
		}
		m = Message{Type: typ}
		var key waitKey
		switch typ {
		case wire.TypeAccepted:
			m.Accepted.Decode(body)
			key = waitKey{'r', uint64(m.Accepted.Ref)}
		case wire.TypeRejected:
			m.Rejected.Decode(body)
			key = waitKey{'r', uint64(m.Rejected.Ref)}
			switch {
			case m.Rejected.Ref != 0: // a new order's or a replace's
			case m.Rejected.OrderID != 0: // a cancel's
				key = waitKey{'x', uint64(m.Rejected.OrderID)}
			default: // a mass cancel's
				key = waitKey{'m', 0}
			}
		case wire.TypeExecuted:
			m.Executed.Decode(body)
		case wire.TypeCanceled:
			m.Canceled.Decode(body)
			switch m.Canceled.Reason {
			case engine.CancelUser:
				key = waitKey{'x', uint64(m.Canceled.OrderID)}
			case engine.CancelReplaced:
				key = waitKey{'r', uint64(m.Canceled.Ref)}
			}
		case wire.TypeReplaced:
			m.Replaced.Decode(body)
			key = waitKey{'r', uint64(m.Replaced.Ref)}
		case wire.TypeMassCanceled:
			m.MassCanceled.Decode(body)
			key = waitKey{'m', 0}
		case wire.TypeTop:
			m.Top.Decode(body)
			key = waitKey{'q', uint64(m.Top.Request)}
		case wire.TypeInstrumentStatus:
			m.InstrumentStatus.Decode(body)
			key = waitKey{'q', uint64(m.InstrumentStatus.Request)}
		case wire.TypeDepth:
			m.Bids, m.Asks, err = m.Depth.Decode(body, nil, nil)
			key = waitKey{'q', uint64(m.Depth.Request)}
		case wire.TypeOrders:
			var list []engine.OrderInfo
			list, err = m.Orders.Decode(body, nil)
			c.mu.Lock()
			if p := c.partial[m.Orders.Request]; p != nil {
				list = append(p.OrderList, list...)
			}
			m.OrderList = list
			if m.Orders.More {
				c.partial[m.Orders.Request] = &Message{Type: typ, Orders: m.Orders, OrderList: list}
				c.mu.Unlock()
				continue
			}
			delete(c.partial, m.Orders.Request)
			c.mu.Unlock()
			key = waitKey{'q', uint64(m.Orders.Request)}
		case wire.TypeInstruments:
			var ins wire.Instruments
			var list []wire.InstrumentInfo
			list, err = ins.Decode(body, nil)
			c.mu.Lock()
			if p := c.partial[ins.Request]; p != nil {
				list = append(p.Instruments, list...)
			}
			m.Instruments = list
			if ins.More && err == nil {
				c.partial[ins.Request] = &Message{Type: typ, Instruments: list}
				c.mu.Unlock()
				continue
			}
			delete(c.partial, ins.Request)
			c.mu.Unlock()
			key = waitKey{'q', uint64(ins.Request)}
		case wire.TypeOrderStatus:
			m.Status.Decode(body)
			key = waitKey{'q', uint64(m.Status.Request)}
		case wire.TypeFills:
			var f wire.Fills
			m.Fills, err = f.Decode(body, nil)
			key = waitKey{'q', uint64(f.Request)}
		case wire.TypeBookSnapshot:
			m.Bids, m.Asks, err = m.Snapshot.Decode(body, nil, nil)
			if err == nil {
				c.applyFeed(m.Snapshot.Instrument, &m)
			}
			if !m.Snapshot.More {
				key = waitKey{'q', uint64(m.Snapshot.Request)}
			}
		case wire.TypeLevelUpdate:
			m.Level.Decode(body)
			c.applyFeed(m.Level.Instrument, &m)
		case wire.TypeTrade:
			m.Trade.Decode(body)
			c.applyFeed(m.Trade.Instrument, &m)
		case wire.TypePhaseUpdate:
			m.PhaseUpdate.Decode(body)
			c.applyFeed(m.PhaseUpdate.Instrument, &m)
		case wire.TypeIndicative:
			m.Indicative.Decode(body)
			c.applyFeed(m.Indicative.Instrument, &m)
		case wire.TypeTriggered:
			m.Triggered.Decode(body)
		case wire.TypePhaseChanged:
			m.PhaseChanged.Decode(body)
			key = waitKey{'m', 0} // one phase change or mass cancel at a time (massMu)
		case wire.TypeGoodbye:
			m.Reason = body[0]
		}
		if err != nil {
			return fmt.Errorf("client: bad message from server: %w", err), false
		}
		msg := uint64(0)
		if r, ok := m.Report(); ok && r.Msg != 0 {
			if r.Msg <= c.lastMsg.Load() {
				continue // already delivered (the server does not send duplicates; this is a belt)
			}
			msg = r.Msg
		}
		if c.cfg.OnMessage != nil {
			c.cfg.OnMessage(&m)
		}
		if msg != 0 {
			c.lastMsg.Store(msg)
		}
		if key.kind != 0 {
			c.mu.Lock()
			w, ok := c.waiters[key]
			delete(c.waiters, key)
			c.mu.Unlock()
			if ok {
				w.ch <- m
			}
		}
		if pending && msg >= acc.Last {
			pending = false
			c.caughtUp(acc)
		}
		if typ == wire.TypeGoodbye {
			err := fmt.Errorf("%w: goodbye: %s (reason %d)", ErrClosed, wire.ByeReasonText(m.Reason), m.Reason)
			switch m.Reason {
			case wire.ByeLogout, wire.ByeMalformed, wire.ByeNotLoggedIn, wire.ByeTakenOver:
				return err, false
			}
			return err, true
		}
	}
}

// applyFeed updates the instrument's Book, if the client keeps one. A gap
// is kept in the Book (Book.Err).
func (c *Client) applyFeed(inst engine.InstrumentID, m *Message) {
	c.mu.Lock()
	b := c.books[inst]
	c.mu.Unlock()
	if b != nil {
		b.Apply(m)
	}
}

func (c *Client) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// roundTrip sends frame and waits for the message that key resolves.
func (c *Client) roundTrip(ctx context.Context, key waitKey, frame []byte) (Message, error) {
	ch := make(chan Message, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return Message{}, c.err
	}
	c.waiters[key] = waiter{ch: ch, gen: c.gen}
	c.mu.Unlock()
	if err := c.Send(frame); err != nil {
		c.mu.Lock()
		delete(c.waiters, key)
		c.mu.Unlock()
		return Message{}, err
	}
	select {
	case m, ok := <-ch:
		if !ok {
			if err := c.Err(); err != nil {
				return Message{}, err
			}
			return Message{}, ErrNotReceived
		}
		return m, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiters, key)
		c.mu.Unlock()
		return Message{}, ctx.Err()
	}
}

func (c *Client) request() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextReq++
	return c.nextReq
}

// Submit enters an order and waits for Accepted (returned) or Rejected (a
// *RejectError). A zero Ref is filled in with NextRef. Executions follow
// through OnMessage.
func (c *Client) Submit(ctx context.Context, m wire.NewOrder) (wire.Accepted, error) {
	if m.Ref == 0 {
		m.Ref = c.NextRef()
	}
	return c.enter(ctx, m.Ref, m.Append(nil))
}

// enter sends a new order's frame and waits for its answer.
func (c *Client) enter(ctx context.Context, ref engine.ClientRef, frame []byte) (wire.Accepted, error) {
	res, err := c.roundTrip(ctx, waitKey{'r', uint64(ref)}, frame)
	if err != nil {
		return wire.Accepted{}, err
	}
	if res.Type == wire.TypeRejected {
		return wire.Accepted{}, &RejectError{res.Rejected.Reason}
	}
	return res.Accepted, nil
}

// SubmitX enters an order with a stop price, a display quantity or an
// expiry (a stop, stop-limit, iceberg or GTD order) and waits for Accepted
// or Rejected, as Submit.
func (c *Client) SubmitX(ctx context.Context, m wire.NewOrderX) (wire.Accepted, error) {
	if m.Ref == 0 {
		m.Ref = c.NextRef()
	}
	return c.enter(ctx, m.Ref, m.Append(nil))
}

// ReplaceX is Replace with a parked stop's new stop price and an
// iceberg's new display quantity (0 keeps either).
func (c *Client) ReplaceX(ctx context.Context, m wire.ReplaceX) (Message, error) {
	if m.Ref == 0 {
		m.Ref = c.NextRef()
	}
	return c.change(ctx, m.Ref, m.Append(nil))
}

// change sends a replace's frame and waits for its answer.
func (c *Client) change(ctx context.Context, ref engine.ClientRef, frame []byte) (Message, error) {
	res, err := c.roundTrip(ctx, waitKey{'r', uint64(ref)}, frame)
	if err == nil && res.Type == wire.TypeRejected {
		err = &RejectError{res.Rejected.Reason}
	}
	return res, err
}

// Phase asks for an instrument's phase change (operator accounts only)
// and waits for PhaseChanged or Rejected. Phase changes and mass cancels
// of one client go one at a time.
func (c *Client) Phase(ctx context.Context, inst engine.InstrumentID, action engine.PhaseAction) (wire.PhaseChanged, error) {
	c.massMu.Lock()
	defer c.massMu.Unlock()
	res, err := c.roundTrip(ctx, waitKey{'m', 0}, (&wire.Phase{Instrument: inst, Action: action}).Append(nil))
	if err == nil && res.Type == wire.TypeRejected {
		err = &RejectError{res.Rejected.Reason}
	}
	return res.PhaseChanged, err
}

// Cancel cancels an open order and waits for Canceled.
func (c *Client) Cancel(ctx context.Context, id engine.OrderID) (wire.Canceled, error) {
	res, err := c.roundTrip(ctx, waitKey{'x', uint64(id)}, (&wire.Cancel{OrderID: id}).Append(nil))
	if err != nil {
		return wire.Canceled{}, err
	}
	if res.Type == wire.TypeRejected {
		return wire.Canceled{}, &RejectError{res.Rejected.Reason}
	}
	return res.Canceled, nil
}

// Replace changes an order's price and/or total quantity (0 keeps) and
// waits for the answer: Replaced, or Canceled if the new total is not above
// what has filled.
func (c *Client) Replace(ctx context.Context, m wire.Replace) (Message, error) {
	if m.Ref == 0 {
		m.Ref = c.NextRef()
	}
	return c.change(ctx, m.Ref, m.Append(nil))
}

// MassCancel cancels the account's open orders on an instrument (0: all)
// and waits for the count.
func (c *Client) MassCancel(ctx context.Context, inst engine.InstrumentID) (wire.MassCanceled, error) {
	c.massMu.Lock()
	defer c.massMu.Unlock()
	res, err := c.roundTrip(ctx, waitKey{'m', 0}, (&wire.MassCancel{Instrument: inst}).Append(nil))
	if err == nil && res.Type == wire.TypeRejected {
		err = &RejectError{res.Rejected.Reason}
	}
	return res.MassCanceled, err
}

func (c *Client) query(ctx context.Context, q wire.Query) (Message, error) {
	q.Request = c.request()
	return c.roundTrip(ctx, waitKey{'q', uint64(q.Request)}, q.Append(nil))
}

// Top returns the best bid and ask of an instrument.
func (c *Client) Top(ctx context.Context, inst engine.InstrumentID) (wire.Top, error) {
	res, err := c.query(ctx, wire.Query{Kind: wire.QueryTop, Instrument: inst})
	return res.Top, err
}

// InstrumentStatus returns an instrument's trading phase, reference price
// and price band (the prices a limit order may have now).
func (c *Client) InstrumentStatus(ctx context.Context, inst engine.InstrumentID) (wire.InstrumentStatus, error) {
	res, err := c.query(ctx, wire.Query{Kind: wire.QueryStatus, Instrument: inst})
	return res.InstrumentStatus, err
}

// Depth returns up to levels levels of each side of an instrument.
func (c *Client) Depth(ctx context.Context, inst engine.InstrumentID, levels int) (bids, asks []engine.LevelInfo, err error) {
	res, err := c.query(ctx, wire.Query{Kind: wire.QueryDepth, Instrument: inst, Levels: uint8(min(max(levels, 1), 255))})
	return res.Bids, res.Asks, err
}

// Order returns one of the account's open orders.
func (c *Client) Order(ctx context.Context, id engine.OrderID) (engine.OrderInfo, bool, error) {
	res, err := c.query(ctx, wire.Query{Kind: wire.QueryOrder, OrderID: id})
	if err != nil || len(res.OrderList) == 0 {
		return engine.OrderInfo{}, false, err
	}
	return res.OrderList[0], true, nil
}

// OrderStatus returns what one of the account's orders became — open,
// filled or canceled — from the server's order history (Found is false
// for an order it does not know or no longer keeps).
func (c *Client) OrderStatus(ctx context.Context, id engine.OrderID) (wire.OrderStatus, error) {
	res, err := c.query(ctx, wire.Query{Kind: wire.QueryOrderStatus, OrderID: id})
	return res.Status, err
}

// OrderByRef is OrderStatus for the order this session entered (or last
// replaced) with reference ref: how a client finds out what became of a
// command whose answer it missed.
func (c *Client) OrderByRef(ctx context.Context, ref engine.ClientRef) (wire.OrderStatus, error) {
	res, err := c.query(ctx, wire.Query{Kind: wire.QueryOrderByRef, OrderID: engine.OrderID(ref)})
	return res.Status, err
}

// Executions returns the account's latest n fills (1-255), newest first.
func (c *Client) Executions(ctx context.Context, n int) ([]wire.Fill, error) {
	res, err := c.query(ctx, wire.Query{Kind: wire.QueryExecutions, Levels: uint8(min(max(n, 1), wire.MaxFills))})
	return res.Fills, err
}

// OpenOrders returns the account's open orders, oldest first.
func (c *Client) OpenOrders(ctx context.Context) ([]engine.OrderInfo, error) {
	res, err := c.query(ctx, wire.Query{Kind: wire.QueryOpenOrders})
	return res.OrderList, err
}

// Instruments returns the server's instrument directory (cached after the
// first call).
func (c *Client) Instruments(ctx context.Context) ([]wire.InstrumentInfo, error) {
	c.mu.Lock()
	dir := c.dir
	c.mu.Unlock()
	if dir != nil {
		return dir, nil
	}
	res, err := c.query(ctx, wire.Query{Kind: wire.QueryInstrument})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.dir = res.Instruments
	c.mu.Unlock()
	return res.Instruments, nil
}

// Instrument finds an instrument by symbol and returns its decimal scale,
// for converting human prices and quantities to ticks and lots.
func (c *Client) Instrument(ctx context.Context, symbol string) (wire.InstrumentInfo, units.Scale, error) {
	dir, err := c.Instruments(ctx)
	if err != nil {
		return wire.InstrumentInfo{}, units.Scale{}, err
	}
	for _, in := range dir {
		if in.Symbol == symbol {
			sc, err := units.NewScale(in.TickSize, in.LotSize)
			return in, sc, err
		}
	}
	return wire.InstrumentInfo{}, units.Scale{}, fmt.Errorf("client: no instrument %q", symbol)
}
