package units

import (
	"errors"
	"math"
	"testing"

	"github.com/matchd/matchd/engine"
	"github.com/shopspring/decimal"
)

func TestConversions(t *testing.T) {
	aapl, err := NewScale("0.01", "1")
	if err != nil {
		t.Fatal(err)
	}
	btc, err := NewScale("0.01", "0.0001")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s       Scale
		price   string
		ticks   engine.Price
		wantErr error
	}{
		{aapl, "100.00", 10000, nil},
		{aapl, "100", 10000, nil},
		{aapl, "0.01", 1, nil},
		{aapl, "0", 0, nil},
		{aapl, "100.005", 0, ErrOffGrid},
		{aapl, "-1", 0, ErrRange},
		{aapl, "99999999999999999", 0, ErrRange},
		{btc, "50000.00", 5000000, nil},
	} {
		got, err := tc.s.ParsePrice(tc.price)
		if !errors.Is(err, tc.wantErr) || (err == nil && got != tc.ticks) {
			t.Errorf("ParsePrice(%q) = %d, %v; want %d, %v", tc.price, got, err, tc.ticks, tc.wantErr)
		}
	}
	for _, tc := range []struct {
		s       Scale
		qty     string
		lots    engine.Qty
		wantErr error
	}{
		{aapl, "5", 5, nil},
		{aapl, "5.5", 0, ErrOffGrid},
		{btc, "0.0001", 1, nil},
		{btc, "1.5", 15000, nil},
		{btc, "0.00015", 0, ErrOffGrid},
	} {
		got, err := tc.s.ParseQty(tc.qty)
		if !errors.Is(err, tc.wantErr) || (err == nil && got != tc.lots) {
			t.Errorf("ParseQty(%q) = %d, %v; want %d, %v", tc.qty, got, err, tc.lots, tc.wantErr)
		}
	}
	if _, err := aapl.ParsePrice("abc"); err == nil {
		t.Error("ParsePrice accepted abc")
	}
	if got := aapl.FormatPrice(10000); got != "100.00" {
		t.Errorf("FormatPrice = %q", got)
	}
	if got := btc.FormatQty(15000); got != "1.5000" {
		t.Errorf("FormatQty = %q", got)
	}
	for _, bad := range [][2]string{{"0", "1"}, {"0.01", "-1"}, {"x", "1"}} {
		if _, err := NewScale(bad[0], bad[1]); !errors.Is(err, ErrBadScale) {
			t.Errorf("NewScale(%q, %q) = %v", bad[0], bad[1], err)
		}
	}
}

func TestInstrumentConfig(t *testing.T) {
	in, err := InstrumentConfig{ID: 2, Symbol: "BTC-USD", TickSize: "0.01", LotSize: "0.0001",
		StartPrice: "50000.00", MaxQty: "100", BandBps: 1000}.Engine()
	if err != nil {
		t.Fatal(err)
	}
	if in.StartPrice != 5_000_000 || in.MaxQty != 1_000_000 || in.BandBps != 1000 {
		t.Errorf("got %+v", in)
	}
	_, err = InstrumentConfig{ID: 2, Symbol: "X", TickSize: "0.01", LotSize: "1",
		StartPrice: "1.001", MaxQty: "1.5"}.Engine()
	if !errors.Is(err, ErrOffGrid) || len(err.(interface{ Unwrap() []error }).Unwrap()) != 2 {
		t.Errorf("want both problems reported, got %v", err)
	}
}

// FuzzParsePrice: whatever parses converts back to the same decimal value.
func FuzzParsePrice(f *testing.F) {
	for _, s := range []string{"100.00", "0.01", "1e3", "-5", "12.345", "0"} {
		f.Add(s, "0.01")
	}
	f.Add("50000", "0.5")
	f.Fuzz(func(t *testing.T, price, tick string) {
		s, err := NewScale(tick, "1")
		if err != nil {
			return
		}
		p, err := s.ParsePrice(price)
		if err != nil {
			return
		}
		d, _ := decimal.NewFromString(price)
		if !s.PriceDecimal(p).Equal(d) {
			t.Fatalf("%q at tick %q -> %d ticks -> %s", price, tick, p, s.PriceDecimal(p))
		}
	})
}

// TestFormatMatchesDecimal: the integer formatting prints exactly what
// decimal's StringFixed does, for every kind of size.
func TestFormatMatchesDecimal(t *testing.T) {
	for _, tick := range []string{"0.01", "0.5", "1", "25", "0.0001", "1e2", "0.25", "0.000000001", "123456789.123", "1e-70", "1e-41", "1e-40"} {
		s, err := NewScale(tick, tick)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int64{0, 1, -1, 7, 99, 100, 10060, -10060, 123456789, int64(engine.MaxPrice), -int64(engine.MaxPrice), math.MaxInt64 / 3} {
			want := decimal.NewFromInt(n).Mul(s.Tick).StringFixed(places(s.Tick))
			if got := s.FormatPrice(engine.Price(n)); got != want {
				t.Errorf("%d ticks of %s: %q, want %q", n, tick, got, want)
			}
			if got := s.FormatQty(engine.Qty(n)); got != want {
				t.Errorf("%d lots of %s: %q, want %q", n, tick, got, want)
			}
		}
	}
	s, _ := NewScale("0.01", "0.0001")
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = s.AppendQty(s.AppendPrice(buf[:0], 10060), 5000) }); n != 0 {
		t.Errorf("AppendPrice and AppendQty allocate %v times", n)
	}
}

// FuzzFormat: any price at any tick formats as decimal does.
func FuzzFormat(f *testing.F) {
	f.Add(int64(10060), "0.01")
	f.Add(int64(-3), "0.5")
	f.Fuzz(func(t *testing.T, n int64, tick string) {
		s, err := NewScale(tick, "1")
		if err != nil {
			return
		}
		want := decimal.NewFromInt(n).Mul(s.Tick).StringFixed(places(s.Tick))
		if got := s.FormatPrice(engine.Price(n)); got != want {
			t.Fatalf("%d ticks of %s: %q, want %q", n, tick, got, want)
		}
	})
}
