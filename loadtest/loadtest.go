// Package loadtest drives a running matchd with an open-loop order flow and
// measures it honestly: orders go out on a fixed schedule whatever the
// server does, latency is measured from each order's intended send time,
// and recorded in HDR histograms. At the end every order must have been
// answered and every trade reported to both of its sides.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// Account is a login the load tester uses; one session per account.
type Account struct {
	ID    engine.AccountID
	Token string
}

// Config configures a run.
type Config struct {
	Addr     string
	Accounts []Account
	// Instrument and Mid: orders go around Mid (ticks) on Instrument.
	Instrument engine.InstrumentID
	Mid        engine.Price
	// Rate is the offered rate in commands per second, over all sessions.
	Rate float64
	// Warmup is excluded from the results; Duration is measured.
	Warmup, Duration time.Duration
	// Mix in percent: passive limits near the drifting mid, cancels of the
	// session's own open orders, aggressive IOC limits that trade.
	PassivePct, CancelPct, AggressivePct int
	Seed                                 uint64
	// SendQuantum is the shortest time between two wake-ups of the
	// sender; commands falling due within it are sent together. Default
	// 10 µs.
	SendQuantum time.Duration
	// Progress, if set, receives a line a second.
	Progress io.Writer
	// DrainWait bounds how long a run waits, after its last command, for
	// the answers to everything it sent; its sessions heartbeat meanwhile,
	// so that the server's idle timeout does not end them. Default 30 s.
	DrainWait time.Duration
}

// EnsureDefaults fills in zero fields.
func (c *Config) EnsureDefaults() {
	if c.Instrument == 0 {
		c.Instrument = 1
	}
	if c.Mid == 0 {
		c.Mid = 10_000
	}
	if c.Rate == 0 {
		c.Rate = 100_000
	}
	if c.Duration == 0 {
		c.Duration = 15 * time.Second
	}
	if c.PassivePct+c.CancelPct+c.AggressivePct == 0 {
		c.PassivePct, c.CancelPct, c.AggressivePct = 60, 30, 10
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.SendQuantum == 0 {
		c.SendQuantum = 10 * time.Microsecond
	}
	if c.DrainWait == 0 {
		c.DrainWait = 30 * time.Second
	}
}

// Kinds of measured latency.
const (
	KindAccept = "order-to-accept"
	KindFill   = "order-to-fill"
	KindCancel = "cancel-to-canceled"
	// KindLateness is how late the generator itself sent each batch
	// against its schedule: part of every latency above, and the
	// generator's own, not the server's.
	KindLateness = "send-lateness"
)

// Result is what a run measured.
type Result struct {
	Offered    float64                            `json:"offered_per_s"`
	Achieved   float64                            `json:"achieved_per_s"`
	Sent       int64                              `json:"sent"`
	Answered   int64                              `json:"answered"`
	Rejects    map[string]int64                   `json:"rejects"`
	Trades     int64                              `json:"trades"`
	Latency    map[string]*LatencySummary         `json:"latency"`
	Errors     []string                           `json:"errors"`
	Hists      map[string]*hdrhistogram.Histogram `json:"-"`
	Reconnects int64                              `json:"reconnects"`
	// Params says how the run was made (set by the caller, matchload).
	Params Params `json:"params"`
}

// Params are a run's parameters, recorded with its results.
type Params struct {
	Started  string  `json:"started"` // RFC 3339
	Addr     string  `json:"addr"`
	Server   string  `json:"server"` // "own" (a fresh matchd matchload started) or "external"
	Fsync    string  `json:"fsync"`  // on, off or unknown (an external server's)
	Rate     float64 `json:"rate_per_s"`
	Duration string  `json:"duration"`
	Warmup   string  `json:"warmup"`
	Seed     uint64  `json:"seed"`
	Sessions int     `json:"sessions"`
	Mix      string  `json:"mix"`    // passive/cancel/aggressive percent
	Commit   string  `json:"commit"` // matchload's build (VCS revision)
	Go       string  `json:"go"`
}

// LatencySummary is one histogram's percentiles, in microseconds.
type LatencySummary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p99_9_us"`
	P9999 float64 `json:"p99_99_us"`
	Max   float64 `json:"max_us"`
}

