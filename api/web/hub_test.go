package web

import (
	"testing"
	"time"
)

// TestRingKeepsTheNewest: at most 2 × keep held, the newest keep always
// there, oldest first.
func TestRingKeepsTheNewest(t *testing.T) {
	r := ring[int]{keep: 3}
	for i := 1; i <= 100; i++ {
		r.add(i)
		if len(r.buf) > 2*r.keep {
			t.Fatalf("holds %d", len(r.buf))
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
