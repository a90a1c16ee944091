package client_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/api/apitest"
	"github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// recorder keeps every stream message a client delivers.
type recorder struct {
	mu   sync.Mutex
	msgs []client.Message
}

func (r *recorder) on(m *client.Message) {
	if _, ok := m.Report(); !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *m
	r.msgs = append(r.msgs, c)
}

func (r *recorder) all() []client.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Message(nil), r.msgs...)
}

// waitFor waits until the recorder holds n messages.
func (r *recorder) waitFor(t *testing.T, n int) []client.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := r.all()
		if len(all) >= n {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d stream messages, want %d", len(all), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func msgNumber(m client.Message) uint64 {
	r, _ := m.Report()
	return r.Msg
}

func dialSession(t *testing.T, addr string, acct engine.AccountID, session string, next uint64, rec *recorder, mod func(*client.Config)) *client.Client {
	t.Helper()
	tokens := map[engine.AccountID]string{1: "alice-demo", 2: "bob-demo"}
	cfg := client.Config{Addr: addr, Account: acct, Token: tokens[acct], Session: session, Next: next}
	if rec != nil {
		cfg.OnMessage = rec.on
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func order(ref engine.ClientRef, side engine.Side, price engine.Price, qty engine.Qty) wire.NewOrder {
	return wire.NewOrder{Ref: ref, Instrument: 1, Side: side, Type: engine.Limit, TIF: engine.GTC, Price: price, Qty: qty}
}

// TestSessionResumeReplaysWhatWasMissed: fills that happen while a named
// session is away are replayed, numbered without a gap, when it comes
// back asking for the next number; a fresh login (next 0) replays nothing.
func TestSessionResumeReplaysWhatWasMissed(t *testing.T) {
	addr := apitest.Start(t)
	ctx := context.Background()
	var rec recorder
	a := dialSession(t, addr, 1, "ALGO-1", 0, &rec, nil)
	for i := range 3 {
		if _, err := a.Submit(ctx, order(engine.ClientRef(i+1), engine.Buy, 9_990, 5)); err != nil {
			t.Fatal(err)
		}
	}
	first := rec.waitFor(t, 3)
	last := a.LastMsg()
	if last != 3 || msgNumber(first[0]) != 1 || !first[2].EndOfCommand() {
		t.Fatalf("last %d, first messages %+v", last, first)
	}
	a.Close()

	bob := dialSession(t, addr, 2, "BOB", 0, nil, nil)
	if _, err := bob.Submit(ctx, wire.NewOrder{Ref: 1, Instrument: 1, Side: engine.Sell, Type: engine.Limit,
		TIF: engine.IOC, Price: 9_990, Qty: 12}); err != nil {
		t.Fatal(err)
	}
	// Three fills of ALGO-1's orders happened while it was away. (It
	// takes the session over: the server may not have seen the first
	// connection close yet, which the race detector's slowness showed.)
	var rec2 recorder
	a2 := dialSession(t, addr, 1, "ALGO-1", last+1, &rec2, func(c *client.Config) { c.TakeOver = true })
	got := rec2.waitFor(t, 3)
	for i, m := range got {
		if m.Type != wire.TypeExecuted || msgNumber(m) != last+1+uint64(i) || m.Executed.Liquidity != wire.LiquidityAdded {
			t.Fatalf("replayed message %d: %+v", i, m)
		}
	}
	if a2.LastMsg() != 6 {
		t.Fatalf("last %d after the replay, want 6", a2.LastMsg())
	}
	a2.Close()

	// A fresh login replays nothing and numbers on.
	var rec3 recorder
	a3 := dialSession(t, addr, 1, "ALGO-1", 0, &rec3, nil)
	if _, err := a3.Submit(ctx, order(10, engine.Buy, 9_980, 1)); err != nil {
		t.Fatal(err)
	}
	got = rec3.waitFor(t, 1)
	if len(got) != 1 || msgNumber(got[0]) != 7 {
		t.Fatalf("fresh login got %+v", got)
	}
}

// TestSessionRefsArePerSession: two sessions of one account use the same
// references without colliding; within one session they must increase.
func TestSessionRefsArePerSession(t *testing.T) {
	addr := apitest.Start(t)
	ctx := context.Background()
	a := dialSession(t, addr, 1, "A", 0, nil, nil)
	b := dialSession(t, addr, 1, "B", 0, nil, nil)
	for ref := engine.ClientRef(1); ref <= 50; ref++ {
		if _, err := a.Submit(ctx, order(ref, engine.Buy, 9_000, 1)); err != nil {
			t.Fatalf("A ref %d: %v", ref, err)
		}
		if _, err := b.Submit(ctx, order(ref, engine.Buy, 9_000, 1)); err != nil {
			t.Fatalf("B ref %d: %v", ref, err)
		}
	}
	var re *client.RejectError
	if _, err := a.Submit(ctx, order(50, engine.Buy, 9_000, 1)); !errors.As(err, &re) || re.Reason != engine.RejectStaleClientRef {
		t.Fatalf("a repeated ref in one session: %v", err)
	}
}

// TestCancelOnDisconnectIsPerSession: a session that drops cancels only
// the orders it entered; the account's other session keeps its own.
func TestCancelOnDisconnectIsPerSession(t *testing.T) {
	addr := apitest.Start(t)
	ctx := context.Background()
	cod := dialSession(t, addr, 1, "COD", 0, nil, func(c *client.Config) { c.CancelOnDisconnect = true })
	keep := dialSession(t, addr, 1, "KEEP", 0, nil, nil)
	gone, err := cod.Submit(ctx, order(1, engine.Buy, 9_000, 1))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := keep.Submit(ctx, order(1, engine.Buy, 9_000, 1))
	if err != nil {
		t.Fatal(err)
	}
	cod.Drop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, open, err := keep.Order(ctx, gone.OrderID); err != nil || !open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dropped session's order is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, open, err := keep.Order(ctx, kept.OrderID); err != nil || !open {
		t.Fatalf("the other session's order is gone: %v", err)
	}
	// The cancel is in the dropped session's stream.
	var rec recorder
	dialSession(t, addr, 1, "COD", 1, &rec, nil)
	got := rec.waitFor(t, 3) // accepted, canceled (mass), mass canceled
	if got[1].Type != wire.TypeCanceled || got[1].Canceled.Reason != engine.CancelMass || got[2].Type != wire.TypeMassCanceled ||
		!got[2].EndOfCommand() {
		t.Fatalf("the resumed stream: %+v", got)
	}
}

// TestSessionInUseAndTakeOver: a second login to a session that has a
// connection is refused unless it takes over, which ends the first.
func TestSessionInUseAndTakeOver(t *testing.T) {
	addr := apitest.Start(t)
	first := dialSession(t, addr, 1, "ONE", 0, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Dial(ctx, client.Config{Addr: addr, Account: 1, Token: "alice-demo", Session: "ONE"})
	var le *client.LoginError
	if !errors.As(err, &le) || le.Reason != wire.LoginSessionInUse {
		t.Fatalf("second login: %v", err)
	}
	dialSession(t, addr, 1, "ONE", 0, nil, func(c *client.Config) { c.TakeOver = true })
	select {
	case <-first.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first connection was not ended")
	}
	if err := first.Err(); err == nil || !errors.Is(err, client.ErrClosed) ||
		!strings.Contains(err.Error(), "goodbye: another connection took the session over (reason 9)") {
		t.Fatalf("first connection ended with %v", err)
	}
	if !strings.Contains(err.Error(), "the session is in use by another connection (reason 9)") {
		t.Errorf("the second login's error in words: %v", err)
	}
	// Bad requests are refused with their reasons.
	for _, tc := range []struct {
		session string
		next    uint64
		reason  uint8
	}{{"ONE", 99, wire.LoginAheadOfStream}} {
		_, err := client.Dial(ctx, client.Config{Addr: addr, Account: 1, Token: "alice-demo", Session: tc.session, Next: tc.next, TakeOver: true})
		if !errors.As(err, &le) || le.Reason != tc.reason {
			t.Fatalf("%+v: %v", tc, err)
		}
	}
}

// TestSessionStreamSurvivesRestart: the stream a session resumes after
// the server restarts is the one it was sent before, message for message.
func TestSessionStreamSurvivesRestart(t *testing.T) {
	fs := vfs.NewCrashableMem()
	cfg := apitest.NodeConfig(fs)
	n := apitest.StartNodeWith(t, cfg)
	ctx := context.Background()
	var rec recorder
	a := dialSession(t, n.Addr().String(), 1, "ALGO", 0, &rec, nil)
	bob := dialSession(t, n.Addr().String(), 2, "BOB", 0, nil, nil)
	for i := range 20 {
		if _, err := a.Submit(ctx, order(engine.ClientRef(i+1), engine.Buy, 9_990-engine.Price(i%3), 3)); err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			if _, err := bob.Submit(ctx, wire.NewOrder{Ref: engine.ClientRef(i), Instrument: 1, Side: engine.Sell,
				Type: engine.Limit, TIF: engine.IOC, Price: 9_980, Qty: 7}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := a.MassCancel(ctx, 0); err != nil {
		t.Fatal(err)
	}
	before := rec.waitFor(t, int(a.LastMsg()))
	a.Close()
	bob.Close()
	if err := n.Close(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	n = apitest.StartNodeWith(t, cfg)
	var rec2 recorder
	a2 := dialSession(t, n.Addr().String(), 1, "ALGO", 1, &rec2, nil)
	after := rec2.waitFor(t, len(before))
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("the stream after the restart differs:\nbefore %+v\nafter  %+v", before, after)
	}
	if _, err := a2.Submit(ctx, order(100, engine.Buy, 9_000, 1)); err != nil {
		t.Fatal(err)
	}
	if got := rec2.waitFor(t, len(before)+1); msgNumber(got[len(before)]) != uint64(len(before)+1) {
		t.Fatalf("after the restart the stream goes on at %d", msgNumber(got[len(before)]))
	}
}

// TestReconnectResumesAndNeverExecutesTwice: a client whose connection
// breaks with commands in flight reconnects by itself; each command is
// either answered (once, from the replay or live) or reported not
// received, and sending those again executes each exactly once.
func TestReconnectResumesAndNeverExecutesTwice(t *testing.T) {
	addr := apitest.Start(t)
	var rec recorder
	var caught sync.WaitGroup
	caught.Add(2) // the first login, and the reconnect
	c := dialSession(t, addr, 1, "RC", 0, &rec, func(cfg *client.Config) {
		cfg.Reconnect = true
		cfg.OnCaughtUp = func(wire.LoginAccepted) { caught.Done() }
	})
	for ref := engine.ClientRef(1); ref <= 200; ref++ {
		o := order(ref, engine.Buy, 9_000, 1)
		c.Send(o.Append(nil))
	}
	c.Drop()
	caught.Wait()
	// Whatever was not answered never reached the engine: send it again.
	answered := map[engine.ClientRef]bool{}
	for _, m := range rec.all() {
		if m.Type == wire.TypeAccepted {
			if answered[m.Accepted.Ref] {
				t.Fatalf("ref %d accepted twice", m.Accepted.Ref)
			}
			answered[m.Accepted.Ref] = true
		}
	}
	ctx := context.Background()
	for ref := engine.ClientRef(1); ref <= 200; ref++ {
		if !answered[ref] {
			if _, err := c.Submit(ctx, order(ref+1000, engine.Buy, 9_000, 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	open, err := c.OpenOrders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 200 {
		t.Fatalf("%d open orders, want 200 (answered before the drop: %d)", len(open), len(answered))
	}
	for i, m := range rec.all() {
		if msgNumber(m) != uint64(i+1) {
			t.Fatalf("message %d has number %d", i, msgNumber(m))
		}
	}
}

// TestBookResumesAcrossDropsAndRestart: a subscriber whose connection is
// dropped, and whose server restarts, resubscribes from the next feed
// number by itself and is sent what it missed: its book ends equal to the
// server's depth, from the one snapshot it got at the start.
func TestBookResumesAcrossDropsAndRestart(t *testing.T) {
	fs := vfs.NewCrashableMem()
	cfg := apitest.NodeConfig(fs)
	cfg.API.Listen = "127.0.0.1:0"
	n := apitest.StartNodeWith(t, cfg)
	ctx := context.Background()
	var mu sync.Mutex
	snapshots, resumed := 0, 0
	sub := dialSession(t, n.Addr().String(), 1, "WATCH", 0, nil, func(c *client.Config) {
		c.Reconnect = true
		c.OnMessage = func(m *client.Message) {
			if m.Type == wire.TypeBookSnapshot {
				mu.Lock()
				if m.Snapshot.Resumed {
					resumed++
				} else {
					snapshots++
				}
				mu.Unlock()
			}
		}
	})
	book, err := sub.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	drops := 0
	// awaitResumed waits until the subscriber has resumed want times.
	awaitResumed := func(want int) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			got := resumed
			mu.Unlock()
			if got >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("resumed %d times, want %d", got, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	trade := func(addr string, from engine.ClientRef) {
		tr := dialSession(t, addr, 2, "MAKER", 0, nil, func(c *client.Config) { c.TakeOver = true })
		for i := range engine.ClientRef(30) {
			side := engine.Side(1 + i%2)
			if _, err := tr.Submit(ctx, order(from+i, side, 9_990+engine.Price(i%7), 1+engine.Qty(i%4))); err != nil {
				t.Fatal(err)
			}
			if i%10 == 5 {
				sub.Drop()
				drops++
				awaitResumed(drops)
			}
		}
		tr.Close()
	}
	trade(n.Addr().String(), 1)
	// A restart on the same port: the subscriber reconnects there.
	addr := n.Addr().String()
	if err := n.Close(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	cfg.API.Listen = addr
	apitest.StartNodeWith(t, cfg)
	drops++ // the restart
	awaitResumed(drops)
	trade(addr, 100)
	deadline := time.Now().Add(10 * time.Second)
	for {
		bids, asks, err := sub.Depth(ctx, 1, 50)
		if err == nil {
			b, a := book.Depth(50)
			if reflect.DeepEqual(b, bids) && reflect.DeepEqual(a, asks) && book.Err() == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			b, a := book.Depth(50)
			t.Fatalf("book %v %v (err %v), server %v %v (%v)", b, a, book.Err(), bids, asks, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if snapshots != 1 || resumed != drops {
		t.Fatalf("%d full snapshots and %d resumptions; want 1 and %d", snapshots, resumed, drops)
	}
}

// TestOrderStatusAndExecutions: the status of an order that filled or was
// canceled is still there, by id and by (session, reference); the
// account's latest fills come newest first.
func TestOrderStatusAndExecutions(t *testing.T) {
	addr := apitest.Start(t)
	ctx := context.Background()
	a := dialSession(t, addr, 1, "HIST", 0, nil, nil)
	bob := dialSession(t, addr, 2, "BOB", 0, nil, nil)
	filled, err := a.Submit(ctx, order(1, engine.Buy, 9_990, 5))
	if err != nil {
		t.Fatal(err)
	}
	gone, err := a.Submit(ctx, order(2, engine.Buy, 9_000, 4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Cancel(ctx, gone.OrderID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Submit(ctx, wire.NewOrder{Ref: 1, Instrument: 1, Side: engine.Sell, Type: engine.Limit,
		TIF: engine.IOC, Price: 9_990, Qty: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Submit(ctx, wire.NewOrder{Ref: 2, Instrument: 1, Side: engine.Sell, Type: engine.Limit,
		TIF: engine.IOC, Price: 9_990, Qty: 3}); err != nil {
		t.Fatal(err)
	}
	st, err := a.OrderStatus(ctx, filled.OrderID)
	if err != nil || !st.Found || st.State != wire.OrderFilled || st.Filled != 5 || st.Leaves != 0 || st.Session.String() != "HIST" {
		t.Fatalf("filled order: %+v %v", st, err)
	}
	st, err = a.OrderByRef(ctx, 2)
	if err != nil || !st.Found || st.OrderID != gone.OrderID || st.State != wire.OrderCanceled || st.Qty != 4 {
		t.Fatalf("canceled order by ref: %+v %v", st, err)
	}
	if st, err := bob.OrderStatus(ctx, filled.OrderID); err != nil || st.Found {
		t.Fatalf("another account's order: %+v %v", st, err)
	}
	fills, err := a.Executions(ctx, 10)
	if err != nil || len(fills) != 2 || fills[0].Qty != 3 || fills[1].Qty != 2 || fills[0].Liquidity != wire.LiquidityAdded ||
		fills[0].Side != engine.Buy || fills[0].OrderID != filled.OrderID {
		t.Fatalf("fills: %+v %v", fills, err)
	}
}

// TestTwoSessionsPipeliningNeverCollide: two sessions of one account each
// pipeline 20,000 orders as fast as they can, with references from the
// clock as the client makes them: not one is rejected as stale (with one
// shared reference space, interleaving made nearly half of them fail).
func TestTwoSessionsPipeliningNeverCollide(t *testing.T) {
	addr := apitest.Start(t)
	const n = 20_000
	var wg sync.WaitGroup
	for _, name := range []string{"PIPE-A", "PIPE-B"} {
		var stale, answered atomic.Int64
		done := make(chan struct{})
		c := dialSession(t, addr, 1, name, 0, nil, func(cfg *client.Config) {
			cfg.OnMessage = func(m *client.Message) {
				if m.Type == wire.TypeRejected && m.Rejected.Reason == engine.RejectStaleClientRef {
					stale.Add(1)
				}
				if m.EndOfCommand() && answered.Add(1) == n {
					close(done)
				}
			}
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range n {
				o := wire.NewOrder{Ref: c.NextRef(), Instrument: 1, Side: engine.Side(1 + i%2), Type: engine.Limit,
					TIF: engine.IOC, Price: 9_000 + engine.Price(i%2)*2_000, Qty: 1}
				buf = o.Append(buf)
				if len(buf) > 32<<10 {
					c.Send(buf)
					buf = buf[:0]
				}
			}
			c.Send(buf)
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Errorf("%s: %d of %d answered", name, answered.Load(), n)
			}
			if stale.Load() != 0 {
				t.Errorf("%s: %d stale-reference rejects", name, stale.Load())
			}
		}()
	}
	wg.Wait()
}

// TestOrderStatusOlderThanTheHistory: an order the history's ring has
// come round over is still found while it is open (the engine is asked),
// by id and by reference; once finished it is no longer known.
func TestOrderStatusOlderThanTheHistory(t *testing.T) {
	cfg := apitest.NodeConfig(vfs.NewCrashableMem())
	cfg.API.OrderHistory = 4
	n := apitest.StartNodeWith(t, cfg)
	ctx := context.Background()
	a := dialSession(t, n.Addr().String(), 1, "OLD", 0, nil, nil)
	first, err := a.Submit(ctx, order(1, engine.Buy, 9_000, 3))
	if err != nil {
		t.Fatal(err)
	}
	for ref := engine.ClientRef(2); ref <= 12; ref++ {
		if _, err := a.Submit(ctx, order(ref, engine.Buy, 9_001, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, get := range []func() (wire.OrderStatus, error){
		func() (wire.OrderStatus, error) { return a.OrderStatus(ctx, first.OrderID) },
		func() (wire.OrderStatus, error) { return a.OrderByRef(ctx, 1) },
	} {
		st, err := get()
		if err != nil || !st.Found || st.State != wire.OrderOpen || st.OrderID != first.OrderID || st.Leaves != 3 ||
			st.Session.String() != "OLD" {
			t.Fatalf("an old open order: %+v %v", st, err)
		}
	}
	if _, err := a.Cancel(ctx, first.OrderID); err != nil {
		t.Fatal(err)
	}
	if st, err := a.OrderStatus(ctx, first.OrderID); err != nil || st.Found {
		t.Fatalf("an old finished order: %+v %v", st, err)
	}
}
