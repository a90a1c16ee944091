package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mclient "github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

var matchdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "matchd-e2e")
	if err != nil {
		panic(err)
	}
	matchdBin = filepath.Join(dir, "matchd")
	if bin := os.Getenv("MATCHD_BIN"); bin != "" {
		// Another build (an older one, to see a test fail on it).
		matchdBin = bin
	} else if out, err := exec.Command("go", "build", "-o", matchdBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building matchd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a matchd process on 127.0.0.1 and an ephemeral port.
type server struct {
	cmd          *exec.Cmd
	addr         string
	admin        string
	web          string // the web view's address, if it serves one
	exit         chan error
	data, config string // set by startAttackServer

	mu  sync.Mutex
	log []string // every line it has logged
}

// logLine returns the first line of the server's log that contains s.
func (s *server) logLine(sub string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.log {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

var (
	readyRE = regexp.MustCompile(`msg="matchd: ready" orders=(\S+)`)
	adminRE = regexp.MustCompile(`msg="matchd: admin endpoints" admin=(\S+)`)
	webRE   = regexp.MustCompile(`msg="matchd: web view" web=http://(\S+)/`)
)

func startServer(t testing.TB, data string) *server {
	t.Helper()
	return startWith(t, "--config", "../../configs/demo.json", "--data", data)
}

// startWith starts matchd on ephemeral loopback ports with extra flags and
// waits until it is ready.
func startWith(t testing.TB, args ...string) *server {
	t.Helper()
	args = append(args, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if !slices.Contains(args, "--web") {
		args = append(args, "--web", "127.0.0.1:0")
	}
	return startCmd(t, exec.Command(matchdBin, args...))
}

// startCmd starts a matchd command line that listens on ephemeral
// loopback ports and waits until it is ready.
func startCmd(t testing.TB, cmd *exec.Cmd) *server {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, exit: make(chan error, 1)}
	addr := make(chan string, 1)
	admin := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log = append(s.log, sc.Text())
			s.mu.Unlock()
			if m := webRE.FindStringSubmatch(sc.Text()); m != nil {
				s.web = m[1] // logged before ready: read after addr arrives
			}
			// (A replica restarting itself logs these again: never block.)
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			if m := adminRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case admin <- m[1]:
				default:
				}
			}
		}
		s.exit <- cmd.Wait()
	}()
	select {
	case s.addr = <-addr:
		select { // logged before ready, if there is one
		case s.admin = <-admin:
		default:
		}
	case err := <-s.exit:
		s.mu.Lock()
		log := s.log[max(0, len(s.log)-20):]
		s.mu.Unlock()
		t.Fatalf("matchd exited before it was ready: %v; its last lines:\n%s", err, strings.Join(log, "\n"))
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("matchd did not become ready")
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return s
}

// stop sends SIGTERM and returns the exit code.
func (s *server) stop(t testing.TB) int {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exit:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatal("matchd did not stop on SIGTERM")
		return -1
	}
}

// client speaks the raw protocol.
type client struct {
	t  *testing.T
	c  net.Conn
	rd *wire.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, rd: wire.NewReader(c, wire.MaxFrame, 1<<17)}
}

func (c *client) send(frame []byte) {
	c.t.Helper()
	if _, err := c.c.Write(frame); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next frame that is not a heartbeat.
func (c *client) next() (byte, []byte) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		typ, body, err := c.rd.Next()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if typ != wire.TypeHeartbeat {
			return typ, append([]byte(nil), body...)
		}
	}
}

func (c *client) expect(typ byte) []byte {
	c.t.Helper()
	got, body := c.next()
	if got != typ {
		c.t.Fatalf("got message %q (% x), want %q", got, body, typ)
	}
	return body
}

func login(t *testing.T, addr string, acct engine.AccountID, token string) *client {
	t.Helper()
	c := dial(t, addr)
	m := wire.Login{Version: wire.Version, Account: acct}
	copy(m.Token[:], token)
	c.send(m.Append(nil))
	c.expect(wire.TypeLoginAccepted)
	return c
}

// closed reports whether the server closed the connection (after any
// Goodbye it sent).
func (c *client) closed() bool {
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.rd.Next()
		if err != nil {
			return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
		}
	}
}

