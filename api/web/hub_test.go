package web

import (
	"testing"
	"time"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// TestRingKeepsTheNewest: at most keep held, the newest keep always
// there, oldest first.
func TestRingKeepsTheNewest(t *testing.T) {
	r := ring[int]{keep: 3}
	for i := 1; i <= 100; i++ {
		r.add(i)
		if len(r.buf) > r.keep || *r.newest() != i {
			t.Fatalf("holds %d, newest %d", len(r.buf), *r.newest())
		}
		got := r.last(10)
		if want := min(i, 3); len(got) != want || got[len(got)-1] != i || got[0] != i-want+1 {
			t.Fatalf("after %d: %v", i, got)
		}
	}
}

// TestCandlesBucketTrades: a trade goes into its interval's candle; an
// interval without trades has none.
func TestCandlesBucketTrades(t *testing.T) {
	s := series{step: int64(time.Second), ring: ring[candle]{keep: 10}}
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixNano()
	for _, tr := range []trade{
		{time: base + 100, price: 100, qty: 5},
		{time: base + 900_000_000, price: 103, qty: 1},
		{time: base + 999_999_999, price: 99, qty: 2},
		{time: base + 3_000_000_000, price: 101, qty: 7},
	} {
		s.add(&tr)
	}
	want := []candle{
		{start: base, open: 100, high: 103, low: 99, close: 99, volume: 8, trades: 3},
		{start: base + 3_000_000_000, open: 101, high: 101, low: 101, close: 101, volume: 7, trades: 1},
	}
	got := s.last(10)
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("candle %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestHandEncodedJSON: the hand-appended update is what encoding/json
// makes of the documented shape (a level changed twice in a take appears
// once, as it ended), and appending it allocates nothing.
func TestHandEncodedJSON(t *testing.T) {
	h, err := New(Config{Instruments: []engine.Instrument{{ID: 1, Symbol: `A"B`, TickSize: "0.01", LotSize: "0.0001"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := h.insts[0]
	tr := trade{feedSeq: 12, id: 3, time: 1_764_615_701_150_575_535, price: 10060, qty: 20000, aggressor: engine.Buy}
	st.cyc = cycle{from: 11, to: 13}
	st.cyc.level(&wire.LevelUpdate{Side: engine.Sell, Price: 10060, Qty: 9000, Orders: 3})
	st.cyc.level(&wire.LevelUpdate{Side: engine.Buy, Price: 10010, Qty: 1, Orders: 1})
	st.cyc.level(&wire.LevelUpdate{Side: engine.Sell, Price: 10060, Qty: 5000, Orders: 2})
	st.cyc.trades = appendTrade(nil, st, &tr)
	want := mustJSON(struct {
		Type   string      `json:"type"`
		Symbol string      `json:"symbol"`
		From   uint64      `json:"from"`
		To     uint64      `json:"to"`
		Bids   []LevelJSON `json:"bids"`
		Asks   []LevelJSON `json:"asks"`
		Trades []TradeJSON `json:"trades"`
	}{"update", `A"B`, 11, 13, []LevelJSON{{"100.10", "0.0001", 1}}, []LevelJSON{{"100.60", "0.5000", 2}}, []TradeJSON{st.tradeJSON(&tr)}})
	if got := appendUpdate(nil, st, chanBook|chanTrades); string(got) != string(want) {
		t.Errorf("update:\n got %s\nwant %s", got, want)
	}
	if got := string(appendUpdate(nil, st, chanTrades)); got != `{"type":"update","symbol":"A\"B","from":11,"to":13,"trades":[`+string(st.cyc.trades)+`]}` {
		t.Errorf("trades only: %s", got)
	}
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = appendUpdate(buf[:0], st, chanBook|chanTrades) }); n != 0 {
		t.Errorf("appending allocates %v times", n)
	}
}
