package loadtest

import (
	"context"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/matchd/matchd/api/apitest"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

func TestScheduleNoDrift(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	s := NewSchedule(start, 1_000_000) // 1 µs apart
	if got := s.Due(1_000_000_000); !got.Equal(start.Add(1000 * time.Second)) {
		t.Fatalf("item 1e9 due at %v, want exactly 1000 s after start", got.Sub(start))
	}
	if _, n := s.Take(start.Add(-time.Millisecond)); n != 0 {
		t.Fatalf("%d items due before the start", n)
	}
	first, n := s.Take(start.Add(2500 * time.Nanosecond))
	if first != 0 || n != 3 {
		t.Fatalf("at 2.5 µs: first %d n %d, want 0 and 3 (due at 0, 1, 2 µs)", first, n)
	}
	if _, n := s.Take(start.Add(2500 * time.Nanosecond)); n != 0 {
		t.Fatal("items taken twice")
	}
	if first, n := s.Take(start.Add(time.Hour)); first != 3 || n != 3_600_000_000-2 {
		t.Fatalf("after an hour: first %d n %d", first, n)
	}
	if !s.Next().Equal(start.Add(time.Hour + time.Microsecond)) {
		t.Fatalf("next due %v", s.Next().Sub(start))
	}
}

func TestSummarizeKnownInputs(t *testing.T) {
	h := newHist()
	for us := int64(1); us <= 1000; us++ {
		h.RecordValue(us * 1000)
	}
	l := Summarize(h)
	near := func(got, want float64) bool { return got >= want*0.99 && got <= want*1.01 }
	if l.Count != 1000 || !near(l.P50, 500) || !near(l.P90, 900) || !near(l.P99, 990) || !near(l.Max, 1000) {
		t.Fatalf("%+v", l)
	}
}

// TestVerificationCatchesLoss: a dropped answer, and a trade seen by only
// one side, make the run fail verification.
func TestVerificationCatchesLoss(t *testing.T) {
	mk := func() *session {
		return &session{sent: map[engine.ClientRef]pending{}, byID: map[engine.OrderID]pending{},
			cxl: map[engine.OrderID]time.Time{}, pos: map[engine.OrderID]int{}, rej: map[string]int64{},
			fills: map[engine.TradeID][2]engine.Qty{}, conn: nopConn{},
			hists: map[string]*hdrhistogram.Histogram{KindAccept: newHist(), KindFill: newHist(), KindCancel: newHist(), KindLateness: newHist()}}
	}
	now := time.Now()
	s := mk()
	s.sent[1], s.sent[2] = pending{due: now}, pending{due: now}
	s.handle(wire.TypeAccepted, (&wire.Accepted{Report: wire.Report{OrderID: 10, Ref: 1}}).Append(nil)[3:], now)
	// No answer for ref 2.
	r := collect(Config{Rate: 1}, []*session{s}, now, now.Add(time.Second))
	if r.OK() || !strings.Contains(r.Errors[0], "1 orders and 0 cancels never answered") {
		t.Fatalf("a dropped answer went unnoticed: %v", r.Errors)
	}
	s = mk()
	s.handle(wire.TypeExecuted, (&wire.Executed{Trade: 7, Qty: 5, Liquidity: wire.LiquidityRemoved}).Append(nil)[3:], now)
	r = collect(Config{Rate: 1}, []*session{s}, now, now.Add(time.Second))
	if r.OK() || !strings.Contains(strings.Join(r.Errors, ";"), "quantities differ") {
		t.Fatalf("a one-sided trade went unnoticed: %v", r.Errors)
	}
}

type nopConn struct{ netConn }

func (nopConn) Close() error { return nil }

// TestTwoSecondRun: a real server, two sessions, 2 s of load: the report is
// complete and consistent, and the plot and JSON are written.
func TestTwoSecondRun(t *testing.T) {
	addr := apitest.Start(t)
	cfg := Config{Addr: addr, Accounts: []Account{{1, "alice-demo"}, {2, "bob-demo"}}, Rate: 5_000,
		Warmup: 500 * time.Millisecond, Duration: 2 * time.Second, Seed: 7}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	r.Table(&sb)
	t.Log("\n" + sb.String())
	if !r.OK() {
		t.Fatalf("verification failed: %v", r.Errors)
	}
	if r.Answered != r.Sent || r.Sent < 10_000 || r.Trades == 0 {
		t.Fatalf("sent %d answered %d trades %d", r.Sent, r.Answered, r.Trades)
	}
	if r.Achieved < 0.8*cfg.Rate || r.Achieved > 1.2*cfg.Rate {
		t.Fatalf("achieved %.0f/s for %.0f offered", r.Achieved, cfg.Rate)
	}
	for _, k := range []string{KindAccept, KindFill, KindCancel} {
		if l := r.Latency[k]; l.Count == 0 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
			t.Fatalf("%s: %+v", k, l)
		}
	}
	dir := t.TempDir()
	if err := r.WriteJSON(filepath.Join(dir, "result.json")); err != nil {
		t.Fatal(err)
	}
	if err := r.WritePlot(filepath.Join(dir, "latency.svg"), "test"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "latency.svg")); !strings.Contains(string(b), "<polyline") {
		t.Fatal("plot has no lines")
	}
}