// readToEnd reads everything a cut-off client can still read and returns
// the Goodbye reason it saw (0 for none) and the error that ended it. The
// server cuts a slow consumer off one of two ways: its queue overflows
// (Goodbye "slow consumer", then close), or a write into its full socket
// times out (close mid-frame: no Goodbye can get through).
func (c *client) readToEnd() (bye uint8, end error) {
	c.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for end == nil {
		typ, body, err := c.rd.Next()
		if err == nil && typ == wire.TypeGoodbye {
			bye = body[0]
		}
		end = err
	}
	return bye, end
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

const aapl = engine.InstrumentID(1)

func TestOrderLifecycleOverTheWire(t *testing.T) {
	srv := startServer(t, t.TempDir())
	alice := login(t, srv.addr, 1, "alice-demo")
	bob := login(t, srv.addr, 2, "bob-demo")

	alice.send((&wire.NewOrder{Ref: 1, Instrument: aapl, Side: engine.Sell, Type: engine.Limit, TIF: engine.GTC,
		Price: 10_000, Qty: 5}).Append(nil))
	var acc wire.Accepted
	acc.Decode(alice.expect(wire.TypeAccepted))
	if acc.Ref != 1 || acc.OrderID == 0 || acc.Seq == 0 || acc.Time == 0 || acc.Price != 10_000 {
		t.Fatalf("accepted: %+v", acc)
	}

	// Bob takes 3: he gets Accepted and Executed (removed liquidity), and
	// alice an Executed (added liquidity) for her resting order.
	bob.send((&wire.NewOrder{Ref: 1, Instrument: aapl, Side: engine.Buy, Type: engine.Limit, TIF: engine.IOC,
		Price: 10_000, Qty: 3}).Append(nil))
	bob.expect(wire.TypeAccepted)
	var ex wire.Executed
	ex.Decode(bob.expect(wire.TypeExecuted))
	if ex.Qty != 3 || ex.Price != 10_000 || ex.Liquidity != wire.LiquidityRemoved || ex.Leaves != 0 {
		t.Fatalf("bob's execution: %+v", ex)
	}
	ex.Decode(alice.expect(wire.TypeExecuted))
	if ex.OrderID != acc.OrderID || ex.Qty != 3 || ex.Leaves != 2 || ex.Liquidity != wire.LiquidityAdded {
		t.Fatalf("alice's execution: %+v", ex)
	}

	// Bob may not cancel alice's order, and cannot tell it from one that
	// does not exist: both are unknown-order, and a replace too.
	bob.send((&wire.Cancel{OrderID: acc.OrderID}).Append(nil))
	var rej, rej2 wire.Rejected
	rej.Decode(bob.expect(wire.TypeRejected))
	if rej.Reason != engine.RejectUnknownOrder {
		t.Fatalf("bob's cancel of alice's live order: %+v", rej)
	}
	bob.send((&wire.Cancel{OrderID: acc.OrderID + 1000}).Append(nil))
	rej2.Decode(bob.expect(wire.TypeRejected))
	if rej2.Reason != rej.Reason {
		t.Fatalf("cancel of a live order of another account %+v differs from one of no order %+v", rej, rej2)
	}
	bob.send((&wire.Replace{OrderID: acc.OrderID, Ref: 100, Qty: 9}).Append(nil))
	rej.Decode(bob.expect(wire.TypeRejected))
	if rej.Reason != engine.RejectUnknownOrder {
		t.Fatalf("bob's replace of alice's live order: %+v", rej)
	}

	// Top of book and alice's own open orders; bob sees none of hers.
	alice.send((&wire.Query{Request: 9, Kind: wire.QueryTop, Instrument: aapl}).Append(nil))
	var top wire.Top
	top.Decode(alice.expect(wire.TypeTop))
	if top.Request != 9 || !top.Found || top.AskPrice != 10_000 || top.AskQty != 2 || top.BidQty != 0 {
		t.Fatalf("top: %+v", top)
	}
	bob.send((&wire.Query{Request: 3, Kind: wire.QueryOrder, OrderID: acc.OrderID}).Append(nil))
	var om wire.Orders
	if orders, _ := om.Decode(bob.expect(wire.TypeOrders), nil); len(orders) != 0 {
		t.Fatalf("bob can see alice's order: %+v", orders)
	}

	// Malformed input: an unknown type closes that session with a Goodbye;
	// the others go on.
	bob.send([]byte{0x00, 0x01, 'Z'})
	var bye [1]byte
	copy(bye[:], bob.expect(wire.TypeGoodbye))
	if bye[0] != wire.ByeMalformed || !bob.closed() {
		t.Fatalf("malformed frame: goodbye %d", bye[0])
	}
	alice.send((&wire.Cancel{OrderID: acc.OrderID}).Append(nil))
	var can wire.Canceled
	can.Decode(alice.expect(wire.TypeCanceled))
	if can.Qty != 2 || can.Reason != engine.CancelUser {
		t.Fatalf("cancel: %+v", can)
	}
	alice.send(wire.AppendEmpty(nil, wire.TypeLogout))
	copy(bye[:], alice.expect(wire.TypeGoodbye))
	if bye[0] != wire.ByeLogout {
		t.Fatalf("logout: goodbye %d", bye[0])
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("matchd exited %d on SIGTERM", code)
	}
}

func TestLoginAndFraming(t *testing.T) {
	srv := startServer(t, t.TempDir())
	// Wrong token.
	c := dial(t, srv.addr)
	m := wire.Login{Version: wire.Version, Account: 1}
	copy(m.Token[:], "bob-demo")
	c.send(m.Append(nil))
	if b := c.expect(wire.TypeLoginRejected); b[0] != wire.LoginBadCredentials || !c.closed() {
		t.Fatalf("bad token: reason %d", b[0])
	}
	// A version 1 Login (39 bytes, as version 1 clients send it): told
	// the version is not supported, not that the frame is malformed.
	c = dial(t, srv.addr)
	v1 := m.Append(nil)[:wire.HeaderSize+39]
	v1[1], v1[4] = 40, 1 // length 1+39, version 1
	c.send(v1)
	if b := c.expect(wire.TypeLoginRejected); b[0] != wire.LoginBadVersion || !c.closed() {
		t.Fatalf("version 1 login: reason %d", b[0])
	}
	// A session name that is not printable ASCII.
	c = dial(t, srv.addr)
	bad := wire.Login{Version: wire.Version, Account: 1, Session: wire.SessionName{'a', ' ', 'b'}}
	copy(bad.Token[:], "alice-demo")
	c.send(bad.Append(nil))
	if b := c.expect(wire.TypeLoginRejected); b[0] != wire.LoginBadSession {
		t.Fatalf("bad session name: reason %d", b[0])
	}
	// An order before logging in.
	c = dial(t, srv.addr)
	c.send((&wire.Cancel{OrderID: 1}).Append(nil))
	if b := c.expect(wire.TypeGoodbye); b[0] != wire.ByeNotLoggedIn {
		t.Fatalf("before login: reason %d", b[0])
	}
	// A frame over the client limit, after login.
	c = login(t, srv.addr, 2, "bob-demo")
	c.send([]byte{0x04, 0x00, 'N'})
	if b := c.expect(wire.TypeGoodbye); b[0] != wire.ByeMalformed || !c.closed() {
		t.Fatalf("oversized frame: reason %d", b[0])
	}
	// A frame of the wrong length for its type.
	c = login(t, srv.addr, 2, "bob-demo")
	c.send([]byte{0x00, 0x03, 'X', 1, 2})
	if b := c.expect(wire.TypeGoodbye); b[0] != wire.ByeMalformed {
		t.Fatalf("short frame: reason %d", b[0])
	}
}

// TestAcknowledgedOrdersSurviveRestart: acknowledged orders are still there
// after a graceful restart and after SIGKILL.
func TestAcknowledgedOrdersSurviveRestart(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, data)
	alice := login(t, srv.addr, 1, "alice-demo")
	var ids []engine.OrderID
	for i := 1; i <= 20; i++ {
		alice.send((&wire.NewOrder{Ref: engine.ClientRef(i), Instrument: aapl, Side: engine.Buy, Type: engine.Limit,
			TIF: engine.GTC, Price: engine.Price(9_900 + i), Qty: 1}).Append(nil))
		var acc wire.Accepted
		acc.Decode(alice.expect(wire.TypeAccepted))
		ids = append(ids, acc.OrderID)
		if i == 10 {
			if code := srv.stop(t); code != 0 {
				t.Fatalf("graceful stop exited %d", code)
			}
			srv = startServer(t, data)
			alice = login(t, srv.addr, 1, "alice-demo")
		}
	}
	srv.cmd.Process.Kill() // SIGKILL right after the last acknowledgment
	<-srv.exit
	srv = startServer(t, data)
	alice = login(t, srv.addr, 1, "alice-demo")
	alice.send((&wire.Query{Request: 1, Kind: wire.QueryOpenOrders}).Append(nil))
	var om wire.Orders
	orders, err := om.Decode(alice.expect(wire.TypeOrders), nil)
	if err != nil || len(orders) != len(ids) {
		t.Fatalf("%d open orders after restarts, want %d (%v)", len(orders), len(ids), err)
	}
	for i, o := range orders {
		if o.ID != ids[i] {
			t.Fatalf("order %d is %d, want %d", i, o.ID, ids[i])
		}
	}
	// A client reference used before the restart is still stale after it.
	alice.send((&wire.NewOrder{Ref: 20, Instrument: aapl, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC,
		Price: 9_000, Qty: 1}).Append(nil))
	var rej wire.Rejected
	rej.Decode(alice.expect(wire.TypeRejected))
	if rej.Reason != engine.RejectStaleClientRef {
		t.Fatalf("reused ref: %+v", rej)
	}
}