// Summarize computes a LatencySummary from a histogram of nanoseconds.
func Summarize(h *hdrhistogram.Histogram) *LatencySummary {
	us := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1e3 }
	return &LatencySummary{Count: h.TotalCount(), P50: us(50), P90: us(90), P99: us(99), P999: us(99.9),
		P9999: us(99.99), Max: float64(h.Max()) / 1e3}
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1_000, 60_000_000_000, 3) } // 1 µs .. 60 s

// OK reports whether the run verified.
func (r *Result) OK() bool { return len(r.Errors) == 0 }

// session is one connection's state. The sender and the receiver share
// it under mu.
type session struct {
	acct             Account
	conn             net.Conn
	rng              *rand.Rand
	mu               sync.Mutex
	ref              engine.ClientRef
	sent             map[engine.ClientRef]pending // new orders awaiting their answer
	byID             map[engine.OrderID]pending   // accepted aggressive orders awaiting a fill
	live             []engine.OrderID             // resting orders, for cancels
	pos              map[engine.OrderID]int       // index in live
	cxl              map[engine.OrderID]time.Time // cancels awaiting their answer
	hists            map[string]*hdrhistogram.Histogram
	rej              map[string]int64
	fills            map[engine.TradeID][2]engine.Qty // taker, maker quantity seen
	nSent, nAnswered int64
	nMeasured        int64 // answered commands due in the measured window
	measureFrom      time.Time
	err              error
}

type pending struct {
	due        time.Time
	aggressive bool
}

// Run drives the server for Warmup+Duration and returns the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.EnsureDefaults()
	if len(cfg.Accounts) == 0 {
		return nil, errors.New("loadtest: no accounts")
	}
	start := time.Now().Add(200 * time.Millisecond)
	measureFrom := start.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	sessions := make([]*session, len(cfg.Accounts))
	for i, a := range cfg.Accounts {
		s, err := dialSession(ctx, cfg.Addr, a, fmt.Sprintf("load%d", i))
		if err != nil {
			for _, o := range sessions[:i] {
				o.conn.Close()
			}
			return nil, err
		}
		s.rng = rand.New(rand.NewPCG(cfg.Seed, uint64(a.ID)))
		s.measureFrom = measureFrom
		sessions[i] = s
	}
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() { defer wg.Done(); s.receive() }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); send(cfg, sessions, NewSchedule(start, cfg.Rate), end) }()
	stopProgress := make(chan struct{})
	if cfg.Progress != nil {
		go progress(cfg.Progress, sessions, start, measureFrom, stopProgress)
	}
	wg.Wait()
	close(stopProgress)
	return collect(cfg, sessions, measureFrom, end), nil
}

// dialSession logs in to the named session (taking it over from an
// earlier run's connection, if any): references are per session, so
// load on one session never collides with other sessions of the account.
// addrs may list a cluster's nodes (comma-separated): the session goes to
// the leader, following a follower's NotLeader. (A run does not follow a
// failover: it measures one leader.)
func dialSession(ctx context.Context, addrs string, a Account, name string) (*session, error) {
	var last error
	for round := 0; round < 50 && ctx.Err() == nil; round++ {
		for _, addr := range strings.Split(addrs, ",") {
			for hops := 0; hops < 3 && addr != ""; hops++ {
				s, redirect, err := dialSessionAt(ctx, strings.TrimSpace(addr), a, name)
				if err == nil {
					return s, nil
				}
				last, addr = err, redirect
			}
		}
		time.Sleep(100 * time.Millisecond) // an election under way
	}
	return nil, last
}

