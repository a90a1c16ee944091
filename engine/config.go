package engine

import (
	"errors"
	"fmt"
)

// Instrument describes one tradable instrument. Prices and quantities are in
// ticks and lots; TickSize and LotSize are the decimal strings that say what
// a tick and a lot are worth. The engine stores them for the edges (config,
// client, reports) and never parses them.
type Instrument struct {
	ID       InstrumentID
	Symbol   string
	TickSize string // e.g. "0.01"; informational inside the engine
	LotSize  string // e.g. "1"; informational inside the engine

	// MaxQty is the largest quantity of one order, in lots.
	// Default DefaultMaxQty.
	MaxQty Qty
	// BandBps is the price band in basis points of the reference price.
	// Limit orders priced further than that from the reference price are
	// rejected, and market orders sweep no further than that. The reference
	// price is the last trade, or StartPrice before the first trade.
	// Zero disables the band (and market orders then sweep the whole side).
	BandBps int64
	// StartPrice is the reference price before the first trade, in ticks.
	// Required when BandBps is set.
	StartPrice Price
	// MaxOpenPerAccount limits the open orders one account may have on this
	// instrument. Default DefaultMaxOpenPerAccount.
	MaxOpenPerAccount int32

	// VolatilityBps is the volatility band in basis points: in continuous
	// trading, a trade that would print further than that from the last
	// trade price as it was when the incoming order began to match starts
	// a volatility interruption (PhaseVolatility) instead. Zero disables.
	VolatilityBps int64
	// VolatilityAuction is how long a volatility interruption lasts, in
	// nanoseconds of the engine's time. Default DefaultVolatilityAuction.
	VolatilityAuction int64

	// The daily schedule, in nanoseconds after midnight UTC (0: none; 1
	// means midnight). At AuctionAt the instrument enters PhaseAuction, at
	// OpenAt it uncrosses and trades continuously, at CloseAt it closes.
	// Each applies at the first command (or CmdClock) at or after it. An
	// instrument with a schedule starts in PhaseClosed.
	AuctionAt, OpenAt, CloseAt int64
}

// scheduled reports whether in has a daily schedule.
func (in *Instrument) scheduled() bool { return in.AuctionAt != 0 || in.OpenAt != 0 || in.CloseAt != 0 }

// Defaults applied by Config.EnsureDefaults.
const (
	DefaultMaxQty            Qty   = 1_000_000_000
	DefaultMaxOpenPerAccount int32 = 100_000
	DefaultVolatilityAuction int64 = 5_000_000_000 // 5 s
)

// dayNanos is the length of a day in nanoseconds.
const dayNanos = 24 * 60 * 60 * 1_000_000_000

// AccountDefaults configures one account. Accounts not listed use
// Config.DefaultSTP.
type AccountDefaults struct {
	ID  AccountID
	STP STPMode // the mode used by orders that say STPDefault
	// Operator accounts may change trading phases (CmdPhase).
	Operator bool
}

// Config configures an Engine.
type Config struct {
	Instruments []Instrument
	Accounts    []AccountDefaults
	// DefaultSTP is the self-trade prevention mode of accounts not listed
	// in Accounts. Default STPCancelResting.
	DefaultSTP STPMode
	// ReserveOrders preallocates room for this many open orders (order
	// slabs, price levels and the order index), so a book that stays below
	// it never allocates while trading. Default 0: grow on demand.
	ReserveOrders int
}

// EnsureDefaults fills in zero fields with their documented defaults.
func (c *Config) EnsureDefaults() {
	if c.DefaultSTP == STPDefault {
		c.DefaultSTP = STPCancelResting
	}
	for i := range c.Instruments {
		in := &c.Instruments[i]
		if in.MaxQty == 0 {
			in.MaxQty = DefaultMaxQty
		}
		if in.MaxOpenPerAccount == 0 {
			in.MaxOpenPerAccount = DefaultMaxOpenPerAccount
		}
		if in.VolatilityBps != 0 && in.VolatilityAuction == 0 {
			in.VolatilityAuction = DefaultVolatilityAuction
		}
	}
	for i := range c.Accounts {
		if c.Accounts[i].STP == STPDefault {
			c.Accounts[i].STP = c.DefaultSTP
		}
	}
}

