package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/matchd/matchd/api/apitest"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// A shard map must be a partition: two groups that trade the same
// instrument are refused at Dial, as is a session name with no room for
// the group's digit. (cmd/matchd's TestClusterTwoGroups trades through a
// real one.)
func TestShardsRefused(t *testing.T) {
	a, b := apitest.Start(t), apitest.Start(t) // both trade the demo instruments
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := Config{Account: 1, Token: "alice-demo"}
	if _, err := DialShards(ctx, cfg, []string{a, b}); err == nil || !strings.Contains(err.Error(), "traded by groups 0 and 1") {
		t.Fatalf("overlapping groups: %v", err)
	}
	cfg.Session = "TOOLONG1"
	if _, err := DialShards(ctx, cfg, []string{a}); err == nil || !strings.Contains(err.Error(), "at most 7") {
		t.Fatalf("a session name of 8: %v", err)
	}
	if _, err := DialShards(ctx, Config{Account: 1, Token: "alice-demo"}, nil); err == nil {
		t.Fatal("no groups: no error")
	}
	// One group is a plain client with a router in front.
	s, err := DialShards(ctx, Config{Account: 1, Token: "alice-demo", Session: "SHARD"}, []string{a})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Groups()[0].SessionName(); got != "SHARD0" {
		t.Fatalf("the group's session is %q, want SHARD0", got)
	}
	acc, err := s.Submit(ctx, wire.NewOrder{Instrument: 1, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC, Price: 9_000, Qty: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, 1, acc.OrderID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, 7, acc.OrderID); !errors.Is(err, ErrNoShard) {
		t.Fatalf("a cancel on an instrument no group trades: %v", err)
	}
}