func dialSessionAt(ctx context.Context, addr string, a Account, name string) (*session, string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("loadtest: %w", err)
	}
	sn, err := wire.ParseSessionName(name)
	if err != nil {
		c.Close()
		return nil, "", fmt.Errorf("loadtest: %w", err)
	}
	m := wire.Login{Version: wire.Version, Account: a.ID, Session: sn, Flags: wire.FlagTakeOver}
	copy(m.Token[:], a.Token)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(m.Append(nil))
	rd := wire.NewReader(c, wire.MaxFrame, 128)
	typ, body, err := rd.Next()
	if err == nil && typ == wire.TypeNotLeader {
		c.Close()
		var nl wire.NotLeader
		nl.Decode(body)
		return nil, nl.Addr, fmt.Errorf("loadtest: %s does not lead (node %d does, at %q)", addr, nl.Leader, nl.Addr)
	}
	if err != nil || typ != wire.TypeLoginAccepted {
		c.Close()
		return nil, "", fmt.Errorf("loadtest: login of account %d failed (%q, %v)", a.ID, typ, err)
	}
	c.SetDeadline(time.Time{})
	return &session{acct: a, conn: c, ref: engine.ClientRef(time.Now().UnixNano()),
		sent: map[engine.ClientRef]pending{}, byID: map[engine.OrderID]pending{}, cxl: map[engine.OrderID]time.Time{},
		pos: map[engine.OrderID]int{},
		hists: map[string]*hdrhistogram.Histogram{KindAccept: newHist(), KindFill: newHist(), KindCancel: newHist(),
			KindLateness: newHist()},
		rej: map[string]int64{}, fills: map[engine.TradeID][2]engine.Qty{}}, "", nil
}