// netConn lets nopConn satisfy net.Conn for tests that never use it.
type netConn = interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// TestCapacitySearchesDown: when the first rate does not hold (here a
// burst of a million orders a second, whose p99 is hundreds of
// milliseconds or more), the search steps down, by the factor squared,
// and reports the first rate that holds instead of 0. What rate that is
// depends on the machine (and on the race detector): the test checks the
// search, not the speed.
func TestCapacitySearchesDown(t *testing.T) {
	addr := apitest.Start(t)
	cfg := Config{Addr: addr, Accounts: []Account{{1, "alice-demo"}, {2, "bob-demo"}}, Rate: 1_000_000,
		Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond, Seed: 3}
	best, steps, err := Capacity(context.Background(), cfg, 10, 100*time.Millisecond, 0.99, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) < 2 || steps[0].OK {
		t.Fatalf("steps %+v: want 1,000,000/s refused, then lower rates", steps)
	}
	for i, st := range steps {
		if want := 1_000_000 / math.Pow(100, float64(i)); math.Abs(st.Offered-want) > 1e-6*want {
			t.Fatalf("step %d offered %.0f/s, want %.0f/s (down by the factor squared): %+v", i, st.Offered, want, steps)
		}
		if st.OK != (i == len(steps)-1 && best > 0) {
			t.Fatalf("step %d: %+v; the search goes on only while a rate fails, and stops at the first that holds", i, steps)
		}
	}
	if best == 0 || best != steps[len(steps)-1].Offered {
		t.Fatalf("capacity %.0f after %+v: want the first rate that held (100/s holds on any machine)", best, steps)
	}
}

// TestOverloadedRunVerifies: a run whose answers come back long after
// its last command (a burst far beyond what the server sustains) still
// sees every answer and both sides of every trade: the sessions end only
// once everything they sent is answered, not after a fixed wait.
func TestOverloadedRunVerifies(t *testing.T) {
	addr := apitest.Start(t)
	burst := 400 * time.Millisecond
	if testing.Short() { // the race detector's run: its server is slow enough to lag far behind a shorter burst
		burst = 150 * time.Millisecond
	}
	cfg := Config{Addr: addr, Accounts: []Account{{1, "alice-demo"}, {2, "bob-demo"}}, Rate: 1_000_000,
		Warmup: 100 * time.Millisecond, Duration: burst, Seed: 5}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Answered != r.Sent || r.Trades == 0 {
		t.Fatalf("sent %d, answered %d, trades %d, p99 %.0f µs: %v", r.Sent, r.Answered, r.Trades, r.Latency[KindAccept].P99, r.Errors)
	}
	t.Logf("sent %d, accept p99 %.0f µs: all answered, every trade seen by both sides", r.Sent, r.Latency[KindAccept].P99)
}

// TestDrainHeartbeats: while a run waits for the answers to its last
// commands, its sessions heartbeat, so that a server whose answers lag
// by more than its idle timeout does not end them. The server here logs
// the session in and never answers an order; it counts the heartbeats.
func TestDrainHeartbeats(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	beats := make(chan struct{}, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				rd := wire.NewReader(c, wire.MaxFrame, 128)
				if typ, _, err := rd.Next(); err != nil || typ != wire.TypeLogin {
					return
				}
				ack := wire.LoginAccepted{Version: wire.Version}
				c.Write(ack.Append(nil))
				for {
					typ, _, err := rd.Next()
					if err != nil || typ == wire.TypeLogout {
						return
					}
					if typ == wire.TypeHeartbeat {
						beats <- struct{}{}
					}
				}
			}()
		}
	}()
	cfg := Config{Addr: ln.Addr().String(), Accounts: []Account{{1, "alice-demo"}}, Rate: 1000,
		Warmup: 10 * time.Millisecond, Duration: 100 * time.Millisecond, DrainWait: 2500 * time.Millisecond}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || r.Answered != 0 {
		t.Fatalf("answered %d of %d from a server that answers nothing; errors %v", r.Answered, r.Sent, r.Errors)
	}
	if n := len(beats); n < 2 {
		t.Fatalf("%d heartbeats in a drain of %v: want one a second", n, cfg.DrainWait)
	}
}
