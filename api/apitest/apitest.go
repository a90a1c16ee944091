// Package apitest runs a real matchd server in process for tests: the TCP
// server, the pipeline and a Pebble store on an in-memory filesystem, with
// the demo's accounts (1 alice-demo, 2 bob-demo) and instruments (1 AAPL,
// 2 BTC-USD).
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
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
)

// Start starts the server on 127.0.0.1 and an ephemeral port, stops it when
// the test ends, and returns its address.
func Start(t testing.TB) string {
	t.Helper()
	_, addr := StartServer(t)
	return addr
}

// StartServer is Start, also returning the server.
func StartServer(t testing.TB) (*api.Server, string) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := engine.Config{Instruments: []engine.Instrument{
		{ID: 1, Symbol: "AAPL", TickSize: "0.01", LotSize: "1", BandBps: 1000, StartPrice: 10_000},
		{ID: 2, Symbol: "BTC-USD", TickSize: "0.01", LotSize: "0.0001", BandBps: 1000, StartPrice: 5_000_000},
	}}
	store, err := persist.Open("db", cfg, persist.Options{FS: vfs.NewCrashableMem(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := store.Recover()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.NewServer(api.Config{Listen: "127.0.0.1:0", Logger: quiet, Instruments: []wire.InstrumentInfo{
		{ID: 1, Symbol: "AAPL", TickSize: "0.01", LotSize: "1"},
		{ID: 2, Symbol: "BTC-USD", TickSize: "0.01", LotSize: "0.0001"}}},
		[]api.Account{{ID: 1, Name: "alice", Token: "alice-demo"}, {ID: 2, Name: "bob", Token: "bob-demo"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(e, store, srv.Deliver, pipeline.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Attach(p)
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	go srv.Serve()
	t.Cleanup(func() {
		srv.Shutdown(2 * time.Second)
		p.Close()
		store.Close()
	})
	return srv, addr.String()
}
