package client

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/matchd/matchd/api/apitest"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/shopspring/decimal"
)

func TestClient(t *testing.T) {
	addr := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := Dial(ctx, Config{Addr: addr, Account: 1, Token: "wrong-token"}); !errors.Is(err, ErrLoginRejected) {
		t.Fatalf("bad token: %v", err)
	}
	var mu sync.Mutex
	var aliceFills []wire.Executed
	alice, err := Dial(ctx, Config{Addr: addr, Account: 1, Token: "alice-demo", OnMessage: func(m *Message) {
		if m.Type == wire.TypeExecuted {
			mu.Lock()
			aliceFills = append(aliceFills, m.Executed)
			mu.Unlock()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, err := Dial(ctx, Config{Addr: addr, Account: 2, Token: "bob-demo"})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	// Decimal conversion through the instrument directory.
	in, sc, err := alice.Instrument(ctx, "BTC-USD")
	if err != nil || in.ID != 2 {
		t.Fatal(in, err)
	}
	price, _ := sc.Price(decimal.RequireFromString("50000.00"))
	qty, _ := sc.Qty(decimal.RequireFromString("0.5"))
	acc, err := alice.Submit(ctx, wire.NewOrder{Instrument: in.ID, Side: engine.Sell, Type: engine.Limit,
		TIF: engine.GTC, Price: price, Qty: qty})
	if err != nil || acc.Price != 5_000_000 || acc.Qty != 5_000 {
		t.Fatalf("submit: %+v %v", acc, err)
	}
	// Bob buys some; alice hears about it through OnMessage.
	if _, err := bob.Submit(ctx, wire.NewOrder{Instrument: 2, Side: engine.Buy, Type: engine.Market,
		TIF: engine.IOC, Qty: 2_000}); err != nil {
		t.Fatal(err)
	}
	top, err := alice.Top(ctx, 2)
	if err != nil || top.AskQty != 3_000 || top.AskPrice != 5_000_000 {
		t.Fatalf("top: %+v %v", top, err)
	}
	mu.Lock()
	if len(aliceFills) != 1 || aliceFills[0].Qty != 2_000 {
		t.Fatalf("alice's fills: %+v", aliceFills)
	}
	mu.Unlock()

	// Rejects come back as *RejectError with the reason.
	var rej *RejectError
	if _, err := bob.Cancel(ctx, acc.OrderID); !errors.As(err, &rej) || rej.Reason != engine.RejectUnknownOrder {
		t.Fatalf("bob cancels alice's order: %v", err)
	}
	if _, err := alice.Submit(ctx, wire.NewOrder{Instrument: 1, Side: engine.Buy, Type: engine.Limit,
		TIF: engine.GTC, Price: 1, Qty: 1}); !errors.As(err, &rej) || rej.Reason != engine.RejectOutsidePriceBand {
		t.Fatalf("out of band: %v", err)
	}
	if _, err := alice.MassCancel(ctx, 99); !errors.As(err, &rej) || rej.Reason != engine.RejectUnknownInstrument {
		t.Fatalf("mass cancel of an unknown instrument: %v", err)
	}

	// Replace, depth, order status, open orders, cancel, mass cancel.
	res, err := alice.Replace(ctx, wire.Replace{OrderID: acc.OrderID, Price: 5_000_100})
	if err != nil || res.Type != wire.TypeReplaced || res.Replaced.Leaves != 3_000 {
		t.Fatalf("replace: %+v %v", res, err)
	}
	_, asks, err := bob.Depth(ctx, 2, 5)
	if err != nil || len(asks) != 1 || asks[0].Price != 5_000_100 {
		t.Fatalf("depth: %v %v", asks, err)
	}
	if o, ok, err := alice.Order(ctx, acc.OrderID); err != nil || !ok || o.Filled != 2_000 {
		t.Fatalf("order: %+v %v %v", o, ok, err)
	}
	if _, ok, _ := bob.Order(ctx, acc.OrderID); ok {
		t.Fatal("bob can see alice's order")
	}
	second, _ := alice.Submit(ctx, wire.NewOrder{Instrument: 1, Side: engine.Buy, Type: engine.Limit,
		TIF: engine.GTC, Price: 9_990, Qty: 10})
	if orders, err := alice.OpenOrders(ctx); err != nil || len(orders) != 2 {
		t.Fatalf("open orders: %v %v", orders, err)
	}
	if c, err := alice.Cancel(ctx, second.OrderID); err != nil || c.Qty != 10 {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	if mc, err := alice.MassCancel(ctx, 0); err != nil || mc.Count != 1 {
		t.Fatalf("mass cancel: %+v %v", mc, err)
	}
}

// TestPipelinedSubmit: many orders in flight at once, every one answered.
func TestPipelinedSubmit(t *testing.T) {
	addr := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 5000
	answered := make(chan struct{}, n)
	c, err := Dial(ctx, Config{Addr: addr, Account: 1, Token: "alice-demo", OnMessage: func(m *Message) {
		if m.Type == wire.TypeAccepted || m.Type == wire.TypeRejected {
			answered <- struct{}{}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var buf []byte
	for i := 0; i < n; i++ {
		buf = (&wire.NewOrder{Ref: c.NextRef(), Instrument: 1, Side: engine.Buy, Type: engine.Limit,
			TIF: engine.GTC, Price: engine.Price(9_500 + i%400), Qty: 1}).Append(buf)
		if len(buf) > 32<<10 {
			c.Send(buf)
			buf = buf[:0]
		}
	}
	c.Send(buf)
	for i := 0; i < n; i++ {
		select {
		case <-answered:
		case <-ctx.Done():
			t.Fatalf("%d of %d answered", i, n)
		}
	}
}
