package engine

import (
	"reflect"
	"testing"
)

// TestNewOrderSetsEveryField: newOrder sets an order's fields one by one
// on a slot the store hands back as its last use left it. Every field is
// given junk first; the new order must come out as if made from zero. If
// order gains a field, the count below fails until both newOrder and this
// test set it.
func TestNewOrderSetsEveryField(t *testing.T) {
	if n := reflect.TypeFor[order]().NumField(); n != 20 {
		t.Fatalf("order has %d fields, this test junks 20: set the new one in newOrder and here", n)
	}
	e, err := New(Config{Instruments: []Instrument{{ID: 1, Symbol: "X", TickSize: "1", LotSize: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := &e.orders
	if len(s.free) == 0 {
		s.grow(1)
	}
	o := s.at(s.free[len(s.free)-1])
	handle := o.handle
	junkLevel, junkOrder := &level{}, &order{}
	o.id, o.ref, o.price, o.qty, o.filled, o.time = 99, 98, 97, 96, 95, 94
	o.level, o.prev, o.next, o.aprev, o.anext = junkLevel, junkOrder, junkOrder, junkOrder, junkOrder
	o.acct, o.sess, o.bookIdx, o.ext = 93, 92, 91, 90
	o.side, o.typ, o.tif, o.stp = Sell, Market, FOK, STPCancelBoth

	c := Command{Seq: 1, Time: 7, Kind: CmdNewOrder, Account: 1, Session: 1, Instrument: 1, Side: Buy,
		Type: Limit, TIF: GTC, Price: 50, Qty: 3, Ref: 1}
	e.Apply(&c, nil)
	got := s.get(1)
	if got != o {
		t.Fatalf("the new order is not in the slot handed out")
	}
	l := e.books[0].bids.best
	want := order{id: 1, ref: 1, price: 50, qty: 3, time: 7, level: l, acct: e.ca.idx, sess: e.cs,
		handle: handle, bookIdx: 0, side: Buy, typ: Limit, tif: GTC, stp: e.ca.stp}
	if *got != want {
		t.Fatalf("new order\n got  %+v\n want %+v", *got, want)
	}
}