// send is the one sender of every session: command k of the schedule goes
// to session k mod len(sessions), and each session gets the commands due
// by now in one write. It waits for the next due time in the kernel and
// then spins (waitUntil), never on a Go timer, so that its own lateness
// stays in microseconds: the run measures the server, not the generator.
func send(cfg Config, sessions []*session, sched *Schedule, end time.Time) {
	bufs := make([][]byte, len(sessions))
	mid := cfg.Mid
	rng := rand.New(rand.NewPCG(cfg.Seed, 0))
	ns := int64(len(sessions))
	// SendQuantum: at high rates commands due within one quantum go in
	// one write, which halves the syscalls of both processes at 100 k/s
	// for at most a quantum of lateness.
	failed := false
	sched.Pace(end, cfg.SendQuantum, func(now time.Time, first, n int64) bool {
		for i := range bufs {
			bufs[i] = bufs[i][:0]
		}
		for i := range sessions { // lock each session once per write
			sessions[i].mu.Lock()
		}
		for k := first; k < first+n; k++ {
			due := sched.Due(k)
			if due.After(end) {
				break
			}
			if k%100 == 0 {
				mid += engine.Price(2*rng.IntN(2) - 1)
			}
			i := k % ns
			bufs[i] = sessions[i].next(bufs[i], cfg, mid, due)
		}
		for i := range sessions {
			sessions[i].mu.Unlock()
		}
		late := now.Sub(sched.Due(first)).Nanoseconds() // recorded after the writes
		for i, s := range sessions {
			if len(bufs[i]) == 0 {
				continue
			}
			if _, err := s.conn.Write(bufs[i]); err != nil {
				s.fail(err)
				failed = true
				return false
			}
		}
		if !sched.Due(first).Before(sessions[0].measureFrom) {
			s := sessions[first%ns]
			s.mu.Lock()
			s.hists[KindLateness].RecordValue(max(late, 1_000))
			s.mu.Unlock()
		}
		return true
	})
	if failed {
		return
	}
	// Let the last answers arrive, then end the sessions: only once every
	// session's commands are all answered (at most cfg.DrainWait), since a
	// session that logs out while another's orders are still queued
	// behind it would miss its fills as their maker (seen against an
	// overloaded cluster, where answers took seconds). The sessions send
	// nothing else meanwhile, so they heartbeat: a server whose answers
	// lag by more than its idle timeout would end them otherwise (seen
	// under the race detector: ByeIdle, and 21,762 orders never answered).
	deadline := time.Now().Add(cfg.DrainWait)
	hb := wire.AppendEmpty(nil, wire.TypeHeartbeat)
	beat := time.Now().Add(heartbeatEvery)
	for time.Now().Before(deadline) && outstanding(sessions) > 0 {
		time.Sleep(10 * time.Millisecond)
		if now := time.Now(); now.After(beat) {
			for _, s := range sessions {
				s.conn.Write(hb)
			}
			beat = now.Add(heartbeatEvery)
		}
	}
	time.Sleep(100 * time.Millisecond) // the fills of the last answered commands
	for _, s := range sessions {
		s.conn.Write(wire.AppendEmpty(nil, wire.TypeLogout))
		s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
}

// heartbeatEvery is how often a session with nothing else to send
// heartbeats: well within any sane idle timeout (the server's default is
// 15 s).
const heartbeatEvery = time.Second

// outstanding counts the sessions' commands not answered yet.
func outstanding(sessions []*session) int {
	n := 0
	for _, s := range sessions {
		s.mu.Lock()
		n += len(s.sent) + len(s.cxl)
		s.mu.Unlock()
	}
	return n
}

// next appends one command, chosen by the mix. Called with mu held.
func (s *session) next(buf []byte, cfg Config, mid engine.Price, due time.Time) []byte {
	p := s.rng.IntN(cfg.PassivePct + cfg.CancelPct + cfg.AggressivePct)
	side := engine.Side(1 + s.rng.IntN(2))
	qty := engine.Qty(1 + s.rng.IntN(100))
	switch {
	case p >= cfg.PassivePct && p < cfg.PassivePct+cfg.CancelPct && len(s.live) > 0:
		id := s.live[s.rng.IntN(len(s.live))]
		s.removeLive(id)
		s.cxl[id] = due
		s.nSent++
		return (&wire.Cancel{OrderID: id}).Append(buf)
	case p >= cfg.PassivePct+cfg.CancelPct:
		price := mid + 60
		if side == engine.Sell {
			price = mid - 60
		}
		s.ref++
		s.sent[s.ref] = pending{due: due, aggressive: true}
		s.nSent++
		return (&wire.NewOrder{Ref: s.ref, Instrument: cfg.Instrument, Side: side, Type: engine.Limit,
			TIF: engine.IOC, Price: price, Qty: qty}).Append(buf)
	default:
		off := engine.Price(1 + s.rng.IntN(50))
		price := mid - off
		if side == engine.Sell {
			price = mid + off
		}
		s.ref++
		s.sent[s.ref] = pending{due: due}
		s.nSent++
		return (&wire.NewOrder{Ref: s.ref, Instrument: cfg.Instrument, Side: side, Type: engine.Limit,
			TIF: engine.GTC, Price: price, Qty: qty}).Append(buf)
	}
}

func (s *session) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// receive records the answers until the session ends.
func (s *session) receive() {
	rd := wire.NewReader(s.conn, wire.MaxFrame, 1<<20)
	for {
		typ, body, err := rd.Next()
		if err != nil {
			return
		}
		s.handle(typ, body, time.Now())
		if typ == wire.TypeGoodbye {
			if body[0] != wire.ByeLogout {
				s.fail(fmt.Errorf("server said goodbye, reason %d", body[0]))
			}
			return
		}
	}
}

func (s *session) record(kind string, due, now time.Time) {
	if !due.Before(s.measureFrom) {
		s.hists[kind].RecordValue(max(now.Sub(due).Nanoseconds(), 1_000))
	}
}

// answered counts one answered command.
func (s *session) answered(due time.Time) {
	s.nAnswered++
	if !due.Before(s.measureFrom) {
		s.nMeasured++
	}
}

// handle applies one message from the server.
func (s *session) handle(typ byte, body []byte, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch typ {
	case wire.TypeAccepted:
		var m wire.Accepted
		m.Decode(body)
		p, ok := s.sent[m.Ref]
		if !ok {
			return
		}
		delete(s.sent, m.Ref)
		s.answered(p.due)
		s.record(KindAccept, p.due, now)
		if p.aggressive {
			s.byID[m.OrderID] = p
		} else {
			s.pos[m.OrderID] = len(s.live)
			s.live = append(s.live, m.OrderID)
		}
	case wire.TypeRejected:
		var m wire.Rejected
		m.Decode(body)
		if p, ok := s.sent[m.Ref]; ok && m.Ref != 0 {
			delete(s.sent, m.Ref)
			s.answered(p.due)
		} else if due, ok := s.cxl[m.OrderID]; ok {
			delete(s.cxl, m.OrderID)
			s.answered(due)
		}
		s.rej[m.Reason.String()]++
	case wire.TypeExecuted:
		var m wire.Executed
		m.Decode(body)
		f := s.fills[m.Trade]
		if m.Liquidity == wire.LiquidityRemoved {
			f[0] += m.Qty
			if p, ok := s.byID[m.OrderID]; ok {
				s.record(KindFill, p.due, now)
				delete(s.byID, m.OrderID) // first fill only
			}
		} else {
			f[1] += m.Qty
			if m.Leaves == 0 {
				s.removeLive(m.OrderID)
			}
		}
		s.fills[m.Trade] = f
	case wire.TypeCanceled:
		var m wire.Canceled
		m.Decode(body)
		if due, ok := s.cxl[m.OrderID]; ok && m.Reason == engine.CancelUser {
			delete(s.cxl, m.OrderID)
			s.answered(due)
			s.record(KindCancel, due, now)
		}
		delete(s.byID, m.OrderID)
		s.removeLive(m.OrderID)
	}
}

// removeLive drops id from the live set, if there (swap with the last).
func (s *session) removeLive(id engine.OrderID) {
	i, ok := s.pos[id]
	if !ok {
		return
	}
	last := s.live[len(s.live)-1]
	s.live[i], s.pos[last] = last, i
	s.live = s.live[:len(s.live)-1]
	delete(s.pos, id)
}

func progress(w io.Writer, sessions []*session, start, measureFrom time.Time, stop chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			var answered int64
			h := newHist()
			for _, s := range sessions {
				s.mu.Lock()
				answered += s.nAnswered
				h.Merge(s.hists[KindAccept])
				s.mu.Unlock()
			}
			phase := "warm-up"
			if now.After(measureFrom) {
				phase = "measuring"
			}
			fmt.Fprintf(w, "%5.1fs %-9s %8d answered/s  accept p50 %7.1f µs  p99 %8.1f µs\n",
				now.Sub(start).Seconds(), phase, answered-last,
				float64(h.ValueAtQuantile(50))/1e3, float64(h.ValueAtQuantile(99))/1e3)
			last = answered
		}
	}
}

