package engine

import (
	"slices"
	"testing"
)

// TestOpenOrdersPage: reading an account's open orders page by page lists
// each order that stays open exactly once, in order, even when the order
// a page ended on is canceled before the next page is read.
func TestOpenOrdersPage(t *testing.T) {
	e, err := New(Config{Instruments: []Instrument{{ID: 1, Symbol: "X", TickSize: "1", LotSize: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	var out []Event
	seq := Seq(0)
	apply := func(c Command) {
		seq++
		c.Seq = seq
		out = e.Apply(&c, out[:0])
	}
	for i := 1; i <= 2500; i++ {
		apply(Command{Kind: CmdNewOrder, Account: 1 + AccountID(i%3/2), Instrument: 1, Side: Buy, Type: Limit,
			TIF: GTC, Price: Price(1 + i%50), Qty: 1, Ref: ClientRef(i)})
	}
	all := e.OpenOrders(1, nil)
	var paged []OrderInfo
	after := OrderID(0)
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		var more bool
		start := len(paged)
		paged, more = e.OpenOrdersPage(1, after, 300, paged)
		if len(paged)-start > 300 {
			t.Fatalf("page of %d", len(paged)-start)
		}
		if !more {
			break
		}
		after = paged[len(paged)-1].ID
		if pages == 2 { // the order the page ended on goes away
			apply(Command{Kind: CmdCancel, Account: 1, OrderID: after})
			all = slices.DeleteFunc(all, func(o OrderInfo) bool { return o.ID == after })
			paged = paged[:len(paged)-1]
		}
	}
	if !slices.Equal(all, paged) {
		t.Fatalf("paged %d orders, want %d", len(paged), len(all))
	}
	if got, more := e.OpenOrdersPage(99, 0, 10, nil); len(got) != 0 || more {
		t.Fatal("unknown account has orders")
	}
}
