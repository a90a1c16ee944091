package web

import (
	"encoding/json"
	"strconv"
	"time"

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

// Updates are appended by hand (no reflection); the shapes are those of
// docs/HTTP.md, and TestHandEncodedJSON checks them against encoding/json.

// appendUpdate appends one take's update of an instrument for a
// subscriber of the channels in mask (under Hub.mu).
func appendUpdate(b []byte, st *inst, mask uint8) []byte {
	c := &st.cyc
	b = append(b, `{"type":"update","symbol":`...)
	b = append(b, st.sym...)
	b = append(b, `,"from":`...)
	b = strconv.AppendUint(b, c.from, 10)
	b = append(b, `,"to":`...)
	b = strconv.AppendUint(b, c.to, 10)
	if mask&chanBook != 0 {
		for _, side := range []engine.Side{engine.Buy, engine.Sell} {
			if side == engine.Buy {
				b = append(b, `,"bids":[`...)
			} else {
				b = append(b, `,"asks":[`...)
			}
			n := 0
			for i := range c.levels {
				if l := &c.levels[i]; l.Side == side {
					if n > 0 {
						b = append(b, ',')
					}
					b = appendLevel(b, st, l.Price, l.Qty, l.Orders)
					n++
				}
			}
			b = append(b, ']')
		}
		if c.phase {
			b = append(b, `,"phase":`...)
			b = append(b, mustJSON(phaseName(st.phase))...)
		}
		if c.ind {
			b = append(b, `,"indicative":`...)
			b = append(b, mustJSON(st.indicative())...)
		}
	}
	if mask&chanTrades != 0 {
		b = append(b, `,"trades":[`...)
		b = append(b, c.trades...)
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendLevel appends a level as JSON.
func appendLevel(b []byte, st *inst, p engine.Price, q engine.Qty, orders int32) []byte {
	b = append(b, `{"price":"`...)
	b = st.scale.AppendPrice(b, p)
	b = append(b, `","qty":"`...)
	b = st.scale.AppendQty(b, q)
	b = append(b, `","orders":`...)
	b = strconv.AppendInt(b, int64(orders), 10)
	return append(b, '}')
}

// appendTrade appends a trade as JSON (TradeJSON's shape).
func appendTrade(b []byte, st *inst, t *trade) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, t.feedSeq, 10)
	b = append(b, `,"id":`...)
	b = strconv.AppendUint(b, uint64(t.id), 10)
	b = append(b, `,"time":"`...)
	b = time.Unix(0, t.time).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","price":"`...)
	b = st.scale.AppendPrice(b, t.price)
	b = append(b, `","qty":"`...)
	b = st.scale.AppendQty(b, t.qty)
	b = append(b, `","aggressor":"`...)
	b = append(b, aggressorName(t.aggressor)...)
	return append(b, `"}`...)
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
