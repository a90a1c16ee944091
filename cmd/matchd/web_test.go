package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	mclient "github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"

	"github.com/coder/websocket"
)

// trader is a logged-in Go client for the web tests.
type webTrader struct {
	t *testing.T
	c *mclient.Client
}

func newWebTrader(t *testing.T, addr string, acct engine.AccountID, token string) *webTrader {
	t.Helper()
	c, err := mclient.Dial(context.Background(), mclient.Config{Addr: addr, Account: acct, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &webTrader{t, c}
}

// order enters a GTC limit order on AAPL (ticks of 0.01, lots of 1).
func (w *webTrader) order(side engine.Side, qty engine.Qty, price engine.Price) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.c.Submit(ctx, wire.NewOrder{Instrument: 1, Side: side, Type: engine.Limit, TIF: engine.GTC,
		Price: price, Qty: qty}); err != nil {
		w.t.Fatal(err)
	}
}

// docScenario is the trading behind docs/HTTP.md's examples: alice
// offers 10 @ 100.50, 5 @ 100.60 and 7 @ 101.00; bob buys 12 @ 100.60
// (10 @ 100.50 and 2 @ 100.60 trade) and bids 3 @ 100.10, 4 @ 99.90
// and 1 @ 99.90.
func docScenario(t *testing.T, addr string) {
	alice := newWebTrader(t, addr, 1, "alice-demo")
	bob := newWebTrader(t, addr, 2, "bob-demo")
	alice.order(engine.Sell, 10, 10050)
	alice.order(engine.Sell, 5, 10060)
	alice.order(engine.Sell, 7, 10100)
	bob.order(engine.Buy, 12, 10060)
	bob.order(engine.Buy, 3, 10010)
	bob.order(engine.Buy, 4, 9990)
	bob.order(engine.Buy, 1, 9990)
}

// scenarioDone reports whether a book answer shows docScenario's last
// order (the second order at 99.90), not just its level.
func scenarioDone(b []byte) bool {
	var book struct {
		Bids []struct{ Price, Qty string } `json:"bids"`
	}
	return json.Unmarshal(b, &book) == nil && len(book.Bids) == 2 &&
		book.Bids[1].Price == "99.90" && book.Bids[1].Qty == "5"
}

func httpGet(t *testing.T, url string, header ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// waitFor polls GET url until its body satisfies ok.
func waitFor(t *testing.T, url string, ok func([]byte) bool) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, b := httpGet(t, url)
		if code == 200 && ok(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %s", url, code, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var timeRE = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"`)

// normalize makes a JSON answer comparable with the document's: times
// become "TIME" and the document's "…" placeholders match any number.
func normalize(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(timeRE.ReplaceAll(b, []byte(`"TIME"`)), &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// sameKeys reports whether a and b have the same shape: the same keys
// all the way down, and arrays of the same length.
func sameKeys(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !sameKeys(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameKeys(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.TypeOf(a) == reflect.TypeOf(b)
}

var docExampleRE = regexp.MustCompile("(?s)```http\\n(GET|WS) (\\S+)\\n```\\n+```json\\n(.*?)```")

// TestHTTPDocExamples runs docs/HTTP.md's trading on a fresh server and
// checks that every REST example in the document is what the server
// answers (times aside; the server panel by shape only, its figures are
// measurements).
func TestHTTPDocExamples(t *testing.T) {
	srv := startServer(t, t.TempDir())
	docScenario(t, srv.addr)
	base := "http://" + srv.web
	waitFor(t, base+"/api/v1/book/AAPL", scenarioDone)
	doc, err := os.ReadFile("../../docs/HTTP.md")
	if err != nil {
		t.Fatal(err)
	}
	ms := docExampleRE.FindAllSubmatch(doc, -1)
	if len(ms) < 8 {
		t.Fatalf("docs/HTTP.md has %d examples", len(ms))
	}
	for _, m := range ms {
		if string(m[1]) != "GET" {
			continue
		}
		path := string(m[2])
		code, got := httpGet(t, base+path)
		want := normalize(t, m[3])
		g := normalize(t, got)
		if strings.HasPrefix(path, "/api/v1/server") {
			if code != 200 || !sameKeys(want, g) {
				t.Errorf("GET %s: %d %s\nthe document's shape:\n%s", path, code, got, m[3])
			}
			continue
		}
		if wantCode := 200; strings.Contains(string(m[3]), `"error"`) {
			wantCode = code // the document shows the body; the status is in the text
			if code < 400 {
				t.Errorf("GET %s: %d, want an error", path, code)
			}
		} else if code != wantCode {
			t.Errorf("GET %s: %d %s", path, code, got)
		}
		if !reflect.DeepEqual(want, g) {
			t.Errorf("GET %s:\n got %s\nwant %s", path, got, m[3])
		}
	}
}

// TestWebStream subscribes over a real WebSocket: a snapshot, then every
// change in feed order; bad requests answered with an error and nothing
// changed; a client that stops reading cut off, never waited for.
func TestWebStream(t *testing.T) {
	srv := startWith(t, "--config", "../../configs/demo.json", "--data", t.TempDir(), "--web-stream-queue", "16")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+srv.web+"/api/v1/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 20)
	send := func(v string) {
		if err := c.Write(ctx, websocket.MessageText, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	next := func() map[string]any {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return m
	}
	for _, bad := range []struct{ req, reason string }{
		{`{"op":"subscribe","symbols":["NOPE"]}`, "unknown-instrument"},
		{`{"op":"subscribe","symbols":["AAPL"],"channels":["candles"]}`, "bad-channel"},
		{`{"op":"watch","symbols":["AAPL"]}`, "bad-op"},
		{`{"op":"subscribe"}`, "bad-request"},
		{`not json`, "bad-request"},
	} {
		send(bad.req)
		if m := next(); m["type"] != "error" || m["reason"] != bad.reason {
			t.Errorf("%s: %v, want error %s", bad.req, m, bad.reason)
		}
	}
	send(`{"op":"subscribe","symbols":["AAPL"],"channels":["book","trades"]}`)
	snap := next()
	if snap["type"] != "snapshot" || snap["symbol"] != "AAPL" {
		t.Fatalf("first message %v", snap)
	}
	seq := snap["seq"].(float64)
	docScenario(t, srv.addr)
	// Updates follow, each covering the feed numbers after the last: every
	// trade, and every level the trading left changed, once.
	levels := map[string]string{}
	var trades []string
	for seq < 10 {
		m := next()
		if m["type"] != "update" || m["from"].(float64) != seq+1 || m["to"].(float64) < m["from"].(float64) {
			t.Fatalf("update %v after feed number %v", m, seq)
		}
		seq = m["to"].(float64)
		for _, side := range []string{"bids", "asks"} {
			for _, l := range m[side].([]any) {
				l := l.(map[string]any)
				levels[side+" "+l["price"].(string)] = l["qty"].(string)
			}
		}
		for _, tr := range m["trades"].([]any) {
			tr := tr.(map[string]any)
			trades = append(trades, tr["qty"].(string)+"@"+tr["price"].(string)+" "+tr["aggressor"].(string))
		}
	}
	if want := []string{"10@100.50 buy", "2@100.60 buy"}; !slices.Equal(trades, want) {
		t.Errorf("trades %v, want %v", trades, want)
	}
	if levels["asks 100.50"] != "0" || levels["asks 100.60"] != "3" || levels["bids 99.90"] != "5" || levels["bids 100.10"] != "3" {
		t.Errorf("levels %v", levels)
	}
	// A second client that subscribes now gets the book as it is.
	c2, _, err := websocket.Dial(ctx, "ws://"+srv.web+"/api/v1/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseNow()
	c2.SetReadLimit(64 << 20)
	c2.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","symbols":["AAPL"]}`))
	_, b, err := c2.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var s2 struct {
		Seq        float64
		Bids, Asks []struct{ Price, Qty string }
		Trades     []struct{ Price, Qty string }
	}
	json.Unmarshal(b, &s2)
	if s2.Seq != seq || len(s2.Bids) != 2 || s2.Bids[1].Qty != "5" || len(s2.Asks) != 2 || s2.Asks[0].Price != "100.60" ||
		len(s2.Trades) != 2 || s2.Trades[0].Price != "100.60" {
		t.Errorf("second snapshot at %v: %s", seq, b)
	}

	// The server, and the first client, carry on.
	if code, _ := httpGet(t, "http://"+srv.admin+"/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
}

// TestWebSlowStreamCut: a client that stops reading is cut off (1008, too
// slow) once its socket and then its queue are full; the server does not
// wait for it.
func TestWebSlowStreamCut(t *testing.T) {
	dir := t.TempDir()
	cfg := dir + "/deep.json"
	os.WriteFile(cfg, []byte(`{"accounts": [{"id": 1, "name": "alice", "token": "alice-demo"}],
  "instruments": [{"id": 1, "symbol": "AAPL", "tick_size": "0.01", "lot_size": "1", "max_open_per_account": 100000}]}`), 0o644)
	srv := startWith(t, "--config", cfg, "--data", dir+"/data", "--fsync=false", "--web-stream-queue", "16", "--web-stream-bytes", "2097152")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A deep book: 20,000 levels, a snapshot of about 1 MB.
	errs := make(chan error, 4)
	for g := range 4 {
		c, err := mclient.Dial(ctx, mclient.Config{Addr: srv.addr, Account: 1, Token: "alice-demo", Session: fmt.Sprintf("deep%d", g)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			for i := g; i < 20_000; i += 4 {
				_, err := c.Submit(ctx, wire.NewOrder{Instrument: 1, Side: engine.Sell, Type: engine.Limit, TIF: engine.GTC,
					Price: engine.Price(10_000 + i), Qty: 1})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	c2, _, err := websocket.Dial(ctx, "ws://"+srv.web+"/api/v1/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseNow()
	c2.SetReadLimit(64 << 20)
	// Snapshots it does not read (20 of about 1.2 MB) fill its socket
	// and then its 2 MiB; the changes of the orders after come on top.
	for range 20 {
		c2.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","symbols":["AAPL"]}`))
	}
	time.Sleep(500 * time.Millisecond)
	alice := newWebTrader(t, srv.addr, 1, "alice-demo")
	for i := range 400 {
		alice.order(engine.Buy, 1, engine.Price(5000+i))
	}
	var rerr error
	for rerr == nil {
		_, _, rerr = c2.Read(ctx)
	}
	if st := websocket.CloseStatus(rerr); st != websocket.StatusPolicyViolation {
		t.Fatalf("the silent client ended with %v (%v), want 1008 too slow", st, rerr)
	}
	if code, _ := httpGet(t, "http://"+srv.admin+"/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
}

// TestWebServerPanelToken: with --admin-token the server panel needs it;
// the market data stays public.
func TestWebServerPanelToken(t *testing.T) {
	srv := startWith(t, "--config", "../../configs/demo.json", "--data", t.TempDir(), "--admin-token", "s3cret")
	base := "http://" + srv.web
	if code, b := httpGet(t, base+"/api/v1/server"); code != 401 || !strings.Contains(string(b), "token-needed") {
		t.Errorf("panel without the token: %d %s", code, b)
	}
	if code, b := httpGet(t, base+"/api/v1/server", "Authorization", "Bearer s3cret"); code != 200 || !strings.Contains(string(b), `"sessions"`) {
		t.Errorf("panel with the token: %d %s", code, b)
	}
	if code, _ := httpGet(t, base+"/api/v1/instruments"); code != 200 {
		t.Errorf("market data with a token set: %d", code)
	}
	code, b := httpGet(t, base+"/")
	if code != 200 || !strings.Contains(string(b), "/static/app.js") {
		t.Errorf("page: %d", code)
	}
	for _, f := range []string{"/static/app.js", "/static/app.css", "/i/AAPL"} {
		if code, _ := httpGet(t, base+f); code != 200 {
			t.Errorf("%s: %d", f, code)
		}
	}
	if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") {
		t.Error("the page refers to another site; it must work offline")
	}
}

// TestWebConnectionBound: the web port holds at most --web-max-streams +
// 256 connections; one over is closed at once, and the port serves again
// once they go.
func TestWebConnectionBound(t *testing.T) {
	srv := startWith(t, "--config", "../../configs/demo.json", "--data", t.TempDir(), "--web-max-streams", "1")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 257 {
		c, err := net.Dial("tcp", srv.web)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	over, err := net.Dial("tcp", srv.web)
	if err != nil {
		t.Fatal(err)
	}
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the connection over the bound was not closed: %v", err)
	}
	over.Close()
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + srv.web + "/api/v1/instruments")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the web port does not serve again: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
