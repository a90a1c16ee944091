// Package apitest runs a real matchd in process for tests: the same node
// (package node) that cmd/matchd starts, with its TCP server on 127.0.0.1
// and an ephemeral port, and its Pebble store on an in-memory filesystem,
// with the demo's accounts (1 alice-demo, 2 bob-demo) and instruments
// (1 AAPL, 2 BTC-USD).
package apitest

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/node"
)

// Start starts the server, stops it when the test ends, and returns its
// address.
func Start(t testing.TB) string {
	t.Helper()
	_, addr := StartServer(t)
	return addr
}

// StartServer is Start, also returning the server.
func StartServer(t testing.TB) (*api.Server, string) {
	t.Helper()
	n := StartNode(t)
	return n.Server(), n.Addr().String()
}

// StartNode starts the node and stops it when the test ends.
func StartNode(t testing.TB) *node.Node {
	t.Helper()
	return StartNodeWith(t, NodeConfig(vfs.NewCrashableMem()))
}

// NodeConfig is the configuration StartNode uses, on the filesystem fs
// (a test that restarts the node passes the same one again).
func NodeConfig(fs vfs.FS) node.Config {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	return node.Config{
		Dir: "db", FS: fs, Logger: quiet,
		Engine: engine.Config{Instruments: []engine.Instrument{
			{ID: 1, Symbol: "AAPL", TickSize: "0.01", LotSize: "1", BandBps: 1000, StartPrice: 10_000},
			{ID: 2, Symbol: "BTC-USD", TickSize: "0.01", LotSize: "0.0001", BandBps: 1000, StartPrice: 5_000_000},
		}},
		Accounts: []api.Account{{ID: 1, Name: "alice", Token: "alice-demo"}, {ID: 2, Name: "bob", Token: "bob-demo"}},
		API: api.Config{Listen: "127.0.0.1:0", Instruments: []wire.InstrumentInfo{
			{ID: 1, Symbol: "AAPL", TickSize: "0.01", LotSize: "1"},
			{ID: 2, Symbol: "BTC-USD", TickSize: "0.01", LotSize: "0.0001"}}},
	}
}

// StartNodeWith starts a node with cfg and stops it when the test ends
// (unless the test has closed it).
func StartNodeWith(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	n, err := node.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	t.Cleanup(func() {
		if err := n.Close(2 * time.Second); err != nil {
			t.Errorf("apitest: stopping the node: %v", err)
		}
	})
	return n
}