// TestOrderTypesAndScopeOverTheWire: FOK, post-only and market orders, and
// mass cancel touching only the sender's account.
func TestOrderTypesAndScopeOverTheWire(t *testing.T) {
	srv := startServer(t, t.TempDir())
	alice := login(t, srv.addr, 1, "alice-demo")
	bob := login(t, srv.addr, 2, "bob-demo")
	nw := func(c *client, ref engine.ClientRef, side engine.Side, typ engine.OrderType, tif engine.TimeInForce, price engine.Price, qty engine.Qty) {
		c.send((&wire.NewOrder{Ref: ref, Instrument: aapl, Side: side, Type: typ, TIF: tif, Price: price, Qty: qty}).Append(nil))
	}
	nw(alice, 1, engine.Sell, engine.Limit, engine.GTC, 10_000, 5)
	alice.expect(wire.TypeAccepted)
	nw(bob, 1, engine.Buy, engine.Limit, engine.GTC, 9_000, 7)
	bob.expect(wire.TypeAccepted)
	// FOK for more than is there: rejected, book untouched.
	nw(bob, 2, engine.Buy, engine.Limit, engine.FOK, 10_000, 6)
	var rej wire.Rejected
	rej.Decode(bob.expect(wire.TypeRejected))
	if rej.Reason != engine.RejectFOKUnfillable {
		t.Fatalf("FOK: %+v", rej)
	}
	// Post-only that would cross: rejected.
	nw(bob, 3, engine.Buy, engine.Limit, engine.PostOnly, 10_000, 1)
	rej.Decode(bob.expect(wire.TypeRejected))
	if rej.Reason != engine.RejectWouldCross {
		t.Fatalf("post-only: %+v", rej)
	}
	// Market buy for 8: takes alice's 5, the rest is canceled.
	nw(bob, 4, engine.Buy, engine.Market, engine.IOC, 0, 8)
	bob.expect(wire.TypeAccepted)
	var ex wire.Executed
	ex.Decode(bob.expect(wire.TypeExecuted))
	var can wire.Canceled
	can.Decode(bob.expect(wire.TypeCanceled))
	if ex.Qty != 5 || can.Qty != 3 || can.Reason != engine.CancelUnfilled {
		t.Fatalf("market: %+v %+v", ex, can)
	}
	alice.expect(wire.TypeExecuted)
	// Bob's mass cancel cancels bob's resting bid only.
	nw(alice, 2, engine.Sell, engine.Limit, engine.GTC, 10_500, 1)
	alice.expect(wire.TypeAccepted)
	bob.send((&wire.MassCancel{}).Append(nil))
	can.Decode(bob.expect(wire.TypeCanceled))
	var mc wire.MassCanceled
	mc.Decode(bob.expect(wire.TypeMassCanceled))
	if can.Reason != engine.CancelMass || mc.Count != 1 {
		t.Fatalf("mass cancel: %+v %+v", can, mc)
	}
	alice.send((&wire.Query{Request: 1, Kind: wire.QueryOpenOrders}).Append(nil))
	var om wire.Orders
	if orders, _ := om.Decode(alice.expect(wire.TypeOrders), nil); len(orders) != 1 {
		t.Fatalf("alice's orders after bob's mass cancel: %+v", orders)
	}
}

