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
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/units"
)

// Config configures a client.
type Config struct {
	Addr               string
	Account            engine.AccountID
	Token              string
	CancelOnDisconnect bool
	// Heartbeat is how long the client stays silent before it sends a
	// Heartbeat (the server cuts sessions idle for 15 s). Default 1s.
	Heartbeat time.Duration
	// OnMessage, if set, receives every message from the server, in order,
	// on the client's reader goroutine. m is valid only during the call.
	OnMessage func(m *Message)
}

// Message is one message from the server, decoded into the field its Type
// names.
type Message struct {
	Type         byte
	Accepted     wire.Accepted
	Rejected     wire.Rejected
	Executed     wire.Executed
	Canceled     wire.Canceled
	Replaced     wire.Replaced
	MassCanceled wire.MassCanceled
	Top          wire.Top
	Depth        wire.Depth
	Bids, Asks   []engine.LevelInfo
	Orders       wire.Orders
	OrderList    []engine.OrderInfo
	Instruments  []wire.InstrumentInfo
	Snapshot     wire.BookSnapshot // one frame of it: its levels are in Bids and Asks
	Level        wire.LevelUpdate
	Trade        wire.Trade
	Reason       uint8 // Goodbye
}

// Errors.
var (
	ErrLoginRejected = errors.New("client: login rejected")
	ErrClosed        = errors.New("client: connection closed")
)

// RejectError is returned by the synchronous helpers when the server
// rejects the command.
type RejectError struct{ Reason engine.RejectReason }

func (e *RejectError) Error() string { return "client: rejected: " + e.Reason.String() }

type waitKey struct {
	kind byte
	v    uint64
}

// Client is a logged-in session. Its methods are safe for concurrent use.
type Client struct {
	cfg     Config
	conn    net.Conn
	session uint64

	wmu       sync.Mutex
	lastWrite time.Time
	massMu    sync.Mutex // one mass cancel at a time: its answer carries no reference

	mu      sync.Mutex
	waiters map[waitKey]chan Message
	partial map[uint32]*Message // Orders answers still receiving frames
	lastRef engine.ClientRef
	nextReq uint32
	err     error
	dir     []wire.InstrumentInfo
	books   map[engine.InstrumentID]*Book

	done chan struct{}
}

// Dial connects and logs in.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	if len(cfg.Token) > wire.TokenSize {
		return nil, fmt.Errorf("client: token longer than %d bytes", wire.TokenSize)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	login := wire.Login{Version: wire.Version, Account: cfg.Account}
	if cfg.CancelOnDisconnect {
		login.Flags |= wire.FlagCancelOnDisconnect
	}
	copy(login.Token[:], cfg.Token)
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	rd := wire.NewReader(conn, wire.MaxFrame, 1<<17)
	if _, err := conn.Write(login.Append(nil)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("client: %w", err)
	}
	typ, body, err := rd.Next()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("client: login: %w", err)
	}
	conn.SetDeadline(time.Time{})
	switch typ {
	case wire.TypeLoginAccepted:
	case wire.TypeLoginRejected:
		conn.Close()
		return nil, fmt.Errorf("%w (reason %d)", ErrLoginRejected, body[0])
	default:
		conn.Close()
		return nil, fmt.Errorf("client: login answered with %q", typ)
	}
	var acc wire.LoginAccepted
	acc.Decode(body)
	c := &Client{cfg: cfg, conn: conn, session: acc.Connection, waiters: map[waitKey]chan Message{},
		partial: map[uint32]*Message{}, books: map[engine.InstrumentID]*Book{}, done: make(chan struct{}), lastWrite: time.Now()}
	go c.read(rd)
	go c.heartbeat()
	return c, nil
}

// Session returns the server's id for this session.
func (c *Client) Session() uint64 { return c.session }

// Close logs out and closes the connection.
func (c *Client) Close() error {
	c.Send(wire.AppendEmpty(nil, wire.TypeLogout))
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
	return c.conn.Close()
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
// account across sessions, and the clock carries that across restarts.
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

func (c *Client) read(rd *wire.Reader) {
	defer close(c.done)
	var m Message
	for {
		typ, body, err := rd.Next()
		if err != nil {
			c.finish(fmt.Errorf("%w: %v", ErrClosed, err))
			return
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
		case wire.TypeGoodbye:
			m.Reason = body[0]
		}
		if err != nil {
			c.finish(fmt.Errorf("client: bad message from server: %w", err))
			c.conn.Close()
			return
		}
		if c.cfg.OnMessage != nil {
			c.cfg.OnMessage(&m)
		}
		if key.kind != 0 {
			c.mu.Lock()
			w := c.waiters[key]
			delete(c.waiters, key)
			c.mu.Unlock()
			if w != nil {
				w <- m
			}
		}
		if typ == wire.TypeGoodbye {
			c.finish(fmt.Errorf("%w: goodbye, reason %d", ErrClosed, m.Reason))
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
	c.waiters[key] = ch
	c.mu.Unlock()
	if err := c.Send(frame); err != nil {
		return Message{}, err
	}
	select {
	case m := <-ch:
		return m, nil
	case <-c.done:
		return Message{}, c.Err()
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
	res, err := c.roundTrip(ctx, waitKey{'r', uint64(m.Ref)}, m.Append(nil))
	if err != nil {
		return wire.Accepted{}, err
	}
	if res.Type == wire.TypeRejected {
		return wire.Accepted{}, &RejectError{res.Rejected.Reason}
	}
	return res.Accepted, nil
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
	res, err := c.roundTrip(ctx, waitKey{'r', uint64(m.Ref)}, m.Append(nil))
	if err == nil && res.Type == wire.TypeRejected {
		err = &RejectError{res.Rejected.Reason}
	}
	return res, err
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