// collect merges the sessions and verifies the run.
func collect(cfg Config, sessions []*session, measureFrom, end time.Time) *Result {
	r := &Result{Offered: cfg.Rate, Rejects: map[string]int64{}, Latency: map[string]*LatencySummary{},
		Hists: map[string]*hdrhistogram.Histogram{}}
	trades := map[engine.TradeID][2]engine.Qty{}
	var measured int64
	for _, k := range []string{KindAccept, KindFill, KindCancel, KindLateness} {
		r.Hists[k] = newHist()
	}
	for _, s := range sessions {
		s.mu.Lock()
		r.Sent += s.nSent
		r.Answered += s.nAnswered
		measured += s.nMeasured
		for k, h := range s.hists {
			r.Hists[k].Merge(h)
		}
		for k, v := range s.rej {
			r.Rejects[k] += v
		}
		for id, f := range s.fills {
			t := trades[id]
			trades[id] = [2]engine.Qty{t[0] + f[0], t[1] + f[1]}
		}
		if len(s.sent)+len(s.cxl) > 0 {
			r.Errors = append(r.Errors, fmt.Sprintf("account %d: %d orders and %d cancels never answered",
				s.acct.ID, len(s.sent), len(s.cxl)))
		}
		if s.err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("account %d: %v", s.acct.ID, s.err))
		}
		s.mu.Unlock()
		s.conn.Close()
	}
	var mismatched []engine.TradeID
	for id, f := range trades {
		if f[0] != f[1] {
			mismatched = append(mismatched, id)
		}
	}
	sort.Slice(mismatched, func(i, j int) bool { return mismatched[i] < mismatched[j] })
	if len(mismatched) > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("%d trades where the taker's and the maker's quantities differ (first: trade %d)",
			len(mismatched), mismatched[0]))
	}
	r.Trades = int64(len(trades))
	r.Achieved = float64(measured) / end.Sub(measureFrom).Seconds()
	for k, h := range r.Hists {
		r.Latency[k] = Summarize(h)
	}
	return r
}
