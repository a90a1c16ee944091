package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/matchd/matchd/api/apitest"
	"github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// TestServerDepth: the in-process depth query (behind /api/book and the
// shutdown barrier) sees every command before it, with all levels or a
// few, and says when the instrument does not exist.
func TestServerDepth(t *testing.T) {
	srv, addr := apitest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: addr, Account: 1, Token: "alice-demo"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		c.Send((&wire.NewOrder{Ref: engine.ClientRef(i + 1), Instrument: 1, Side: engine.Buy, Type: engine.Limit,
			TIF: engine.GTC, Price: engine.Price(9_990 - i), Qty: 1}).Append(nil))
	}
	if _, err := c.Top(ctx, 1); err != nil { // the orders are in
		t.Fatal(err)
	}
	all, err := srv.Depth(ctx, 1, 0)
	if err != nil || !all.Found || len(all.Bids) != 5 || len(all.Asks) != 0 || all.Seq != 5 || all.Bids[0].Price != 9_990 {
		t.Fatalf("all levels: %+v %v", all, err)
	}
	two, err := srv.Depth(ctx, 1, 2)
	if err != nil || len(two.Bids) != 2 || two.Bids[1].Price != 9_989 {
		t.Fatalf("two levels: %+v %v", two, err)
	}
	if none, err := srv.Depth(ctx, 99, 0); err != nil || none.Found {
		t.Fatalf("unknown instrument: %+v %v", none, err)
	}
}
