package node_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/node"
)

// TestCloseThenReopen: a node takes an order over TCP, closes with a final
// snapshot, and a node reopened on the same directory still has the order
// (it replays from the older snapshot kept, to rebuild the sessions'
// streams).
func TestCloseThenReopen(t *testing.T) {
	fs := vfs.NewCrashableMem()
	cfg := node.Config{Dir: "db", FS: fs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Engine: engine.Config{Instruments: []engine.Instrument{{ID: 1, Symbol: "X", TickSize: "1", LotSize: "1",
			BandBps: 1000, StartPrice: 100}}},
		Accounts: []api.Account{{ID: 1, Name: "a", Token: "t"}},
		API:      api.Config{Listen: "127.0.0.1:0"}}
	n, err := node.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: n.Addr().String(), Account: 1, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := c.Submit(ctx, wire.NewOrder{Ref: c.NextRef(), Instrument: 1, Side: engine.Buy, Type: engine.Limit,
		TIF: engine.GTC, Price: 99, Qty: 3})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := n.Close(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n.Err(); err != nil {
		t.Fatalf("a clean close reported %v", err)
	}

	n, err = node.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(time.Second) // closing a node that never started must not hang
	if rec := n.Recovery(); rec.LastSeq != 1 {
		t.Fatalf("reopened: %+v, want seq 1", rec)
	}
	if o, ok := n.Pipeline().Engine().Order(acc.OrderID); !ok || o.Leaves != 3 {
		t.Fatalf("order %d after the restart: %+v %v", acc.OrderID, o, ok)
	}
}