// Validate reports every problem in the configuration at once, or nil.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("engine: config: "+format, args...))
	}
	if len(c.Instruments) == 0 {
		bad("no instruments")
	}
	if !validSTP(c.DefaultSTP) || c.DefaultSTP == STPDefault {
		bad("default_stp %d is not a self-trade prevention mode", c.DefaultSTP)
	}
	ids := map[InstrumentID]bool{}
	syms := map[string]bool{}
	for i, in := range c.Instruments {
		where := fmt.Sprintf("instruments[%d] (%q)", i, in.Symbol)
		if in.ID == 0 || in.ID > MaxInstrumentID {
			bad("%s: id %d not in 1..%d", where, in.ID, MaxInstrumentID)
		}
		if ids[in.ID] {
			bad("%s: duplicate id %d", where, in.ID)
		}
		ids[in.ID] = true
		if in.Symbol == "" {
			bad("%s: empty symbol", where)
		} else if syms[in.Symbol] {
			bad("%s: duplicate symbol", where)
		}
		syms[in.Symbol] = true
		if in.MaxQty <= 0 {
			bad("%s: max quantity %d must be positive", where, in.MaxQty)
		}
		if in.BandBps < 0 || in.BandBps >= 10_000 {
			bad("%s: band %d bps not in 0..9999", where, in.BandBps)
		}
		if in.StartPrice < 0 || in.StartPrice > MaxPrice {
			bad("%s: start price %d not in 0..%d", where, in.StartPrice, MaxPrice)
		}
		if in.BandBps > 0 && in.StartPrice == 0 {
			bad("%s: a price band needs a start price", where)
		}
		if in.MaxOpenPerAccount <= 0 {
			bad("%s: max open orders per account %d must be positive", where, in.MaxOpenPerAccount)
		}
		if in.VolatilityBps < 0 || in.VolatilityBps >= 10_000 {
			bad("%s: volatility band %d bps not in 0..9999", where, in.VolatilityBps)
		}
		if in.VolatilityAuction < 0 {
			bad("%s: volatility auction %d ns must not be negative", where, in.VolatilityAuction)
		}
		for _, t := range []int64{in.AuctionAt, in.OpenAt, in.CloseAt} {
			if t < 0 || t >= dayNanos {
				bad("%s: schedule time %d ns not within a day", where, t)
			}
		}
		if in.scheduled() && (in.OpenAt == 0 || in.CloseAt == 0) {
			bad("%s: a schedule needs an open and a close time", where)
		}
		if in.AuctionAt != 0 && (in.AuctionAt == in.OpenAt || in.AuctionAt == in.CloseAt) || in.OpenAt != 0 && in.OpenAt == in.CloseAt {
			bad("%s: two schedule transitions at one time", where)
		}
	}
	if c.ReserveOrders < 0 || c.ReserveOrders > 1<<30 {
		bad("reserve_orders %d not in 0..%d", c.ReserveOrders, 1<<30)
	}
	accts := map[AccountID]bool{}
	for i, a := range c.Accounts {
		if accts[a.ID] {
			bad("accounts[%d]: duplicate id %d", i, a.ID)
		}
		accts[a.ID] = true
		if !validSTP(a.STP) || a.STP == STPDefault {
			bad("accounts[%d]: stp %d is not a self-trade prevention mode", i, a.STP)
		}
	}
	return errors.Join(errs...)
}

func validSTP(m STPMode) bool { return m <= STPCancelBoth }

// DiffInstruments lists how the instruments of want differ from those of
// have (both after EnsureDefaults), one line per difference, in a stable
// order; nil if they agree.
func DiffInstruments(have, want []Instrument) []string {
	var out []string
	byID := make(map[InstrumentID]Instrument, len(have))
	for _, in := range have {
		byID[in.ID] = in
	}
	seen := make(map[InstrumentID]bool, len(want))
	for _, w := range want {
		seen[w.ID] = true
		h, ok := byID[w.ID]
		if !ok {
			out = append(out, fmt.Sprintf("instrument %d (%s) is in the config but not in the data", w.ID, w.Symbol))
			continue
		}
		if h != w {
			out = append(out, fmt.Sprintf("instrument %d: data has %+v, config has %+v", w.ID, h, w))
		}
	}
	for _, h := range have {
		if !seen[h.ID] {
			out = append(out, fmt.Sprintf("instrument %d (%s) is in the data but not in the config", h.ID, h.Symbol))
		}
	}
	return out
}
