package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mclient "github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/persist"
)

// The chaos test: sessions trading with each other under load while a
// driver, at random moments, drops connections on the client side and on
// the server side (through a proxy), SIGKILLs and restarts the server,
// and kills clients and starts them again from their saved last message
// number. At the end every session's stream as its client saw it — every
// report, in order, once — must equal the one derived from the journal by
// a fresh engine. CHAOS=long runs it at full size (make chaos).

// report is what the test compares of one stream message.
type report struct {
	msg    uint64
	typ    byte
	seq    engine.Seq
	order  engine.OrderID
	ref    engine.ClientRef
	qty    engine.Qty // accepted, executed, canceled: the quantity; mass canceled: the count
	trade  engine.TradeID
	eoc    bool
	liquid uint8
	reason uint8
	leaves engine.Qty
	time   int64 // the command's timestamp
}

// chaosProxy forwards connections to the current server and can cut
// them, as a network or a server that drops a connection.
type chaosProxy struct {
	ln     net.Listener
	target atomic.Value // string
	mu     sync.Mutex
	conns  []net.Conn // both ends of every live pair
}

func newChaosProxy(t *testing.T) *chaosProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &chaosProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cutAll() })
	return p
}

func (p *chaosProxy) forward(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target.Load().(string), time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close(); c.Close() }()
	io.Copy(c, s)
	c.Close()
	s.Close()
}

// cutOne closes a random live connection pair; it reports whether there
// was one.
func (p *chaosProxy) cutOne(rng *rand.Rand) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) == 0 {
		return false
	}
	i := rng.IntN(len(p.conns)/2) * 2
	p.conns[i].Close()
	p.conns[i+1].Close()
	p.conns = append(p.conns[:i], p.conns[i+2:]...)
	return true
}

func (p *chaosProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// chaosTrader is one session and the stream its client has seen.
type chaosTrader struct {
	acct  engine.AccountID
	token string
	name  string
	addr  string

	mu      sync.Mutex
	seen    []report
	c       *mclient.Client
	ref     engine.ClientRef
	open    []engine.OrderID // orders it may cancel
	answers atomic.Int64     // end-of-command messages seen
	caught  chan struct{}    // signalled on each catch-up
	// onReport, if set, is told of each message and when it arrived.
	onReport func(r report, at time.Time)
}

func (tr *chaosTrader) onMessage(m *mclient.Message) {
	r, ok := m.Report()
	if !ok {
		return
	}
	rep := report{msg: r.Msg, typ: m.Type, seq: r.Seq, order: r.OrderID, ref: r.Ref, eoc: r.Flags&wire.FlagEndOfCommand != 0, time: r.Time}
	switch m.Type {
	case wire.TypeAccepted:
		rep.qty = m.Accepted.Qty
	case wire.TypeExecuted:
		rep.qty, rep.trade, rep.liquid, rep.leaves = m.Executed.Qty, m.Executed.Trade, m.Executed.Liquidity, m.Executed.Leaves
	case wire.TypeCanceled:
		rep.qty, rep.reason = m.Canceled.Qty, uint8(m.Canceled.Reason)
	case wire.TypeRejected:
		rep.reason = uint8(m.Rejected.Reason)
	case wire.TypeMassCanceled:
		rep.qty = engine.Qty(m.MassCanceled.Count)
	}
	tr.mu.Lock()
	tr.seen = append(tr.seen, rep)
	if m.Type == wire.TypeAccepted && len(tr.open) < 64 {
		tr.open = append(tr.open, r.OrderID)
	}
	tr.mu.Unlock()
	if rep.eoc {
		tr.answers.Add(1)
	}
	if tr.onReport != nil {
		tr.onReport(rep, time.Now())
	}
}

func (tr *chaosTrader) last() uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.seen) == 0 {
		return 0
	}
	return tr.seen[len(tr.seen)-1].msg
}

