package api

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
)

// TestConcurrentSessions runs the server in process (so the race detector
// sees it) with many sessions trading against each other at once; every
// order must be answered, and every fill reported to both sides.
func TestConcurrentSessions(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := workload.Config(0)
	store, err := persist.Open("db", cfg, persist.Options{FS: vfs.NewCrashableMem(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, _, _ := store.Recover()
	const sessions, orders = 16, 200
	var accts []Account
	for i := 1; i <= sessions; i++ {
		accts = append(accts, Account{ID: engine.AccountID(i), Name: "a", Token: "token-of-" + string(rune('a'+i))})
	}
	srv, err := NewServer(Config{Listen: "127.0.0.1:0", Logger: quiet}, accts)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pipeline.New(e, store, srv.Deliver, pipeline.Config{})
	srv.Attach(p)
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	go srv.Serve()

	var wg sync.WaitGroup
	var mu sync.Mutex
	filled := map[engine.TradeID]int{} // trade -> number of sides reported
	for i := 1; i <= sessions; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			m := wire.Login{Version: wire.Version, Account: engine.AccountID(i)}
			copy(m.Token[:], accts[i-1].Token)
			var out []byte
			out = m.Append(out)
			for k := 1; k <= orders; k++ {
				side := engine.Side(1 + i%2) // odd sessions buy, even ones sell
				out = (&wire.NewOrder{Ref: engine.ClientRef(k), Instrument: workload.Instrument, Side: side,
					Type: engine.Limit, TIF: engine.GTC, Price: 100_000, Qty: 1}).Append(out)
			}
			c.Write(out) // pipelined: everything at once
			rd := wire.NewReader(c, wire.MaxFrame, 1<<16)
			answered := 0
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			for {
				if answered == orders {
					// Everything answered: read on until the stream is
					// quiet, for executions of resting orders.
					c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				}
				typ, body, err := rd.Next()
				if err != nil {
					if answered < orders {
						t.Errorf("session %d: %v after %d answers", i, err, answered)
					}
					return
				}
				switch typ {
				case wire.TypeAccepted, wire.TypeRejected:
					answered++
				case wire.TypeExecuted:
					var ex wire.Executed
					ex.Decode(body)
					mu.Lock()
					filled[ex.Trade]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	srv.Shutdown(5 * time.Second)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(filled) == 0 {
		t.Fatal("no trades")
	}
	for trade, n := range filled {
		if n != 2 {
			t.Fatalf("trade %d reported to %d sides, want 2", trade, n)
		}
	}
	t.Logf("%d trades", len(filled))
}
