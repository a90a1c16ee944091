// Package units converts between the human decimal prices and quantities of
// the edges (configuration, CLI, JSON, reports) and the integer ticks and
// lots the engine works in. It is the only place the two meet; the engine
// never sees a decimal.
package units

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/shopspring/decimal"
)

// Errors returned (wrapped) by the conversions.
var (
	ErrOffGrid  = errors.New("units: not a whole number of ticks or lots")
	ErrRange    = errors.New("units: out of range")
	ErrBadScale = errors.New("units: tick and lot sizes must be positive decimals")
)

// Scale is an instrument's tick size and lot size.
type Scale struct {
	Tick decimal.Decimal
	Lot  decimal.Decimal
	// For formatting without decimal arithmetic (set by NewScale).
	tick, lot unit
}

// unit is a tick or lot size as an integer m with k decimal places (0.01:
// m 1, k 2; 0.5: m 5, k 1; 25: m 25, k 0), so that n units print as
// n × m with k decimals. ok is false when m does not fit an int64.
type unit struct {
	m  uint64
	k  int32
	ok bool
}

func unitOf(d decimal.Decimal) unit {
	k := places(d)
	c := d.Coefficient()
	if !c.IsInt64() || c.Sign() <= 0 || k > 40 { // more places than an int64 has digits: decimal's own formatting
		return unit{}
	}
	m := uint64(c.Int64())
	for e := d.Exponent() + k; e > 0; e-- { // a size such as 1e2 held as 1 × 10^2
		if m > math.MaxInt64/10 {
			return unit{}
		}
		m *= 10
	}
	return unit{m: m, k: k, ok: true}
}

// appendUnits appends n units of u as a decimal with u's places, exactly
// as decimal's StringFixed would (d is the size, for the slow path).
func appendUnits(dst []byte, n int64, u unit, d decimal.Decimal) []byte {
	if u.ok {
		abs := uint64(n)
		if n < 0 {
			abs = uint64(-n)
		}
		hi, v := bits.Mul64(abs, u.m)
		if hi == 0 && v <= math.MaxInt64 {
			if n < 0 && v != 0 {
				dst = append(dst, '-')
			}
			k := int(u.k)
			var tmp [64]byte
			i := len(tmp)
			for v > 0 || i > len(tmp)-k-1 { // at least one digit before the point
				i--
				tmp[i] = byte('0' + v%10)
				v /= 10
			}
			digits := tmp[i:]
			dst = append(dst, digits[:len(digits)-k]...)
			if k > 0 {
				dst = append(dst, '.')
				dst = append(dst, digits[len(digits)-k:]...)
			}
			return dst
		}
	}
	return append(dst, decimal.NewFromInt(n).Mul(d).StringFixed(places(d))...)
}

// NewScale parses decimal tick and lot sizes such as "0.01" and "1".
func NewScale(tick, lot string) (Scale, error) {
	t, err := decimal.NewFromString(tick)
	if err != nil || !t.IsPositive() {
		return Scale{}, fmt.Errorf("%w: tick %q", ErrBadScale, tick)
	}
	l, err := decimal.NewFromString(lot)
	if err != nil || !l.IsPositive() {
		return Scale{}, fmt.Errorf("%w: lot %q", ErrBadScale, lot)
	}
	return Scale{Tick: t, Lot: l, tick: unitOf(t), lot: unitOf(l)}, nil
}

// ScaleOf returns the scale of an engine instrument.
func ScaleOf(in engine.Instrument) (Scale, error) { return NewScale(in.TickSize, in.LotSize) }

func whole(d, unit decimal.Decimal, what string, limit int64) (int64, error) {
	n := d.Div(unit)
	if !n.Equal(n.Truncate(0)) || !d.Equal(n.Mul(unit)) {
		return 0, fmt.Errorf("%w: %s %s is not a multiple of %s", ErrOffGrid, what, d, unit)
	}
	if n.Sign() < 0 {
		return 0, fmt.Errorf("%w: %s %s is negative", ErrRange, what, d)
	}
	if n.GreaterThan(decimal.NewFromInt(limit)) {
		return 0, fmt.Errorf("%w: %s %s is above the largest, %s", ErrRange, what, d, decimal.NewFromInt(limit).Mul(unit))
	}
	return n.IntPart(), nil
}

