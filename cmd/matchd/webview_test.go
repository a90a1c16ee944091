package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mclient "github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/testnet"
)

// browser is api/web/e2e/driver.mjs: a headless Chromium driven by
// Playwright, one JSON command and answer a line.
type browser struct {
	t   *testing.T
	cmd *exec.Cmd
	in  *json.Encoder
	out *bufio.Scanner
}

// viewState is what the page shows (driver.mjs's "state").
type viewState struct {
	Seq           float64
	Loaded        bool
	Renders       int
	Reconnects    int
	Conn, Title   string
	Phase, Last   string
	Spread        string
	Asks, Bids    [][]string
	Tape          [][]string
	Candles       [][]string
	Instruments   [][]string
	PageErrors    []string
	ConsoleErrors []string
	Error         string
}

func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIPPED in -short (the race run): the full run drives Chromium")
	}
	if _, err := os.Stat(chromiumPath()); err != nil {
		t.Skipf("SKIPPED: no Chromium at %s (apt-get install chromium; make web-deps)", chromiumPath())
	}
	if _, err := os.Stat("../../api/web/e2e/node_modules/playwright-core"); err != nil {
		t.Skip("SKIPPED: playwright-core is not installed (make web-deps: npm ci in api/web/e2e)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("SKIPPED: no node")
	}
	cmd := exec.Command("node", "driver.mjs")
	cmd.Dir = "../../api/web/e2e"
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromiumPath())
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, cmd: cmd, in: json.NewEncoder(in), out: bufio.NewScanner(out)}
	b.out.Buffer(nil, 16<<20)
	t.Cleanup(func() {
		b.in.Encode(map[string]string{"op": "quit"})
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	var ready map[string]any
	b.read(&ready)
	if ready["ready"] != true {
		t.Fatalf("driver: %v", ready)
	}
	return b
}

func (b *browser) read(v any) {
	b.t.Helper()
	if !b.out.Scan() {
		b.t.Fatalf("the browser driver ended: %v", b.out.Err())
	}
	if err := json.Unmarshal(b.out.Bytes(), v); err != nil {
		b.t.Fatalf("driver said %q: %v", b.out.Text(), err)
	}
}

func (b *browser) do(cmd map[string]string) {
	b.t.Helper()
	b.in.Encode(cmd)
	var r map[string]any
	b.read(&r)
	if r["error"] != nil {
		b.t.Fatalf("%v: %v", cmd, r["error"])
	}
}

func (b *browser) state() viewState {
	b.t.Helper()
	b.in.Encode(map[string]string{"op": "state"})
	var s viewState
	b.read(&s)
	if s.Error != "" {
		b.t.Fatal(s.Error)
	}
	if len(s.PageErrors) > 0 {
		b.t.Fatalf("the page threw: %v", s.PageErrors)
	}
	return s
}

// await polls the page until ok holds, and fails with what it showed.
func (b *browser) await(what string, ok func(*viewState) bool) viewState {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := b.state()
		if ok(&s) {
			return s
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the page never showed %s; it shows %+v", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr returns a loopback address nobody listens on now.
func freeAddr(t testing.TB) string { return testnet.FreeAddr(t) }

// sumDec adds decimal strings exactly.
func sumDec(t *testing.T, col int, rows [][]string) string {
	s := new(big.Rat)
	for _, r := range rows {
		v, ok := new(big.Rat).SetString(r[col])
		if !ok {
			t.Fatalf("not a decimal: %q", r[col])
		}
		s.Add(s, v)
	}
	return s.RatString()
}

// TestWebViewInChromium opens the web view in a real headless Chromium
// against a real matchd, trades through the Go client, and checks that
// the ladder, the tape and the candles show exactly what was traded: live,
// after the page's WebSocket drops, and after the server restarts. It
// saves screenshots (WEB_SCREENSHOTS, default a temporary directory).
func TestWebViewInChromium(t *testing.T) {
	b := startBrowser(t)
	shots := os.Getenv("WEB_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	os.MkdirAll(shots, 0o755)
	data := t.TempDir()
	listen, admin, webAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	start := func() *server {
		return startCmd(t, exec.Command(matchdBin, "--config", "../../configs/demo.json", "--data", data,
			"--listen", listen, "--admin", admin, "--web", webAddr))
	}
	srv := start()
	b.do(map[string]string{"op": "open", "url": "http://" + webAddr + "/i/AAPL"})
	b.await("the live book", func(s *viewState) bool { return s.Loaded && s.Conn == "live" && s.Title == "AAPL" })

	docScenario(t, srv.addr)
	asks := [][]string{{"", "", "101.00", "7", "1"}, {"", "", "100.60", "3", "1"}}
	bids := [][]string{{"1", "3", "100.10", "", ""}, {"2", "5", "99.90", "", ""}}
	// The scenario's last order adds to a level already shown: wait for
	// the whole ladder, not just its shape (CI once looked too early).
	s := b.await("the traded book", func(s *viewState) bool {
		return len(s.Tape) == 2 && slices.EqualFunc(s.Bids, bids, slices.Equal)
	})
	if !slices.EqualFunc(s.Asks, asks, slices.Equal) || !slices.EqualFunc(s.Bids, bids, slices.Equal) {
		t.Errorf("ladder: asks %v bids %v", s.Asks, s.Bids)
	}
	checkTape := func(s viewState, want [][]string) {
		t.Helper()
		var got [][]string
		for _, r := range s.Tape {
			got = append(got, r[1:])
		}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("tape: %v, want %v", got, want)
		}
	}
	checkTape(s, [][]string{{"100.60", "2", "buy"}, {"100.50", "10", "buy"}})
	if len(s.Candles) != 1 || !slices.Equal(s.Candles[0][1:], []string{"100.50", "100.60", "100.50", "100.60", "12", "2"}) {
		t.Errorf("candles: %v", s.Candles)
	}
	if s.Last != "100.60" || s.Spread != "0.50" {
		t.Errorf("last %q spread %q", s.Last, s.Spread)
	}
	// The instrument list and the panel follow within moments of a trade.
	b.await("the instrument list after the trades", func(s *viewState) bool {
		return len(s.Instruments) == 2 && slices.Equal(s.Instruments[0], []string{"AAPL", "100.10", "100.60", "100.60"})
	})
	b.do(map[string]string{"op": "shot", "path": filepath.Join(shots, "1-live.png")})

	// The page's WebSocket drops; a trade happens meanwhile.
	b.do(map[string]string{"op": "drop"})
	alice := newWebTrader(t, srv.addr, 1, "alice-demo")
	alice.order(engine.Sell, 2, 10010)
	s = b.await("the book after a reconnect", func(s *viewState) bool {
		return s.Reconnects >= 1 && s.Loaded && len(s.Tape) == 3
	})
	checkTape(s, [][]string{{"100.10", "2", "sell"}, {"100.60", "2", "buy"}, {"100.50", "10", "buy"}})
	if len(s.Bids) != 2 || s.Bids[0][1] != "1" || s.Bids[0][2] != "100.10" {
		t.Errorf("bids after the reconnect: %v", s.Bids)
	}

	// The server restarts; the page reconnects by itself; a trade after.
	if code := srv.stop(t); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	b.await("that the server is gone", func(s *viewState) bool { return s.Conn != "live" })
	srv = start()
	bob := newWebTrader(t, srv.addr, 2, "bob-demo")
	bob.order(engine.Buy, 3, 10060)
	s = b.await("the book after the server restarted", func(s *viewState) bool {
		return s.Conn == "live" && s.Loaded && len(s.Tape) == 4 && len(s.Asks) == 1
	})
	checkTape(s, [][]string{{"100.60", "3", "buy"}, {"100.10", "2", "sell"}, {"100.60", "2", "buy"}, {"100.50", "10", "buy"}})
	if !slices.Equal(s.Asks[0], []string{"", "", "101.00", "7", "1"}) {
		t.Errorf("asks after the restart: %v", s.Asks)
	}
	if v, n := sumDec(t, 5, s.Candles), sumDec(t, 6, s.Candles); v != "17" || n != "4" {
		t.Errorf("1 s candles: volume %s, trades %s: %v", v, n, s.Candles)
	}
	b.do(map[string]string{"op": "interval", "iv": "1m"})
	s = b.await("1 min candles", func(s *viewState) bool { return len(s.Candles) > 0 && sumDec(t, 6, s.Candles) == "4" })
	if v := sumDec(t, 5, s.Candles); v != "17" {
		t.Errorf("1 min candles: volume %s: %v", v, s.Candles)
	}
	// The instrument list is polled once a second.
	b.await("the instrument list's top of book", func(s *viewState) bool {
		return len(s.Instruments) == 2 && slices.Equal(s.Instruments[0], []string{"AAPL", "100.10", "101.00", "100.60"})
	})

	// A burst far faster than the page draws: at most 10 frames a second.
	before := b.state()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mclient.Dial(ctx, mclient.Config{Addr: srv.addr, Account: 1, Token: "alice-demo", Session: "burst"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 2000 {
		if _, err := c.Submit(ctx, wire.NewOrder{Instrument: 1, Side: engine.Sell, Type: engine.Limit, TIF: engine.GTC,
			Price: engine.Price(10200 + i%500), Qty: 1}); err != nil {
			t.Fatal(err)
		}
	}
	after := b.await("the burst", func(s *viewState) bool { return len(s.Asks) == 15 && s.Asks[0][2] == "102.13" })
	frames, limit := after.Renders-before.Renders, int(time.Since(t0)/(100*time.Millisecond))+2
	t.Logf("burst of 2,000 orders: %d frames drawn in %v", frames, time.Since(t0).Round(time.Millisecond))
	if frames > limit {
		t.Errorf("%d frames in %v: more than 10 a second", frames, time.Since(t0))
	}
	b.do(map[string]string{"op": "shot", "path": filepath.Join(shots, "2-after-restart-and-burst.png")})
	t.Logf("screenshots in %s", shots)
	fmt.Fprintf(os.Stderr, "web view screenshots: %s\n", strings.Join([]string{filepath.Join(shots, "1-live.png"), filepath.Join(shots, "2-after-restart-and-burst.png")}, ", "))
}
