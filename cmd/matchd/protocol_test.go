package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mclient "github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// orders returns n resting buy orders from ref first on, in one buffer.
func orders(first, n int) []byte {
	var b []byte
	for i := range n {
		ref := first + i
		b = (&wire.NewOrder{Ref: engine.ClientRef(ref), Instrument: aapl, Side: engine.Buy, Type: engine.Limit,
			TIF: engine.GTC, Price: engine.Price(9_000 + ref%500), Qty: 1}).Append(b)
	}
	return b
}

// TestEveryAnswerBeforeGoodbye: orders sent just before the session ends
// (a Logout, a malformed frame, a second Login, a half-close) are answered
// before the Goodbye, never executed in silence.
func TestEveryAnswerBeforeGoodbye(t *testing.T) {
	srv := startServer(t, t.TempDir())
	var second wire.Login
	second.Version, second.Account = wire.Version, 1
	copy(second.Token[:], "alice-demo")
	cases := []struct {
		name   string
		ending []byte // appended after the orders; nil: half-close
		bye    uint8
	}{
		{"logout", wire.AppendEmpty(nil, wire.TypeLogout), wire.ByeLogout},
		{"malformed", []byte{0, 3, 'N', 1, 2}, wire.ByeMalformed},
		{"second login", second.Append(nil), wire.ByeMalformed},
		{"half-close", nil, wire.ByeLogout},
	}
	const n = 300
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := login(t, srv.addr, 1, "alice-demo")
			first := 1_000_000 * (i + 1)
			c.send(append(orders(first, n), tc.ending...))
			if tc.ending == nil {
				c.c.(*net.TCPConn).CloseWrite()
			}
			got := 0
			for {
				typ, body := c.next()
				if typ == wire.TypeGoodbye {
					if body[0] != tc.bye {
						t.Fatalf("Goodbye %d, want %d", body[0], tc.bye)
					}
					break
				}
				if typ != wire.TypeAccepted {
					t.Fatalf("unexpected %q", typ)
				}
				got++
			}
			if got != n {
				t.Fatalf("%d of %d orders answered before the Goodbye", got, n)
			}
		})
	}
}

// TestGoodbyeReasons: what docs/PROTOCOL.md says each ending gets.
func TestGoodbyeReasons(t *testing.T) {
	srv := startServer(t, t.TempDir())
	loggedIn := []struct {
		name  string
		frame []byte
		bye   uint8
	}{
		{"unknown query kind", (&wire.Query{Request: 1, Kind: 99}).Append(nil), wire.ByeMalformed},
		{"unknown subscribe action", (&wire.Subscribe{Request: 1, Instrument: aapl, Action: 9}).Append(nil), wire.ByeMalformed},
		{"server-to-client type", wire.AppendEmpty(nil, wire.TypeGoodbye), wire.ByeMalformed},
		{"logout", wire.AppendEmpty(nil, wire.TypeLogout), wire.ByeLogout},
	}
	for _, tc := range loggedIn {
		t.Run(tc.name, func(t *testing.T) {
			c := login(t, srv.addr, 1, "alice-demo")
			c.send(tc.frame)
			if bye, _ := c.readToEnd(); bye != tc.bye {
				t.Fatalf("Goodbye %d, want %d", bye, tc.bye)
			}
		})
	}
	before := []struct {
		name  string
		frame []byte
		bye   uint8
	}{
		{"message before login", orders(1, 1), wire.ByeNotLoggedIn},
		{"malformed frame before login", []byte{0, 3, 'N', 1, 2}, wire.ByeMalformed},
		{"unknown type before login", []byte{0, 1, '~'}, wire.ByeMalformed},
	}
	for _, tc := range before {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, srv.addr)
			c.send(tc.frame)
			if bye, _ := c.readToEnd(); bye != tc.bye {
				t.Fatalf("Goodbye %d, want %d", bye, tc.bye)
			}
		})
	}
}

// TestLargeInstrumentDirectory: 3,000 instruments with long symbols do not
// fit one frame; the directory comes split, and the client reads it whole
// (and can trade on the last instrument).
func TestLargeInstrumentDirectory(t *testing.T) {
	var ins []string
	for i := 1; i <= 3000; i++ {
		ins = append(ins, fmt.Sprintf(`{"id": %d, "symbol": "INSTRUMENT-WITH-A-LONG-NAME-%05d", "tick_size": "0.0001", "lot_size": "0.000001"}`, i, i))
	}
	cfg := filepath.Join(t.TempDir(), "big.json")
	os.WriteFile(cfg, []byte(`{"accounts": [{"id": 1, "name": "a", "token": "token-of-a"}], "instruments": [`+
		strings.Join(ins, ",\n")+`]}`), 0o644)
	srv := startWith(t, "--config", cfg, "--data", t.TempDir())
	cl, err := mclient.Dial(context.Background(), mclient.Config{Addr: srv.addr, Account: 1, Token: "token-of-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dir, err := cl.Instruments(context.Background())
	if err != nil || len(dir) != 3000 || dir[2999].Symbol != "INSTRUMENT-WITH-A-LONG-NAME-03000" {
		t.Fatalf("%d instruments, %v", len(dir), err)
	}
	c := login(t, srv.addr, 1, "token-of-a")
	c.send((&wire.NewOrder{Ref: 1, Instrument: 3000, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC,
		Price: 100, Qty: 1}).Append(nil))
	c.expect(wire.TypeAccepted)
}

// TestHeartbeatAfterOneIntervalOfSilence: the server sends a Heartbeat
// once it has been silent for the heartbeat interval, not two (it used to
// check on a ticker and count a write's tick as silence's start, so a
// heartbeat came every second interval: 2 s with the default of 1 s).
func TestHeartbeatAfterOneIntervalOfSilence(t *testing.T) {
	const beat = 200 * time.Millisecond
	srv := startWith(t, "--config", "../../configs/demo.json", "--data", t.TempDir(), "--heartbeat", beat.String())
	c := login(t, srv.addr, 1, "alice-demo")
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var gaps []time.Duration
	last := time.Now()
	for len(gaps) < 5 {
		typ, _, err := c.rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if typ == wire.TypeHeartbeat {
			gaps = append(gaps, now.Sub(last))
		}
		last = now
	}
	slices.Sort(gaps)
	// The median of 5 silences: one interval plus scheduling, well short
	// of two.
	if med := gaps[2]; med < beat*9/10 || med > beat*3/2 {
		t.Errorf("silences before heartbeats %v (median %v), want about %v", gaps, med, beat)
	}
}