// Price converts a decimal price to ticks. It fails if the price is off the
// tick grid, negative or above engine.MaxPrice ticks. Zero is allowed (the
// engine rejects it for limit orders).
func (s Scale) Price(d decimal.Decimal) (engine.Price, error) {
	n, err := whole(d, s.Tick, "price", int64(engine.MaxPrice))
	return engine.Price(n), err
}

// Qty converts a decimal quantity to lots. It fails if it is off the lot
// grid or negative.
func (s Scale) Qty(d decimal.Decimal) (engine.Qty, error) {
	n, err := whole(d, s.Lot, "quantity", 1<<62)
	return engine.Qty(n), err
}

// ParsePrice parses a decimal string and converts it to ticks.
func (s Scale) ParsePrice(str string) (engine.Price, error) {
	d, err := decimal.NewFromString(str)
	if err != nil {
		return 0, fmt.Errorf("units: price %q is not a decimal number", str)
	}
	return s.Price(d)
}

// ParseQty parses a decimal string and converts it to lots.
func (s Scale) ParseQty(str string) (engine.Qty, error) {
	d, err := decimal.NewFromString(str)
	if err != nil {
		return 0, fmt.Errorf("units: quantity %q is not a decimal number", str)
	}
	return s.Qty(d)
}

// PriceDecimal converts ticks to a decimal price.
func (s Scale) PriceDecimal(p engine.Price) decimal.Decimal {
	return decimal.NewFromInt(int64(p)).Mul(s.Tick)
}

// QtyDecimal converts lots to a decimal quantity.
func (s Scale) QtyDecimal(q engine.Qty) decimal.Decimal {
	return decimal.NewFromInt(int64(q)).Mul(s.Lot)
}

// FormatPrice formats ticks as a decimal string with the tick's number of
// decimal places, e.g. 10000 ticks of 0.01 is "100.00".
func (s Scale) FormatPrice(p engine.Price) string {
	var b [32]byte
	return string(s.AppendPrice(b[:0], p))
}

// FormatQty formats lots as a decimal string with the lot's number of
// decimal places.
func (s Scale) FormatQty(q engine.Qty) string {
	var b [32]byte
	return string(s.AppendQty(b[:0], q))
}

// AppendPrice appends FormatPrice(p) to dst (without allocating, for
// sizes whose digits fit an int64).
func (s Scale) AppendPrice(dst []byte, p engine.Price) []byte {
	if !s.tick.ok && s.tick.m == 0 && s.tick.k == 0 {
		s.tick = unitOf(s.Tick) // a Scale made without NewScale
	}
	return appendUnits(dst, int64(p), s.tick, s.Tick)
}

// AppendQty appends FormatQty(q) to dst.
func (s Scale) AppendQty(dst []byte, q engine.Qty) []byte {
	if !s.lot.ok && s.lot.m == 0 && s.lot.k == 0 {
		s.lot = unitOf(s.Lot)
	}
	return appendUnits(dst, int64(q), s.lot, s.Lot)
}

func places(d decimal.Decimal) int32 { return max(0, -d.Exponent()) }