// TestSlowConsumerIsCutOff: a client that pipelines orders and never reads
// its responses is disconnected with Goodbye "slow consumer"; everyone else
// is served throughout.
func TestSlowConsumerIsCutOff(t *testing.T) {
	srv := startServer(t, t.TempDir())
	slow := login(t, srv.addr, 2, "bob-demo")
	var buf []byte
	for i := 1; i <= 400_000; i++ { // ~24 MB of responses: more than socket buffers and the 4 MiB limit
		buf = (&wire.NewOrder{Ref: engine.ClientRef(i), Instrument: aapl, Side: engine.Buy, Type: engine.Limit,
			TIF: engine.IOC, Price: 9_000, Qty: 1}).Append(buf)
	}
	written := make(chan error, 1)
	go func() { _, err := slow.c.Write(buf); written <- err }()
	alice := login(t, srv.addr, 1, "alice-demo")
	for q := uint32(1); ; q++ { // served all along
		alice.send((&wire.Query{Request: q, Kind: wire.QueryTop, Instrument: aapl}).Append(nil))
		alice.expect(wire.TypeTop)
		select {
		case <-written:
		case <-time.After(50 * time.Millisecond):
			continue
		}
		break
	}
	time.Sleep(time.Second) // still not reading
	// Now read what the server sent before it gave up.
	bye, end := slow.readToEnd()
	switch {
	case !(errors.Is(end, io.EOF) || errors.Is(end, io.ErrUnexpectedEOF) || isReset(end)):
		t.Fatalf("slow session: %v", end)
	case bye == wire.ByeSlowConsumer:
	case bye == 0:
		t.Logf("cut off by the write timeout (%v)", end)
	default:
		t.Fatalf("slow session ended with goodbye reason %d, want %d or none", bye, wire.ByeSlowConsumer)
	}
}

