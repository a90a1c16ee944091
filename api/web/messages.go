package web

import (
	"encoding/json"
	"time"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// The JSON shapes of docs/HTTP.md. Prices and quantities are decimal
// strings; times are RFC 3339 with nanoseconds, UTC.

// LevelJSON is one price level.
type LevelJSON struct {
	Price  string `json:"price"`
	Qty    string `json:"qty"`
	Orders int32  `json:"orders"`
}

// TradeJSON is one trade.
type TradeJSON struct {
	Seq       uint64 `json:"seq"`
	ID        uint64 `json:"id"`
	Time      string `json:"time"`
	Price     string `json:"price"`
	Qty       string `json:"qty"`
	Aggressor string `json:"aggressor"` // buy, sell or none (an auction)
}

// CandleJSON is one interval's open, high, low, close and volume.
type CandleJSON struct {
	Start  string `json:"start"`
	Open   string `json:"open"`
	High   string `json:"high"`
	Low    string `json:"low"`
	Close  string `json:"close"`
	Volume string `json:"volume"`
	Trades int64  `json:"trades"`
}

// BookJSON is a book: both sides best first.
type BookJSON struct {
	Symbol string      `json:"symbol"`
	Seq    uint64      `json:"seq"`
	Phase  string      `json:"phase"`
	Bids   []LevelJSON `json:"bids"`
	Asks   []LevelJSON `json:"asks"`
}

// IndicativeJSON is a call auction's indicative uncrossing.
type IndicativeJSON struct {
	Price   string `json:"price"`
	Qty     string `json:"qty"`
	Surplus string `json:"surplus"`
	Side    string `json:"side,omitempty"`
}

func stamp(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func phaseName(p engine.Phase) string {
	if p == 0 {
		return "continuous"
	}
	return p.String()
}

func aggressorName(s engine.Side) string {
	if s == engine.Buy || s == engine.Sell {
		return s.String()
	}
	return "none"
}

func (st *inst) tradeJSON(t *trade) TradeJSON {
	return TradeJSON{Seq: t.feedSeq, ID: uint64(t.id), Time: stamp(t.time), Price: st.scale.FormatPrice(t.price),
		Qty: st.scale.FormatQty(t.qty), Aggressor: aggressorName(t.aggressor)}
}

func (st *inst) candleJSON(c *candle) CandleJSON {
	return CandleJSON{Start: stamp(c.start), Open: st.scale.FormatPrice(c.open), High: st.scale.FormatPrice(c.high),
		Low: st.scale.FormatPrice(c.low), Close: st.scale.FormatPrice(c.close), Volume: st.scale.FormatQty(c.volume), Trades: c.trades}
}

// levels returns up to n levels of a side (n <= 0: all), best first
// (under mu).
func (st *inst) levels(side engine.Side, n int) []LevelJSON {
	out := []LevelJSON{}
	it := func(p engine.Price, l level) bool {
		out = append(out, LevelJSON{st.scale.FormatPrice(p), st.scale.FormatQty(l.qty), l.orders})
		return n <= 0 || len(out) < n
	}
	if side == engine.Buy {
		st.bids.Reverse(it)
	} else {
		st.asks.Scan(it)
	}
	return out
}

func (st *inst) book(n int) BookJSON {
	return BookJSON{Symbol: st.info.Symbol, Seq: st.feedSeq, Phase: phaseName(st.phase),
		Bids: st.levels(engine.Buy, n), Asks: st.levels(engine.Sell, n)}
}

func (st *inst) indicative() *IndicativeJSON {
	if st.ind.Qty == 0 {
		return nil
	}
	ij := &IndicativeJSON{Price: st.scale.FormatPrice(st.ind.Price), Qty: st.scale.FormatQty(st.ind.Qty),
		Surplus: st.scale.FormatQty(st.ind.Surplus)}
	if st.ind.Side == engine.Buy || st.ind.Side == engine.Sell {
		ij.Side = st.ind.Side.String()
	}
	return ij
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs
	}
	return b
}

// The stream's messages.

func levelMsg(st *inst, u *wire.LevelUpdate) []byte {
	return mustJSON(struct {
		Type   string `json:"type"`
		Symbol string `json:"symbol"`
		Seq    uint64 `json:"seq"`
		Side   string `json:"side"`
		LevelJSON
	}{"level", st.info.Symbol, u.FeedSeq, u.Side.String(), LevelJSON{st.scale.FormatPrice(u.Price), st.scale.FormatQty(u.Qty), u.Orders}})
}

func tradeMsg(st *inst, t *trade) []byte {
	return mustJSON(struct {
		Type   string `json:"type"`
		Symbol string `json:"symbol"`
		TradeJSON
	}{"trade", st.info.Symbol, st.tradeJSON(t)})
}

func phaseMsg(st *inst, u *wire.PhaseUpdate) []byte {
	return mustJSON(struct {
		Type   string `json:"type"`
		Symbol string `json:"symbol"`
		Seq    uint64 `json:"seq"`
		Phase  string `json:"phase"`
		Price  string `json:"price,omitempty"`
	}{"phase", st.info.Symbol, u.FeedSeq, phaseName(u.Phase), priceOrEmpty(st, u.Price)})
}

func indicativeMsg(st *inst, u *wire.Indicative) []byte {
	return mustJSON(struct {
		Type   string `json:"type"`
		Symbol string `json:"symbol"`
		Seq    uint64 `json:"seq"`
		IndicativeJSON
	}{"indicative", st.info.Symbol, u.FeedSeq, *st.indicative()})
}

func priceOrEmpty(st *inst, p engine.Price) string {
	if p == 0 {
		return ""
	}
	return st.scale.FormatPrice(p)
}

// snapshotTrades and snapshotCandles are how much history a stream
// snapshot carries.
const (
	snapshotTrades  = 100
	snapshotCandles = 120
)

// snapshotMsg is what a subscriber gets first, and again after the hub
// starts over: the whole book, the latest trades and candles, as of feed
// number seq (under mu).
func (h *Hub) snapshotMsg(st *inst, ch uint8) []byte {
	type snap struct {
		Type       string          `json:"type"`
		Symbol     string          `json:"symbol"`
		Seq        uint64          `json:"seq"`
		Phase      string          `json:"phase"`
		Indicative *IndicativeJSON `json:"indicative,omitempty"`
		Bids       []LevelJSON     `json:"bids,omitempty"`
		Asks       []LevelJSON     `json:"asks,omitempty"`
		Trades     []TradeJSON     `json:"trades"`
		Candles1s  []CandleJSON    `json:"candles_1s"`
		Candles1m  []CandleJSON    `json:"candles_1m"`
	}
	m := snap{Type: "snapshot", Symbol: st.info.Symbol, Seq: st.feedSeq, Phase: phaseName(st.phase), Indicative: st.indicative()}
	if ch&chanBook != 0 {
		m.Bids, m.Asks = st.levels(engine.Buy, 0), st.levels(engine.Sell, 0)
	}
	m.Trades = st.recentTrades(snapshotTrades)
	m.Candles1s = st.recentCandles(0, snapshotCandles)
	m.Candles1m = st.recentCandles(1, snapshotCandles)
	return mustJSON(m)
}

// recentTrades returns up to n of the newest trades, newest first.
func (st *inst) recentTrades(n int) []TradeJSON {
	ts := st.trades.last(n)
	out := make([]TradeJSON, 0, len(ts))
	for i := len(ts) - 1; i >= 0; i-- {
		out = append(out, st.tradeJSON(&ts[i]))
	}
	return out
}

// recentCandles returns up to n of the newest candles of an interval,
// oldest first.
func (st *inst) recentCandles(k, n int) []CandleJSON {
	cs := st.candles[k].last(n)
	out := make([]CandleJSON, 0, len(cs))
	for i := range cs {
		out = append(out, st.candleJSON(&cs[i]))
	}
	return out
}
