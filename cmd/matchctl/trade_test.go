package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// startMatchd builds and starts a real matchd on an ephemeral port and
// returns its address.
func startMatchd(t *testing.T) string {
	t.Helper()
	addr, _ := startMatchdAdmin(t)
	return addr
}

// startMatchdAdmin is startMatchd that also returns the admin address.
func startMatchdAdmin(t *testing.T) (string, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "matchd")
	if out, err := exec.Command("go", "build", "-o", bin, "../matchd").CombinedOutput(); err != nil {
		t.Fatalf("build matchd: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--config", "../../configs/demo.json", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--web", "127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := regexp.MustCompile(`msg="matchd: ready" orders=(\S+)`)
	adminRE := regexp.MustCompile(`msg="matchd: admin endpoints" admin=(\S+)`)
	addr := make(chan string, 1)
	admin := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			if m := adminRE.FindStringSubmatch(sc.Text()); m != nil {
				admin <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return a, <-admin
	case <-time.After(30 * time.Second):
		t.Fatal("matchd did not start")
		return "", ""
	}
}

func TestTradingCommands(t *testing.T) {
	addr := startMatchd(t)
	alice := []string{"--addr", addr, "--account", "1", "--token", "alice-demo"}
	bob := []string{"--addr", addr, "--account", "2", "--token", "bob-demo"}
	ctl := func(who []string, args ...string) (int, string, string) {
		return runCmd(append(args, who...)...)
	}
	if code, out, errs := ctl(alice, "sell", "AAPL", "10", "100.00"); code != 0 || !strings.Contains(out, "accepted order 1: sell 10 AAPL @ 100.00 (gtc)") {
		t.Fatalf("sell: %d %q %q", code, out, errs)
	}
	code, out, _ := ctl(bob, "buy", "AAPL", "4", "100.05", "--tif", "ioc", "--json")
	var res struct {
		OrderID uint64 `json:"order_id"`
		Fills   []struct{ Price, Qty string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Fills) != 1 ||
		res.Fills[0].Price != "100.00" || res.Fills[0].Qty != "4" {
		t.Fatalf("buy: %d %q", code, out)
	}
	// top --json: decimal strings, null for an empty side.
	if code, out, _ := ctl(bob, "top", "AAPL", "--json"); code != 0 ||
		strings.TrimSpace(out) != `{"ask":"100.00","ask_qty":"6","bid":null,"bid_qty":null,"symbol":"AAPL"}` {
		t.Fatalf("top: %d %q", code, out)
	}
	// Rejects and bad input: a clear message and a non-zero exit.
	if code, _, errs := ctl(bob, "cancel", "1"); code != 1 || !strings.Contains(errs, "unknown-order") {
		t.Fatalf("cancel of another's order: %d %q", code, errs)
	}
	if code, _, errs := ctl(bob, "buy", "AAPL", "1", "100.005"); code != 1 || !strings.Contains(errs, "not a multiple of 0.01") {
		t.Fatalf("off-tick price: %d %q", code, errs)
	}
	if code, _, _ := ctl(bob, "buy", "AAPL", "1"); code != 2 {
		t.Fatalf("missing price: %d", code)
	}
	if code, _, errs := ctl([]string{"--addr", addr, "--account", "1", "--token", "bob-demo"}, "orders"); code != 1 || !strings.Contains(errs, "login rejected") {
		t.Fatalf("bad token: %d %q", code, errs)
	}
	if code, out, _ := ctl(alice, "replace", "1", "--qty", "8", "--price", "100.01"); code != 0 || !strings.Contains(out, "8 @ 100.01, 4 open") {
		t.Fatalf("replace: %d %q", code, out)
	}
	if code, out, _ := ctl(alice, "orders"); code != 0 || !strings.Contains(out, "order 1: sell AAPL 8 @ 100.01, 4 open, 4 filled") {
		t.Fatalf("orders: %d %q", code, out)
	}
	if code, out, _ := ctl(alice, "cancel-all", "--json"); code != 0 || strings.TrimSpace(out) != `{"canceled":1}` {
		t.Fatalf("cancel-all: %d %q", code, out)
	}
	if code, out, _ := ctl(alice, "status", "1"); code != 0 || !strings.Contains(out, "order 1: sell AAPL 8 @ 100.01: canceled, 4 filled, 0 open") {
		t.Fatalf("status of a canceled order: %d %q", code, out)
	}
}

// TestCommandLineSurprises: what a new user tripped over, each answered
// the way they expected.
func TestCommandLineSurprises(t *testing.T) {
	addr, admin := startMatchdAdmin(t)
	alice := []string{"--addr", addr, "--account", "1", "--token", "alice-demo"}
	bob := []string{"--addr", addr, "--account", "2", "--token", "bob-demo"}
	ctl := func(who []string, args ...string) (int, string, string) {
		return runCmd(append(args, who...)...)
	}
	// A negative number is an argument: the server's units say why it
	// cannot be, instead of "flag provided but not defined: -5".
	if code, _, errs := ctl(alice, "buy", "AAPL", "-5", "99.50"); code != 1 || !strings.Contains(errs, "quantity -5 is negative") {
		t.Errorf("negative quantity: %d %q", code, errs)
	}
	if code, _, errs := runCmd(append(alice, "buy", "AAPL", "5", "--", "-99.50")...); code != 1 || !strings.Contains(errs, "price -99.5 is negative") {
		t.Errorf("a price after --: %d %q", code, errs)
	}
	// --help: usage on stdout, exit 0, for every form.
	for _, h := range [][]string{{"--help"}, {"-h"}, {"help"}, {"buy", "--help"}, {"journal", "verify", "--help"}} {
		if code, out, errs := runCmd(h...); code != 0 || !strings.Contains(out, "usage:") || errs != "" {
			t.Errorf("%v: %d, stdout %q, stderr %q", h, code, out, errs)
		}
	}
	if code, out, _ := runCmd("--version"); code != 0 || !strings.HasPrefix(out, "matchctl ") || !strings.Contains(out, "go1") {
		t.Errorf("--version: %d %q", code, out)
	}
	// Errors in words.
	if code, _, errs := ctl([]string{"--addr", addr, "--account", "1", "--token", "nope"}, "orders"); code != 1 ||
		!strings.Contains(errs, "bad credentials: unknown account or wrong token") {
		t.Errorf("bad token: %d %q", code, errs)
	}
	if code, _, errs := ctl(alice, "buy", "AAPL", "5", "150.00"); code != 1 ||
		!strings.Contains(errs, "outside-band: the price band is now 90.00 to 110.00 (around the reference price 100.00)") {
		t.Errorf("outside the band: %d %q", code, errs)
	}
	if code, _, errs := ctl([]string{"--addr", admin, "--account", "1", "--token", "alice-demo"}, "orders"); code != 1 ||
		!strings.Contains(errs, "answered in HTTP") || !strings.Contains(errs, "not the order port") {
		t.Errorf("--addr at the admin port: %d %q", code, errs)
	}
	if code, _, errs := ctl([]string{"--addr", "127.0.0.1:1", "--account", "1", "--token", "alice-demo"}, "orders"); code != 1 ||
		!strings.Contains(errs, "is matchd running there?") {
		t.Errorf("no server: %d %q", code, errs)
	}
	// --json errors are JSON, on stdout.
	code, out, _ := ctl(alice, "--json", "cancel", "999")
	var e struct{ Error, Reason string }
	if code != 1 || json.Unmarshal([]byte(out), &e) != nil || e.Reason != "unknown-order" {
		t.Errorf("--json error: %d %q", code, out)
	}
	// Every event the command caused: self-trade prevention canceling
	// the user's own resting ask is said, not silent.
	ctl(alice, "sell", "AAPL", "3", "100.20")
	if code, out, _ := ctl(alice, "buy", "AAPL", "1", "--market"); code != 0 || !strings.Contains(out, "canceled your order 1: 3 (self-trade)") {
		t.Errorf("market order against one's own ask: %d %q", code, out)
	}
	// cancel says decimals, not lots.
	ctl(bob, "sell", "BTC-USD", "0.5", "50000.00")
	if code, out, _ := ctl(bob, "cancel", "3"); code != 0 || !strings.Contains(out, "canceled order 3: sell BTC-USD @ 50000.00 (0.5000 were open)") {
		t.Errorf("cancel: %d %q", code, out)
	}
	if code, out, _ := ctl(bob, "status", "3"); code != 0 || !strings.Contains(out, ": canceled,") {
		t.Errorf("status of a canceled order: %d %q", code, out)
	}
	// info: the phase, the reference price and the band orders must be in.
	if code, out, _ := ctl(alice, "info", "AAPL"); code != 0 ||
		out != "AAPL (id 1): continuous; tick 0.01, lot 1; reference price 100.00; limit orders from 90.00 to 110.00\n" {
		t.Errorf("info: %d %q", code, out)
	}
	// A replace that trades says so.
	ctl(bob, "sell", "AAPL", "2", "100.30")
	ctl(alice, "buy", "AAPL", "1", "100.00")
	if code, out, _ := ctl(alice, "replace", "5", "--price", "100.30"); code != 0 ||
		!strings.Contains(out, "replaced order 5: 1 @ 100.30") || !strings.Contains(out, "filled 1 @ 100.30 (trade 1), 0 open") {
		t.Errorf("a replace that trades: %d %q", code, out)
	}
}

// TestAdminAndOrderTypes: the operator's phase commands through matchctl
// admin, a trader refused with a clear message, and stop, iceberg and GTD
// orders entered from the command line.
func TestAdminAndOrderTypes(t *testing.T) {
	addr := startMatchd(t)
	alice := []string{"--addr", addr, "--account", "1", "--token", "alice-demo"}
	ops := []string{"--addr", addr, "--account", "9", "--token", "operator-demo"}
	ctl := func(who []string, args ...string) (int, string, string) {
		return runCmd(append(args, who...)...)
	}
	if code, _, errs := ctl(alice, "admin", "halt", "AAPL"); code != 1 || !strings.Contains(errs, "not an operator") {
		t.Fatalf("a trader's halt: %d %q", code, errs)
	}
	if code, out, _ := ctl(ops, "admin", "halt", "AAPL", "--json"); code != 0 || strings.TrimSpace(out) != `{"phase":"halted","symbol":"AAPL"}` {
		t.Fatalf("halt: %d %q", code, out)
	}
	if code, _, errs := ctl(alice, "buy", "AAPL", "1", "100.00"); code != 1 || !strings.Contains(errs, "halted") {
		t.Fatalf("buy while halted: %d %q", code, errs)
	}
	if code, _, errs := ctl(ops, "admin", "uncross", "AAPL"); code != 1 || !strings.Contains(errs, "bad-phase-action") {
		t.Fatalf("uncross while halted: %d %q", code, errs)
	}
	if code, _, _ := ctl(ops, "admin", "pause", "AAPL"); code != 2 {
		t.Fatalf("unknown action: %d", code)
	}
	if code, out, _ := ctl(ops, "admin", "resume", "AAPL"); code != 0 || !strings.Contains(out, "AAPL: continuous") {
		t.Fatalf("resume: %d %q", code, out)
	}
	if code, out, errs := ctl(alice, "buy", "AAPL", "5", "101.00", "--stop", "100.50"); code != 0 || !strings.Contains(out, "stop 100.50") {
		t.Fatalf("stop-limit: %d %q %q", code, out, errs)
	}
	if code, out, errs := ctl(alice, "sell", "AAPL", "30", "100.20", "--display", "10"); code != 0 || !strings.Contains(out, "showing 10") {
		t.Fatalf("iceberg: %d %q %q", code, out, errs)
	}
	if code, out, _ := ctl(alice, "depth", "AAPL", "--json"); code != 0 || !strings.Contains(out, `"qty":"10"`) {
		t.Fatalf("the iceberg shows 10: %d %q", code, out)
	}
	if code, out, errs := ctl(alice, "buy", "AAPL", "1", "99.00", "--tif", "gtd", "--expire", "1h"); code != 0 || !strings.Contains(out, "(gtd)") {
		t.Fatalf("gtd: %d %q %q", code, out, errs)
	}
	if code, _, _ := ctl(alice, "buy", "AAPL", "1", "99.00", "--tif", "gtd"); code != 2 {
		t.Fatalf("gtd without --expire: %d", code)
	}
}

// lockedBuffer is a bytes.Buffer safe to write from one goroutine while
// another reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWatch: matchctl watch prints the top of book from the snapshot, then
// every trade and top-of-book change, in decimals.
func TestWatch(t *testing.T) {
	addr := startMatchd(t)
	alice := []string{"--addr", addr, "--account", "1", "--token", "alice-demo"}
	bob := []string{"--addr", addr, "--account", "2", "--token", "bob-demo"}
	if code, _, errs := runCmd(append([]string{"sell", "AAPL", "10", "100.00"}, alice...)...); code != 0 {
		t.Fatal(errs)
	}
	var out, errs lockedBuffer
	// It ends by itself (--for), or when the server is stopped at cleanup.
	go run(append([]string{"watch", "AAPL", "--for", "20s", "--json"}, bob...), &out, &errs)
	waitFor := func(s string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !strings.Contains(out.String(), s); {
			if time.Now().After(deadline) {
				t.Fatalf("watch never printed %s; got:\n%s%s", s, out.String(), errs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(`{"ask":"100.00","ask_qty":"10","bid":null,"bid_qty":null,"symbol":"AAPL","type":"top"}`)
	if code, _, errs := runCmd(append([]string{"buy", "AAPL", "4", "100.00"}, bob...)...); code != 0 {
		t.Fatal(errs)
	}
	waitFor(`"aggressor":"buy","price":"100.00","qty":"4","symbol":"AAPL"`)
	waitFor(`{"ask":"100.00","ask_qty":"6","bid":null,"bid_qty":null,"symbol":"AAPL","type":"top"}`)
	if code, _, errs := runCmd(append([]string{"watch", "NOPE"}, bob...)...); code != 1 || !strings.Contains(errs, "NOPE") {
		t.Fatalf("watch of an unknown symbol: %d %q", code, errs)
	}
}