// TestSlowSubscriberIsCutOff: a market data subscriber that never reads is
// disconnected; a subscriber that reads gets every update, in sequence, and
// the trader is served throughout.
func TestSlowSubscriberIsCutOff(t *testing.T) {
	srv := startWith(t, "--config", "../../configs/demo.json", "--data", t.TempDir(), "--outbound-limit", "1048576")
	sub := func(c *client) {
		c.send((&wire.Subscribe{Request: 1, Instrument: aapl, Action: wire.SubscribeOn}).Append(nil))
	}
	slow := login(t, srv.addr, 2, "bob-demo")
	sub(slow)
	good := login(t, srv.addr, 2, "bob-demo")
	sub(good)
	var snap wire.BookSnapshot
	if _, _, err := snap.Decode(good.expect(wire.TypeBookSnapshot), nil, nil); err != nil || !snap.Found || snap.More {
		t.Fatalf("snapshot %+v: %v", snap, err)
	}
	// The good subscriber reads everything and checks the sequence.
	type result struct {
		last uint64
		err  error
	}
	goodDone := make(chan result, 1)
	var goodRead atomic.Uint64 // the last feed sequence the good subscriber read
	go func() {
		next := snap.FeedSeq + 1
		for {
			good.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			typ, body, err := good.rd.Next()
			if err != nil {
				goodDone <- result{next - 1, err}
				return
			}
			var fs uint64
			switch typ {
			case wire.TypeLevelUpdate:
				var m wire.LevelUpdate
				m.Decode(body)
				fs = m.FeedSeq
			case wire.TypeTrade:
				var m wire.Trade
				m.Decode(body)
				fs = m.FeedSeq
			case wire.TypeTop:
				goodDone <- result{next - 1, nil}
				return
			default:
				continue
			}
			if fs != next {
				goodDone <- result{next - 1, fmt.Errorf("feed sequence %d, want %d", fs, next)}
				return
			}
			goodRead.Store(next)
			next++
		}
	}()
	// Alice alternates a sell and a buy of 1 at 100.00: each command
	// changes the level (her own orders do not trade: self-trade
	// prevention cancels the resting one), about 90 bytes of market data
	// per command, ~18 MB in all, 1 MiB allowed to wait per session.
	alice := login(t, srv.addr, 1, "alice-demo")
	const n = 200_000
	newOrderFrame := len((&wire.NewOrder{}).Append(nil))
	var buf []byte
	for i := 1; i <= n; i++ {
		side := engine.Side(1 + i%2)
		buf = (&wire.NewOrder{Ref: engine.ClientRef(i), Instrument: aapl, Side: side, Type: engine.Limit,
			TIF: engine.GTC, Price: 10_000, Qty: 1}).Append(buf)
	}
	// In chunks, each answered before the next, so that Alice herself is
	// never a slow consumer.
	const chunk = 1000
	for i := 0; i < n; i += chunk {
		alice.send(buf[i*newOrderFrame : (i+chunk)*newOrderFrame])
		for seen := 0; seen < chunk; {
			alice.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			typ, _, err := alice.rd.Next()
			if err != nil {
				t.Fatalf("trader: %v", err)
			}
			if typ == wire.TypeAccepted || typ == wire.TypeRejected {
				seen++
			}
		}
		// Paced by the good subscriber: it must keep up as a reading
		// client does, not as a test goroutine descheduled on a loaded
		// machine might not (under the full race suite it was cut off for
		// that). Each command makes one update or more (1.16 on average),
		// so waiting until it has read one per command let it fall behind
		// by 0.16 of the updates sent, over 1 MiB by the end; it is
		// waited for until it has read that many and then stops for 5 ms
		// (the chunk's updates were sent with its answers, so by then it
		// has read them all, or nearly).
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			read := goodRead.Load()
			if read < snap.FeedSeq+uint64(i+chunk) {
				time.Sleep(time.Millisecond)
				continue
			}
			if time.Sleep(5 * time.Millisecond); goodRead.Load() == read {
				break
			}
		}
	}
	good.send((&wire.Query{Request: 2, Kind: wire.QueryTop, Instrument: aapl}).Append(nil))
	r := <-goodDone
	if r.err != nil || r.last < n {
		t.Fatalf("good subscriber: last feed sequence %d of at least %d: %v", r.last, n, r.err)
	}
	// The slow one was cut off: what it can still read ends in Goodbye
	// "slow consumer" or, if a write to its full socket timed out first,
	// in a bare close.
	bye, end := slow.readToEnd()
	if !(errors.Is(end, io.EOF) || errors.Is(end, io.ErrUnexpectedEOF) || isReset(end)) ||
		(bye != 0 && bye != wire.ByeSlowConsumer) {
		t.Fatalf("slow subscriber: goodbye %d, then %v", bye, end)
	}
	t.Logf("good subscriber read feed sequence 1..%d; slow subscriber cut off (goodbye reason %d)", r.last, bye)
}

// TestThousandConnections: 1,000 sessions at once, each logs in, enters an
// order and gets its answer.
func TestThousandConnections(t *testing.T) {
	srv := startServer(t, t.TempDir())
	const n = 1000
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			c, err := net.DialTimeout("tcp", srv.addr, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			acct, tok := engine.AccountID(1+i%2), []string{"alice-demo", "bob-demo"}[i%2]
			m := wire.Login{Version: wire.Version, Account: acct}
			copy(m.Token[:], tok)
			f := m.Append(nil)
			f = (&wire.NewOrder{Ref: engine.ClientRef(1_000_000 + i), Instrument: aapl, Side: engine.Side(1 + i%2),
				Type: engine.Limit, TIF: engine.IOC, Price: 10_000, Qty: 1}).Append(f)
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write(f); err != nil {
				errs <- err
				return
			}
			rd := wire.NewReader(c, wire.MaxFrame, 4096)
			for {
				typ, _, err := rd.Next()
				if err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					return
				}
				if typ == wire.TypeAccepted || typ == wire.TypeRejected {
					errs <- nil
					return
				}
			}
		}()
	}
	failed := 0
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			failed++
			if failed < 5 {
				t.Error(err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d sessions failed", failed, n)
	}
}