// start logs in (resuming from the last message it saw) until it can.
func (tr *chaosTrader) start(t testing.TB) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := mclient.Dial(ctx, mclient.Config{Addr: tr.addr, Account: tr.acct, Token: tr.token, Session: tr.name,
			Next: tr.last() + 1, TakeOver: true, Reconnect: true, ReconnectFor: time.Minute, OnMessage: tr.onMessage,
			OnCaughtUp: func(wire.LoginAccepted) {
				select {
				case tr.caught <- struct{}{}:
				default:
				}
			}})
		cancel()
		if err == nil {
			tr.mu.Lock()
			tr.c = c
			tr.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: cannot log in: %v", tr.name, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restart kills the client, as if its process died, and starts a new one
// from the saved last message number.
func (tr *chaosTrader) restart(t testing.TB) {
	tr.mu.Lock()
	c := tr.c
	tr.mu.Unlock()
	c.Kill()
	<-c.Done()
	tr.start(t)
}

// catchUp makes every trader log in afresh, waits until its replay is
// delivered, and closes it: each has then seen its whole stream.
func catchUp(t testing.TB, traders []*chaosTrader) {
	t.Helper()
	for _, tr := range traders {
		select {
		case <-tr.caught: // an earlier login's
		default:
		}
		tr.restart(t)
		select {
		case <-tr.caught:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not catch up", tr.name)
		}
		tr.mu.Lock()
		tr.c.Close()
		tr.mu.Unlock()
	}
}

// trade sends orders (and some cancels) until stop, keeping at most
// window commands unanswered.
func (tr *chaosTrader) trade(stop <-chan struct{}, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	sent := int64(0)
	for {
		select {
		case <-stop:
			return
		default:
		}
		if sent-tr.answers.Load() > 200 {
			time.Sleep(200 * time.Microsecond)
			sent = tr.answers.Load() + 100 // answers lost with a broken connection are not coming
			continue
		}
		tr.mu.Lock()
		c := tr.c
		var frame []byte
		if len(tr.open) > 0 && rng.IntN(4) == 0 {
			i := rng.IntN(len(tr.open))
			frame = (&wire.Cancel{OrderID: tr.open[i]}).Append(nil)
			tr.open = append(tr.open[:i], tr.open[i+1:]...)
		} else {
			tr.ref++
			side := engine.Side(1 + rng.IntN(2))
			price := engine.Price(10_000 + rng.IntN(21) - 10)
			tif := engine.GTC
			if rng.IntN(3) == 0 {
				tif = engine.IOC
			}
			frame = (&wire.NewOrder{Ref: tr.ref, Instrument: 1, Side: side, Type: engine.Limit, TIF: tif,
				Price: price, Qty: engine.Qty(1 + rng.IntN(20))}).Append(nil)
		}
		tr.mu.Unlock()
		if c.Send(frame) == nil {
			sent++
		}
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Microsecond)
	}
}

