package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/api/apitest"
	"github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// startWithOperator starts the demo node with account 9 as an operator.
func startWithOperator(t *testing.T) string {
	cfg := apitest.NodeConfig(vfs.NewCrashableMem())
	cfg.Accounts = append(cfg.Accounts, api.Account{ID: 9, Name: "operator", Token: "operator-demo"})
	cfg.Engine.Accounts = append(cfg.Engine.Accounts, engine.AccountDefaults{ID: 9, Operator: true})
	return apitest.StartNodeWith(t, cfg).Addr().String()
}

func dialOperator(t *testing.T, addr string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: addr, Account: 9, Token: "operator-demo", Session: "OPS"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rejected(err error, want engine.RejectReason) bool {
	var re *client.RejectError
	return errors.As(err, &re) && re.Reason == want
}

// TestPhasesOverTCP: an operator halts, auctions and uncrosses an
// instrument over the protocol; a trader cannot; orders are rejected while
// halted and rest crossed in the auction; the uncross trades at one price;
// a subscriber's book counts every phase and indicative message without a
// gap.
func TestPhasesOverTCP(t *testing.T) {
	addr := startWithOperator(t)
	ctx := context.Background()
	ops := dialOperator(t, addr)
	alice := dialSession(t, addr, 1, "A", 0, nil, nil)
	bob := dialSession(t, addr, 2, "B", 0, nil, nil)
	watcher := dialSession(t, addr, 2, "W", 0, nil, nil)
	book, err := watcher.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := bob.Phase(ctx, 1, engine.ActHalt); !rejected(err, engine.RejectNotOperator) {
		t.Fatalf("a trader's halt: %v", err)
	}
	pc, err := ops.Phase(ctx, 1, engine.ActHalt)
	if err != nil || pc.Phase != engine.PhaseHalted || pc.Msg == 0 {
		t.Fatalf("halt: %+v %v", pc, err)
	}
	if _, err := alice.Submit(ctx, order(1, engine.Buy, 10_010, 5)); !rejected(err, engine.RejectHalted) {
		t.Fatalf("an order while halted: %v", err)
	}
	if _, err := ops.Phase(ctx, 1, engine.ActResume); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Phase(ctx, 1, engine.ActOpenAuction); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Submit(ctx, order(2, engine.Buy, 10_010, 5)); err != nil {
		t.Fatal(err)
	}
	// A subscriber that joins during the auction learns the phase from
	// its snapshot.
	late := dialSession(t, addr, 1, "LATE", 0, nil, nil)
	lateBook, err := late.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ph, _ := lateBook.Phase(); ph != engine.PhaseAuction {
		t.Fatalf("a snapshot during the auction says phase %s", ph)
	}
	if _, err := bob.Submit(ctx, order(1, engine.Sell, 9_990, 3)); err != nil {
		t.Fatal(err) // rests, crossed: no matching in a call auction
	}
	if pc, err := ops.Phase(ctx, 1, engine.ActUncross); err != nil || pc.Phase != engine.PhaseContinuous {
		t.Fatalf("uncross: %+v %v", pc, err)
	}
	// The uncross traded 3 at one price; the book shows the rest of
	// alice's bid.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ph, _ := book.Phase()
		bids, asks := book.Depth(0)
		if book.Err() != nil {
			t.Fatalf("the book saw a gap: %v", book.Err())
		}
		if ph == engine.PhaseContinuous && len(bids) == 1 && bids[0].Qty == 2 && len(asks) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("book: phase %s, bids %+v, asks %+v", ph, bids, asks)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fills, err := bob.Executions(ctx, 10)
	if err != nil || len(fills) != 1 || fills[0].Qty != 3 || fills[0].Price != 10_000 {
		// 10000 is the start (reference) price, between 9990 and 10010.
		t.Fatalf("bob's fills %+v %v", fills, err)
	}
}

// TestStopsAndExpiryOverTCP: a stop's trigger is a numbered message of
// its session's stream, replayed on resume like any other; a GTD order
// expires with no other traffic (the pipeline's clock command).
func TestStopsAndExpiryOverTCP(t *testing.T) {
	addr := startWithOperator(t)
	ctx := context.Background()
	var rec recorder
	alice := dialSession(t, addr, 1, "STOPS", 0, &rec, nil)
	bob := dialSession(t, addr, 2, "B", 0, nil, nil)
	stop := wire.NewOrderX{NewOrder: wire.NewOrder{Ref: 1, Instrument: 1, Side: engine.Buy, Type: engine.Stop,
		TIF: engine.IOC, Qty: 2}, StopPrice: 10_005}
	if _, err := alice.SubmitX(ctx, stop); err != nil {
		t.Fatal(err)
	}
	ice := wire.NewOrderX{NewOrder: wire.NewOrder{Ref: 1, Instrument: 1, Side: engine.Sell, Type: engine.Limit,
		TIF: engine.GTC, Price: 10_010, Qty: 10}, Display: 1}
	if _, err := bob.SubmitX(ctx, ice); err != nil {
		t.Fatal(err)
	}
	// A trade at 10010 reaches the stop: it buys 2 from the iceberg, one
	// slice at a time.
	ops := dialOperator(t, addr) // operators may trade too
	if _, err := ops.Submit(ctx, wire.NewOrder{Ref: 1, Instrument: 1, Side: engine.Buy, Type: engine.Limit,
		TIF: engine.IOC, Price: 10_010, Qty: 1}); err != nil {
		t.Fatal(err)
	}
	got := rec.waitFor(t, 4) // accepted, triggered, 2 executions
	if got[1].Type != wire.TypeTriggered || got[2].Type != wire.TypeExecuted || got[3].Type != wire.TypeExecuted {
		t.Fatalf("stream: %+v", got)
	}
	for i, m := range got {
		if msgNumber(m) != uint64(i+1) {
			t.Fatalf("message %d numbered %d", i, msgNumber(m))
		}
	}
	alice.Close()
	var rec2 recorder
	again := dialSession(t, addr, 1, "STOPS", 1, &rec2, nil)
	replayed := rec2.waitFor(t, 4)
	for i := range got {
		if replayed[i].Type != got[i].Type || msgNumber(replayed[i]) != msgNumber(got[i]) {
			t.Fatalf("replayed %d: %+v, live %+v", i, replayed[i], got[i])
		}
	}

	gtd := wire.NewOrderX{NewOrder: wire.NewOrder{Ref: 2, Instrument: 1, Side: engine.Buy, Type: engine.Limit,
		TIF: engine.GTD, Price: 9_500, Qty: 1}, Expire: time.Now().Add(200 * time.Millisecond).UnixNano()}
	if _, err := again.SubmitX(ctx, gtd); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := rec2.all()
		if m := all[len(all)-1]; m.Type == wire.TypeCanceled && m.Canceled.Reason == engine.CancelExpired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the GTD order did not expire: %+v", all[len(all)-1])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTriggerReachesTheUnnamedConnectionThatEnteredTheStop: with
// unnamed sessions, what happens to an order goes to every connection of
// the account; a stop triggered by a trade the account's other connection
// made is such a message, not that command's answer.
func TestTriggerReachesTheUnnamedConnectionThatEnteredTheStop(t *testing.T) {
	addr := startWithOperator(t)
	ctx := context.Background()
	var recY recorder
	x := dialSession(t, addr, 1, "", 0, nil, nil)
	y := dialSession(t, addr, 1, "", 0, &recY, nil)
	bob := dialSession(t, addr, 2, "B", 0, nil, nil)
	if _, err := y.SubmitX(ctx, wire.NewOrderX{NewOrder: wire.NewOrder{Instrument: 1, Side: engine.Buy, Type: engine.Stop,
		TIF: engine.IOC, Qty: 1}, StopPrice: 10_005}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Submit(ctx, order(1, engine.Sell, 10_010, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Submit(ctx, wire.NewOrder{Instrument: 1, Side: engine.Buy, Type: engine.Limit, TIF: engine.IOC,
		Price: 10_010, Qty: 1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range recY.all() {
			if m.Type == wire.TypeTriggered {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stop's connection got %+v, no Triggered", recY.all())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