// TestCancelOnDisconnect: a session that logged in with the flag has its
// account's open orders canceled when its connection drops.
func TestCancelOnDisconnect(t *testing.T) {
	srv := startServer(t, t.TempDir())
	c := dial(t, srv.addr)
	m := wire.Login{Version: wire.Version, Account: 2, Flags: wire.FlagCancelOnDisconnect}
	copy(m.Token[:], "bob-demo")
	c.send(m.Append(nil))
	c.expect(wire.TypeLoginAccepted)
	c.send((&wire.NewOrder{Ref: 1, Instrument: aapl, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC,
		Price: 9_500, Qty: 3}).Append(nil))
	c.expect(wire.TypeAccepted)
	c.c.Close() // no Logout: the connection just drops
	watcher := login(t, srv.addr, 1, "alice-demo")
	deadline := time.Now().Add(10 * time.Second)
	for q := uint32(1); ; q++ {
		watcher.send((&wire.Query{Request: q, Kind: wire.QueryTop, Instrument: aapl}).Append(nil))
		var top wire.Top
		top.Decode(watcher.expect(wire.TypeTop))
		if top.BidQty == 0 {
			return // bob's bid is gone
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's order still rests after his connection dropped: %+v", top)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAdminEndpoints(t *testing.T) {
	srv := startServer(t, t.TempDir())
	for _, path := range []string{"/healthz", "/readyz", "/debug/pprof/"} {
		resp, err := http.Get("http://" + srv.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		if path == "/readyz" && !strings.Contains(string(body), `"ready"`) {
			t.Fatalf("/readyz: %s", body)
		}
	}
}

// TestAdminTokenAndHost: with --admin-token every endpoint but /healthz
// and /readyz needs the bearer token (pprof included); a request whose
// Host is not an allowed name is refused, token or not (DNS rebinding).
func TestAdminTokenAndHost(t *testing.T) {
	srv := startWith(t, "--config", "../../configs/demo.json", "--data", t.TempDir(), "--admin-token", "s3cret-admin")
	do := func(path, host, token string) int {
		req, _ := http.NewRequest("GET", "http://"+srv.admin+path, nil)
		if host != "" {
			req.Host = host
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		path, host, token string
		want              int
	}{
		{"/healthz", "", "", 200},
		{"/readyz", "", "", 200},
		{"/metrics", "", "", 401},
		{"/debug/pprof/", "", "", 401},
		{"/api/book/AAPL", "", "wrong", 401},
		{"/metrics", "", "s3cret-admin", 200},
		{"/debug/pprof/", "", "s3cret-admin", 200},
		{"/api/book/AAPL", "localhost", "s3cret-admin", 200},
		{"/metrics", "evil.example", "s3cret-admin", 403},
		{"/healthz", "evil.example:7002", "", 403},
	}
	for _, tc := range cases {
		if got := do(tc.path, tc.host, tc.token); got != tc.want {
			t.Errorf("%s (host %q, token %q): %d, want %d", tc.path, tc.host, tc.token, got, tc.want)
		}
	}
}

// TestOpenOrdersInPages: an account with more open orders than a page
// gets them all, in order, over several pages (the last frame without
// More), and the Go client puts them together.
func TestOpenOrdersInPages(t *testing.T) {
	srv := startServer(t, t.TempDir())
	alice := login(t, srv.addr, 1, "alice-demo")
	const n = 2500
	acknowledge(t, alice, 1, n)
	alice.send((&wire.Query{Request: 5, Kind: wire.QueryOpenOrders}).Append(nil))
	var all []engine.OrderInfo
	frames := 0
	for {
		var om wire.Orders
		list, err := om.Decode(alice.expect(wire.TypeOrders), nil)
		if err != nil || om.Request != 5 {
			t.Fatalf("frame %d: %+v %v", frames, om, err)
		}
		frames++
		all = append(all, list...)
		if !om.More {
			break
		}
	}
	if len(all) != n || frames < 3 {
		t.Fatalf("%d orders in %d frames, want %d", len(all), frames, n)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatalf("order %d (%d) after %d", i, all[i].ID, all[i-1].ID)
		}
	}
	cl, err := mclient.Dial(context.Background(), mclient.Config{Addr: srv.addr, Account: 1, Token: "alice-demo"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got, err := cl.OpenOrders(context.Background())
	if err != nil || len(got) != n {
		t.Fatalf("client: %d orders, %v", len(got), err)
	}
}

// get fetches an admin path and returns the status and body.
func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// scrape returns every matchd_ sample of /metrics by its name and labels,
// as written ("matchd_x{a=\"b\"}").
func (s *server) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	code, body := s.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "matchd_") && !strings.HasPrefix(line, "go_goroutines ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsCountTheFlow: after a known flow of orders, cancels,
// replaces, logins and a subscription, /metrics says exactly that.
func TestMetricsCountTheFlow(t *testing.T) {
	srv := startWith(t, "--config", "../../configs/demo.json", "--data", t.TempDir(), "--web", "") // the web hub takes snapshots too
	alice := login(t, srv.addr, 1, "alice-demo")
	bob := login(t, srv.addr, 2, "bob-demo")
	watcher := login(t, srv.addr, 2, "bob-demo")
	watcher.send((&wire.Subscribe{Request: 1, Instrument: aapl, Action: wire.SubscribeOn}).Append(nil))
	watcher.expect(wire.TypeBookSnapshot)
	order := func(c *client, ref engine.ClientRef, side engine.Side, price engine.Price, qty engine.Qty) {
		c.send((&wire.NewOrder{Ref: ref, Instrument: aapl, Side: side, Type: engine.Limit, TIF: engine.GTC,
			Price: price, Qty: qty}).Append(nil))
	}
	order(alice, 1, engine.Sell, 10_000, 10) // ok, rests
	alice.expect(wire.TypeAccepted)
	order(bob, 1, engine.Buy, 10_000, 4) // ok, one fill
	bob.expect(wire.TypeAccepted)
	bob.expect(wire.TypeExecuted)
	alice.expect(wire.TypeExecuted)      // as the maker
	order(bob, 2, engine.Buy, 20_000, 1) // outside the band
	bob.expect(wire.TypeRejected)
	bob.send((&wire.Cancel{OrderID: 1}).Append(nil)) // not bob's
	bob.expect(wire.TypeRejected)
	alice.send((&wire.Replace{OrderID: 99, Ref: 2, Qty: 5}).Append(nil)) // no such order
	alice.expect(wire.TypeRejected)
	alice.send((&wire.Cancel{OrderID: 1}).Append(nil)) // ok
	alice.expect(wire.TypeCanceled)
	alice.send(wire.AppendEmpty(nil, wire.TypeLogout))
	alice.expect(wire.TypeGoodbye)
	bad := dial(t, srv.addr)
	m := wire.Login{Version: wire.Version, Account: 1}
	copy(m.Token[:], "wrong")
	bad.send(m.Append(nil))
	bad.expect(wire.TypeLoginRejected)
	if !alice.closed() || !bad.closed() {
		t.Fatal("sessions not closed")
	}
	// The session counters move when the server has finished with them.
	var got map[string]float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got = srv.scrape(t)
		if got[`matchd_disconnects_total{cause="logout"}`] == 1 || time.Now().After(deadline) {
			break
		}
	}
	want := map[string]float64{
		`matchd_commands_total{result="ok",type="new_order"}`:       2,
		`matchd_commands_total{result="rejected",type="new_order"}`: 1,
		`matchd_commands_total{result="ok",type="cancel"}`:          1,
		`matchd_commands_total{result="rejected",type="cancel"}`:    1,
		`matchd_commands_total{result="rejected",type="replace"}`:   1,
		`matchd_commands_total{result="ok",type="replace"}`:         0,
		`matchd_rejects_total{reason="outside_band"}`:               1,
		`matchd_rejects_total{reason="not_owner"}`:                  1,
		`matchd_rejects_total{reason="unknown_order"}`:              1,
		`matchd_rejects_total{reason="bad_price"}`:                  0,
		`matchd_fills_total`:                                        1,
		`matchd_queries_total`:                                      1, // the subscription's snapshot
		`matchd_sequenced_seq`:                                      6,
		`matchd_durable_seq`:                                        6,
		`matchd_durable_lag_commands`:                               0,
		`matchd_order_ack_seconds_count`:                            6,
		`matchd_sessions`:                                           2,
		`matchd_market_data_subscriptions`:                          1,
		`matchd_disconnects_total{cause="logout"}`:                  1,
		`matchd_disconnects_total{cause="login_rejected"}`:          1,
		`matchd_disconnects_total{cause="slow_consumer"}`:           0,
		`matchd_ring_occupancy`:                                     0,
		`matchd_recovery_replayed_commands`:                         0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for _, k := range []string{`matchd_journal_sync_seconds_count`, `matchd_journal_write_seconds_count`,
		`matchd_loop_batch_requests_count`, `matchd_ring_capacity`, `matchd_order_ack_seconds_sum`} {
		if got[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, got[k])
		}
	}
	var build bool
	for k, v := range got {
		if strings.HasPrefix(k, "matchd_build_info{") && v == 1 {
			build = true
		}
	}
	if !build {
		t.Error("no matchd_build_info")
	}
	if got[`matchd_order_ack_seconds_bucket{le="+Inf"}`] != 6 {
		t.Errorf("ack histogram +Inf bucket %v, want 6", got[`matchd_order_ack_seconds_bucket{le="+Inf"}`])
	}
}

// TestBookEndpoint: /api/book/SYMBOL answers depth in decimals, and bad
// requests get a clear error.
func TestBookEndpoint(t *testing.T) {
	srv := startServer(t, t.TempDir())
	alice := login(t, srv.addr, 1, "alice-demo")
	for i, p := range []engine.Price{10_001, 10_002, 9_990} {
		side := engine.Sell
		if p < 10_000 {
			side = engine.Buy
		}
		alice.send((&wire.NewOrder{Ref: engine.ClientRef(i + 1), Instrument: aapl, Side: side, Type: engine.Limit,
			TIF: engine.GTC, Price: p, Qty: engine.Qty(i + 1)}).Append(nil))
		alice.expect(wire.TypeAccepted)
	}
	code, body := srv.get(t, "/api/book/AAPL?levels=1")
	if want := `{"asks":[{"price":"100.01","qty":"1","orders":1}],"bids":[{"price":"99.90","qty":"3","orders":1}],"seq":3,"symbol":"AAPL"}`; code != 200 || strings.TrimSpace(body) != want {
		t.Fatalf("book: %d %s\nwant %s", code, body, want)
	}
	if code, body := srv.get(t, "/api/book/AAPL"); code != 200 || !strings.Contains(body, `{"price":"100.02","qty":"2","orders":1}`) {
		t.Fatalf("book: %d %s", code, body)
	}
	for path, want := range map[string]int{"/api/book/NOPE": 404, "/api/book/AAPL?levels=0": 400, "/api/book/AAPL?levels=x": 400} {
		if code, body := srv.get(t, path); code != want || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", path, code, body, want)
		}
	}
}

// TestGracefulShutdownUnderLoad: SIGTERM while two clients pipeline
// orders. matchd exits 0 after a final snapshot at its last sequence
// number; the restart replays nothing, and every order that was
// acknowledged is open.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, data)
	type trader struct {
		acct  engine.AccountID
		token string
		side  engine.Side
		base  engine.Price
	}
	var mu sync.Mutex
	acked := map[engine.OrderID]bool{}
	var wg sync.WaitGroup
	started := make(chan struct{}, 2)
	for _, tr := range []trader{{1, "alice-demo", engine.Buy, 9_000}, {2, "bob-demo", engine.Sell, 10_001}} {
		c := login(t, srv.addr, tr.acct, tr.token)
		wg.Add(2)
		go func() { // send until the server goes away (or 90,000 orders)
			defer wg.Done()
			var buf []byte
			for i := 0; i < 90_000; i++ {
				buf = (&wire.NewOrder{Ref: engine.ClientRef(i + 1), Instrument: aapl, Side: tr.side, Type: engine.Limit,
					TIF: engine.GTC, Price: tr.base + engine.Price(i%999), Qty: 1}).Append(buf)
				if len(buf) > 32<<10 { // ~560 orders every 5 ms: still sending when SIGTERM comes
					if _, err := c.c.Write(buf); err != nil {
						return
					}
					buf = buf[:0]
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
		go func() { // read acknowledgments until the Goodbye
			defer wg.Done()
			n := 0
			for {
				c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
				typ, body, err := c.rd.Next()
				if err != nil {
					return
				}
				if typ == wire.TypeGoodbye && body[0] != wire.ByeShutdown {
					t.Errorf("goodbye reason %d", body[0])
				}
				if typ == wire.TypeAccepted {
					var m wire.Accepted
					m.Decode(body)
					mu.Lock()
					acked[m.OrderID] = true
					mu.Unlock()
					if n++; n == 2000 {
						started <- struct{}{}
					}
				}
			}
		}()
	}
	<-started
	<-started
	if code := srv.stop(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	wg.Wait()
	final := regexp.MustCompile(`msg="node: final snapshot" seq=(\d+)`).FindStringSubmatch(srv.logLine("final snapshot"))
	if final == nil {
		t.Fatalf("no final snapshot in the log:\n%s", strings.Join(srv.log, "\n"))
	}
	again := startServer(t, data)
	ready := again.logLine("matchd: ready")
	// (It replays from the older snapshot kept, rebuilding the sessions'
	// streams, so replayed is not 0.)
	if !strings.Contains(ready, "recovered_to_seq="+final[1]+" ") {
		t.Fatalf("restart after a final snapshot at %s: %s", final[1], ready)
	}
	open := map[engine.OrderID]bool{}
	for _, who := range []struct {
		acct  engine.AccountID
		token string
	}{{1, "alice-demo"}, {2, "bob-demo"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := mclient.Dial(ctx, mclient.Config{Addr: again.addr, Account: who.acct, Token: who.token})
		if err != nil {
			t.Fatal(err)
		}
		list, err := c.OpenOrders(ctx)
		cancel()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list {
			open[o.ID] = true
		}
	}
	lost := 0
	for id := range acked {
		if !open[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged orders are gone after the restart", lost, len(acked))
	}
	if len(acked) >= 2*89_000 {
		t.Fatalf("SIGTERM came after the load (%d orders acknowledged)", len(acked))
	}
	if len(open) != len(acked) {
		t.Errorf("%d orders open after the restart, %d acknowledged: every command the server took must be answered", len(open), len(acked))
	}
	t.Logf("SIGTERM after %d acknowledged orders (%d open after the restart): final snapshot at %s, restart replayed 0", len(acked), len(open), final[1])
}
