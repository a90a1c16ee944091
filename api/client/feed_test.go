package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/matchd/matchd/api/apitest"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// randomFlow appends n random commands for instrument 1 around price
// 10,000 (a band of ±100 ticks, bids low and asks high, so that a side never has more levels than
// one Depth answer carries): limit orders (GTC, IOC, post-only), market
// orders, cancels and replaces of recent order ids (some another
// account's, some gone: those are rejected, which is part of the flow).
func randomFlow(r *rand.Rand, buf []byte, n int, ref *engine.ClientRef, maxOrder engine.OrderID) []byte {
	for range n {
		*ref++
		switch k := r.IntN(100); {
		case k < 70:
			tif := []engine.TimeInForce{engine.GTC, engine.GTC, engine.GTC, engine.IOC, engine.PostOnly}[r.IntN(5)]
			side, price := engine.Buy, engine.Price(9_900+r.IntN(121)) // the sides overlap by 20 ticks
			if r.IntN(2) == 0 {
				side, price = engine.Sell, 20_000-price
			}
			buf = (&wire.NewOrder{Ref: *ref, Instrument: 1, Side: side, Type: engine.Limit, TIF: tif,
				Price: price, Qty: engine.Qty(1 + r.IntN(50))}).Append(buf)
		case k < 72:
			buf = (&wire.NewOrder{Ref: *ref, Instrument: 1, Side: engine.Side(1 + r.IntN(2)), Type: engine.Market,
				TIF: engine.IOC, Qty: engine.Qty(1 + r.IntN(100))}).Append(buf)
		case k < 84:
			buf = (&wire.Cancel{OrderID: recent(r, maxOrder)}).Append(buf)
		default:
			buf = (&wire.Replace{OrderID: recent(r, maxOrder), Ref: *ref,
				Price: engine.Price(9_900 + r.IntN(201)), Qty: engine.Qty(r.IntN(60))}).Append(buf)
		}
	}
	return buf
}

// recent returns one of the last 3,000 order ids before max.
func recent(r *rand.Rand, max engine.OrderID) engine.OrderID {
	return max - engine.OrderID(r.Int64N(int64(min(max, 3000))))
}