// InstrumentConfig is an instrument as people write it: prices and sizes in
// decimals.
type InstrumentConfig struct {
	ID                uint32 `json:"id"`
	Symbol            string `json:"symbol"`
	TickSize          string `json:"tick_size"`             // e.g. "0.01"
	LotSize           string `json:"lot_size"`              // e.g. "1" or "0.0001"
	StartPrice        string `json:"start_price,omitempty"` // decimal; reference price before the first trade
	MaxQty            string `json:"max_qty,omitempty"`     // decimal; default engine.DefaultMaxQty lots
	BandBps           int64  `json:"band_bps,omitempty"`    // price band in basis points; 0 disables
	MaxOpenPerAccount int32  `json:"max_open_per_account,omitempty"`
	// VolatilityBps is the volatility interruption band (0 disables);
	// VolatilityAuction how long an interruption lasts, a Go duration
	// ("5s", the default).
	VolatilityBps     int64  `json:"volatility_bps,omitempty"`
	VolatilityAuction string `json:"volatility_auction,omitempty"`
	// The daily schedule, times of day in UTC ("08:00", "09:30:00"): the
	// opening call auction, the open (uncross), the close. Open and close
	// go together; the auction is optional.
	AuctionAt string `json:"auction_at,omitempty"`
	OpenAt    string `json:"open_at,omitempty"`
	CloseAt   string `json:"close_at,omitempty"`
}

// timeOfDay parses "HH:MM" or "HH:MM:SS" as nanoseconds after midnight
// (midnight itself as 1 ns: 0 means none to the engine).
func timeOfDay(s string) (int64, error) {
	t, err := time.Parse("15:04:05", s)
	if err != nil {
		t, err = time.Parse("15:04", s)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day (HH:MM or HH:MM:SS)", s)
	}
	ns := int64(t.Hour())*int64(time.Hour) + int64(t.Minute())*int64(time.Minute) + int64(t.Second())*int64(time.Second)
	return max(ns, 1), nil
}

// Engine converts the instrument to the engine's units, reporting every
// problem at once.
func (c InstrumentConfig) Engine() (engine.Instrument, error) {
	in := engine.Instrument{
		ID: engine.InstrumentID(c.ID), Symbol: c.Symbol, TickSize: c.TickSize, LotSize: c.LotSize,
		BandBps: c.BandBps, MaxOpenPerAccount: c.MaxOpenPerAccount,
	}
	s, err := NewScale(c.TickSize, c.LotSize)
	if err != nil {
		return in, fmt.Errorf("instrument %q: %w", c.Symbol, err)
	}
	var errs []error
	if c.StartPrice != "" {
		p, err := s.ParsePrice(c.StartPrice)
		if err != nil {
			errs = append(errs, fmt.Errorf("instrument %q: start_price: %w", c.Symbol, err))
		}
		in.StartPrice = p
	}
	if c.MaxQty != "" {
		q, err := s.ParseQty(c.MaxQty)
		if err != nil {
			errs = append(errs, fmt.Errorf("instrument %q: max_qty: %w", c.Symbol, err))
		}
		if err == nil && q <= 0 {
			errs = append(errs, fmt.Errorf("instrument %q: max_qty %q must be positive (leave it out for the default)", c.Symbol, c.MaxQty))
		}
		in.MaxQty = q
	}
	in.VolatilityBps = c.VolatilityBps
	if c.VolatilityAuction != "" {
		d, err := time.ParseDuration(c.VolatilityAuction)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("instrument %q: volatility_auction %q is not a positive duration", c.Symbol, c.VolatilityAuction))
		}
		in.VolatilityAuction = int64(d)
	}
	for _, f := range []struct {
		name, v string
		to      *int64
	}{{"auction_at", c.AuctionAt, &in.AuctionAt}, {"open_at", c.OpenAt, &in.OpenAt}, {"close_at", c.CloseAt, &in.CloseAt}} {
		if f.v == "" {
			continue
		}
		ns, err := timeOfDay(f.v)
		if err != nil {
			errs = append(errs, fmt.Errorf("instrument %q: %s: %w", c.Symbol, f.name, err))
		}
		*f.to = ns
	}
	if c.MaxOpenPerAccount < 0 {
		errs = append(errs, fmt.Errorf("instrument %q: max_open_per_account %d must be positive (leave it out for the default)",
			c.Symbol, c.MaxOpenPerAccount))
	}
	return in, errors.Join(errs...)
}