func TestChaosExactlyOnce(t *testing.T) {
	duration, kills, drops := 12*time.Second, 3, 60
	if os.Getenv("CHAOS") == "long" {
		duration, kills, drops = 150*time.Second, 25, 1300
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (CHAOS_SEED to repeat), %v, %d kills, %d drops", seed, duration, kills, drops)
	rng := rand.New(rand.NewPCG(seed, 1))
	// Bounded: a hang is a failure, with every goroutine's stack.
	watchdog := time.AfterFunc(duration+2*time.Minute, func() { panic("chaos test: no end in sight") })
	defer watchdog.Stop()
	data := t.TempDir()
	// Snapshots only at the end: the journal then holds everything, for
	// the truth below.
	args := []string{"--config", "../../configs/demo.json", "--data", data, "--snapshot-every", "100000000",
		"--snapshot-interval", "1h"}
	srv := startWith(t, args...)
	proxy := newChaosProxy(t)
	proxy.target.Store(srv.addr)
	addr := proxy.ln.Addr().String()

	traders, stopTrading := startTraders(t, addr, seed, nil)

	// The driver: drops and client restarts spread over the run, kills
	// at about even intervals.
	var disconnects, killed, restarts int
	begin := time.Now()
	dropEvery := duration / time.Duration(drops)
	killEvery := duration / time.Duration(kills+1)
	nextKill := begin.Add(killEvery)
	for time.Since(begin) < duration {
		time.Sleep(time.Duration(rng.Int64N(int64(dropEvery) * 2)))
		if time.Now().After(nextKill) && killed < kills {
			srv.cmd.Process.Signal(syscall.SIGKILL)
			<-srv.exit
			proxy.cutAll()
			srv = startWith(t, args...)
			proxy.target.Store(srv.addr)
			killed++
			disconnects += len(traders)
			nextKill = nextKill.Add(killEvery)
			continue
		}
		tr := traders[rng.IntN(len(traders))]
		switch rng.IntN(10) {
		case 0:
			tr.restart(t)
			restarts++
			disconnects++
		case 1, 2, 3, 4:
			tr.mu.Lock()
			c := tr.c
			tr.mu.Unlock()
			c.Drop() // client side
			disconnects++
		default:
			if proxy.cutOne(rng) { // the server's side of the link
				disconnects++
			}
		}
	}
	stopTrading()
	t.Logf("%d disconnects (%d client restarts), %d server kills in %v", disconnects, restarts, killed, time.Since(begin).Round(time.Millisecond))

	// Every client catches up on a fresh connection, then the server stops.
	catchUp(t, traders)
	if code := srv.stop(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}

	truth := streamsFromJournal(t, data)
	total := 0
	for _, tr := range traders {
		want := truth[streamOf{tr.acct, sessionID(tr.name)}]
		got := tr.seen
		total += len(got)
		for i := 0; i < max(len(got), len(want)); i++ {
			switch {
			case i >= len(got):
				t.Fatalf("%s: missed messages from %d on (of %d); first missed %+v", tr.name, i+1, len(want), want[i])
			case i >= len(want):
				t.Fatalf("%s: %d messages more than the journal's %d: %+v", tr.name, len(got)-len(want), len(want), got[i])
			case got[i] != want[i]:
				t.Fatalf("%s: message %d differs:\n got  %+v\n want %+v", tr.name, i+1, got[i], want[i])
			}
		}
		if len(want) == 0 {
			t.Fatalf("%s traded nothing", tr.name)
		}
	}
	t.Logf("every session's %d messages in all equal the journal's, in order, once", total)
	if os.Getenv("CHAOS") == "long" && (disconnects < 1000 || killed < 20) {
		t.Fatalf("only %d disconnects and %d kills", disconnects, killed)
	}
}

type streamOf struct {
	acct engine.AccountID
	sess engine.SessionID
}

func sessionID(name string) engine.SessionID {
	n, err := wire.ParseSessionName(name)
	if err != nil {
		panic(err)
	}
	return n.ID()
}

// streamsFromJournal replays the whole journal through a fresh engine and
// returns every session's stream as the engine's events define it: the
// truth, computed without the server's encoding or routing code.
func streamsFromJournal(t testing.TB, dir string) map[streamOf][]report {
	store, err := persist.Open(dir, engine.Config{}, persist.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, err := store.LoadSnapshot(0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[streamOf][]report{}
	var evs []engine.Event
	err = store.Replay(context.Background(), 1, 0, func(c *engine.Command) error {
		evs = e.Apply(c, evs[:0])
		lastOwn := -1
		for j, ev := range evs {
			if ev.SessSeq != 0 && ev.Account == c.Account && ev.Session == c.Session {
				lastOwn = j
			}
		}
		for j, ev := range evs {
			add := func(acct engine.AccountID, s engine.SessionID, r report) {
				k := streamOf{acct, s}
				if n := uint64(len(out[k])) + 1; r.msg != n {
					err = errors.Join(err, fmt.Errorf("journal seq %d: message %d of %v numbered %d", c.Seq, n, k, r.msg))
				}
				out[k] = append(out[k], r)
			}
			r := report{msg: ev.SessSeq, seq: ev.Seq, order: ev.OrderID, ref: ev.Ref, eoc: j == lastOwn, time: ev.Time}
			switch ev.Kind {
			case engine.EvAccepted:
				r.typ, r.qty = wire.TypeAccepted, ev.Qty
			case engine.EvRejected:
				r.typ, r.reason = wire.TypeRejected, ev.Reason
				if engine.RejectReason(r.reason) == engine.RejectNotOwner {
					r.reason = uint8(engine.RejectUnknownOrder)
				}
			case engine.EvFill:
				r.typ, r.qty, r.trade, r.liquid, r.leaves = wire.TypeExecuted, ev.Qty, ev.TradeID, wire.LiquidityRemoved, ev.Leaves
				add(ev.MakerAccount, ev.MakerSession, report{msg: ev.MakerSessSeq, typ: wire.TypeExecuted, seq: ev.Seq,
					order: ev.MakerOrder, ref: ev.MakerRef, qty: ev.Qty, trade: ev.TradeID, liquid: wire.LiquidityAdded, leaves: ev.MakerLeaves, time: ev.Time})
			case engine.EvCanceled:
				r.typ, r.qty, r.reason = wire.TypeCanceled, ev.Qty, ev.Reason
			case engine.EvReplaced:
				r.typ = wire.TypeReplaced
			case engine.EvMassCanceled:
				r.typ, r.qty, r.order, r.ref = wire.TypeMassCanceled, ev.Qty, 0, 0
			default:
				continue
			}
			add(ev.Account, ev.Session, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