// TestMarketDataRebuildsTheBook: two traders send 100,000 random commands;
// a subscriber from the start and one that joins half-way each rebuild the
// book from the feed, and both books equal the server's depth at the end.
// A copy of the first subscriber's stream with one message dropped is
// caught as a gap.
func TestMarketDataRebuildsTheBook(t *testing.T) {
	addr := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const total = 100_000

	// The gap detector: a Book fed the early subscriber's messages, one
	// level update dropped.
	gapBook := NewBook(1)
	var gapMu sync.Mutex
	var gapErr error
	updates := 0
	early, err := Dial(ctx, Config{Addr: addr, Account: 1, Token: "alice-demo", OnMessage: func(m *Message) {
		switch m.Type {
		case wire.TypeBookSnapshot, wire.TypeLevelUpdate, wire.TypeTrade:
		default:
			return
		}
		gapMu.Lock()
		defer gapMu.Unlock()
		if m.Type == wire.TypeLevelUpdate {
			updates++
			if updates == 1000 {
				return // lost
			}
		}
		if _, err := gapBook.Apply(m); err != nil && gapErr == nil {
			gapErr = err
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	earlyBook, err := early.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}

	var traders []*Client
	for _, a := range []struct {
		id  engine.AccountID
		tok string
	}{{1, "alice-demo"}, {2, "bob-demo"}} {
		c, err := Dial(ctx, Config{Addr: addr, Account: a.id, Token: a.tok})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		traders = append(traders, c)
	}
	check := func(name string, c *Client, b *Book) {
		t.Helper()
		// An answer on the subscriber's own connection comes after the
		// market data of every batch before it.
		bids, asks, err := c.Depth(ctx, 1, wire.MaxDepthLevels)
		if err != nil {
			t.Fatal(err)
		}
		if len(bids) >= wire.MaxDepthLevels || len(asks) >= wire.MaxDepthLevels {
			t.Fatalf("%s: the depth answer may be cut (%d, %d levels)", name, len(bids), len(asks))
		}
		if err := b.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		lb, la := b.Depth(0)
		if !slices.Equal(lb, bids) || !slices.Equal(la, asks) {
			t.Fatalf("%s subscriber's book differs from the server's depth:\nbook bids %v\nserver   %v\nbook asks %v\nserver   %v",
				name, lb, bids, la, asks)
		}
		feedSeq, seq := b.FeedSeq()
		t.Logf("%s: %d bid and %d ask levels, feed seq %d at command %d, %d trades seen", name, len(lb), len(la), feedSeq, seq, b.Trades())
	}
	r := rand.New(rand.NewPCG(1, 2))
	refs := make([]engine.ClientRef, len(traders))
	// Half the flow, then the late subscriber, then the other half. Each
	// trader sends its share in chunks and waits for a query answer after
	// each, so that the order ids cancels aim at exist.
	send := func(n int) {
		for sent := 0; sent < n; sent += 2000 {
			for i, c := range traders {
				var maxOrder engine.OrderID = 1
				if top, err := c.Top(ctx, 1); err == nil {
					maxOrder = max(1, engine.OrderID(top.Seq)) // order ids never exceed command sequence numbers
				}
				if err := c.Send(randomFlow(r, nil, 1000, &refs[i], maxOrder)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	send(total / 2)
	for _, c := range traders {
		if _, err := c.Top(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	check("early, half-way", early, earlyBook)
	late, err := Dial(ctx, Config{Addr: addr, Account: 2, Token: "bob-demo"})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	lateBook, err := late.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	send(total / 2)
	for _, c := range traders { // every command sent is now durable and delivered
		if _, err := c.Top(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}

	check("early", early, earlyBook)
	check("late", late, lateBook)
	if f, _ := earlyBook.FeedSeq(); f < total/2 {
		t.Fatalf("only %d market data messages for %d commands", f, total)
	}
	if top := earlyBook.Top(); top.BidPrice == 0 || top.AskPrice == 0 || top.BidPrice >= top.AskPrice {
		t.Fatalf("top of the rebuilt book: %+v", top)
	}
	gapMu.Lock()
	defer gapMu.Unlock()
	if !errors.Is(gapErr, ErrGap) || !errors.Is(gapBook.Err(), ErrGap) {
		t.Fatalf("dropped message not detected: %v", gapErr)
	}
	t.Log(gapErr)
}

// TestSubscribeUnknownInstrument: no such instrument, no subscription, and
// the session carries on.
func TestSubscribeUnknownInstrument(t *testing.T) {
	addr := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{Addr: addr, Account: 1, Token: "alice-demo"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Subscribe(ctx, 99); err == nil {
		t.Fatal("subscribed to instrument 99")
	}
	b, err := c.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, wire.NewOrder{Instrument: 1, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC,
		Price: 9_950, Qty: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Top(ctx, 1); err != nil { // the level update has arrived before this answer
		t.Fatal(err)
	}
	if top := b.Top(); top.BidPrice != 9_950 || top.BidQty != 3 {
		t.Fatalf("book top %+v", top)
	}
	if err := c.Unsubscribe(1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, wire.NewOrder{Instrument: 1, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC,
		Price: 9_960, Qty: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Top(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if top := b.Top(); top.BidPrice != 9_950 {
		t.Fatalf("book changed after unsubscribe: %+v", top)
	}
}

// TestSnapshotOverSeveralFrames: a book of 3,000 levels arrives as two
// BookSnapshot frames and rebuilds exactly.
func TestSnapshotOverSeveralFrames(t *testing.T) {
	srv, addr := apitest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	frames := 0
	c, err := Dial(ctx, Config{Addr: addr, Account: 1, Token: "alice-demo", OnMessage: func(m *Message) {
		if m.Type == wire.TypeBookSnapshot {
			frames++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var buf []byte
	for i := range 3000 { // BTC-USD: 1,500 bids below 50,000.00 and 1,500 asks above, one per tick
		side, price := engine.Buy, engine.Price(4_999_000+i)
		if i >= 1500 {
			side, price = engine.Sell, engine.Price(5_001_000+i)
		}
		buf = (&wire.NewOrder{Ref: engine.ClientRef(i + 1), Instrument: 2, Side: side, Type: engine.Limit,
			TIF: engine.GTC, Price: price, Qty: 1}).Append(buf)
	}
	if err := c.Send(buf); err != nil {
		t.Fatal(err)
	}
	b, err := c.Subscribe(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, err := srv.Depth(ctx, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	bids, asks := b.Depth(0)
	if len(want.Bids) != 1500 || !slices.Equal(bids, want.Bids) || !slices.Equal(asks, want.Asks) {
		t.Fatalf("rebuilt %d+%d levels, server has %d+%d", len(bids), len(asks), len(want.Bids), len(want.Asks))
	}
	if frames != 2 {
		t.Fatalf("%d snapshot frames, want 2", frames)
	}
}
