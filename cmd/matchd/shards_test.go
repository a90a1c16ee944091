package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mclient "github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// groupConfig writes the demo config with only the instruments named.
func groupConfig(t *testing.T, symbols ...string) string {
	t.Helper()
	b, err := os.ReadFile("../../configs/demo.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var keep []any
	for _, in := range cfg["instruments"].([]any) {
		for _, s := range symbols {
			if in.(map[string]any)["symbol"] == s {
				keep = append(keep, in)
			}
		}
	}
	cfg["instruments"] = keep
	out, _ := json.Marshal(cfg)
	path := filepath.Join(t.TempDir(), strings.Join(symbols, "-")+".json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestClusterTwoGroups: the venue's instruments split over two raft
// groups on the same three nodes (node i runs a replica of each), their
// leaders on different nodes (handed over if the elections put them on
// the same one). A client with the shard map (client.DialShards, read
// from the groups' instrument directories) trades both: each order goes to
// its instrument's group, a mass cancel of everything is one command per
// group. An order sent to the wrong group is rejected there; an
// instrument no group trades is refused by the client. Killing one
// group's leader leaves the other serving throughout.
func TestClusterTwoGroups(t *testing.T) {
	watchdog := time.AfterFunc(3*time.Minute, func() { panic("cluster test: no end in sight") })
	defer watchdog.Stop()
	a := newTestCluster(t, 3, "--config", groupConfig(t, "AAPL"))
	b := newTestCluster(t, 3, "--config", groupConfig(t, "BTC-USD"))
	la, lb := a.leader(10*time.Second), b.leader(10*time.Second)
	// Group B's leadership goes to a node that does not lead group A (a
	// node that is not its leader now, so that there is a transfer).
	to := (la + 1) % 3
	if to == lb {
		to = (la + 2) % 3
	}
	if out, err := matchctl(t, "cluster", "transfer", "--admin", strings.Join(b.admins, ","), "--to", fmt.Sprint(to+1)); err != nil {
		t.Fatalf("transfer group B's leadership: %v\n%s", err, out)
	}
	lb = b.leader(10 * time.Second)
	if la == lb {
		t.Fatalf("both groups lead on node %d", la+1)
	}
	t.Logf("group A (AAPL) leads on node %d, group B (BTC-USD) on node %d", la+1, lb+1)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	groups := []string{strings.Join(a.orders, ","), strings.Join(b.orders, ",")}
	dial := func(acct engine.AccountID, token, session string) *mclient.Shards {
		s, err := mclient.DialShards(ctx, mclient.Config{Account: acct, Token: token, Session: session, Reconnect: true}, groups)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alice, bob := dial(1, "alice-demo", "ALICE"), dial(2, "bob-demo", "BOB")
	defer alice.Close()
	defer bob.Close()
	const aapl, btc = engine.InstrumentID(1), engine.InstrumentID(2)
	order := func(s *mclient.Shards, inst engine.InstrumentID, side engine.Side, price engine.Price, qty engine.Qty) wire.Accepted {
		t.Helper()
		acc, err := s.Submit(ctx, wire.NewOrder{Instrument: inst, Side: side, Type: engine.Limit, TIF: engine.GTC, Price: price, Qty: qty})
		if err != nil {
			t.Fatalf("order on instrument %d: %v", inst, err)
		}
		return acc
	}
	order(alice, aapl, engine.Buy, 10_000, 10)  // 100.00, rests
	order(alice, btc, engine.Buy, 4_900_000, 3) // 49000.00, rests
	order(bob, aapl, engine.Sell, 10_000, 4)    // trades 4 with alice
	if n, err := alice.MassCancel(ctx, 0); err != nil || n != 2 {
		t.Fatalf("mass cancel across the groups: %d canceled, %v; want 2 (one order in each)", n, err)
	}
	// The wrong group rejects an instrument it does not trade; the client
	// refuses one no group trades.
	var rej *mclient.RejectError
	if _, err := alice.Groups()[1].Submit(ctx, wire.NewOrder{Ref: alice.Groups()[1].NextRef(), Instrument: aapl, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC, Price: 10_000, Qty: 1}); !errors.As(err, &rej) || rej.Reason != engine.RejectUnknownInstrument {
		t.Fatalf("AAPL sent to group B: %v, want unknown-instrument", err)
	}
	if _, err := alice.Submit(ctx, wire.NewOrder{Instrument: 3, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC, Price: 1, Qty: 1}); !errors.Is(err, mclient.ErrNoShard) {
		t.Fatalf("an instrument no group trades: %v", err)
	}

	// Group A loses its leader; group B serves throughout, group A again
	// after its failover.
	a.kill(la)
	killed := time.Now()
	bOK := 0
	for time.Since(killed) < 400*time.Millisecond {
		order(bob, btc, engine.Sell, 5_100_000, 1) // answered by group B while A elects
		bOK++
	}
	order(bob, aapl, engine.Sell, 10_100, 1) // group A, once it has a leader again (the client follows it)
	t.Logf("group B answered %d orders while group A failed over; group A served again %v after its leader was killed", bOK, time.Since(killed))
	if _, err := alice.MassCancel(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := bob.MassCancel(ctx, 0); err != nil || n != bOK+1 {
		t.Fatalf("bob's mass cancel: %d, %v; want %d", n, err, bOK+1)
	}
}
