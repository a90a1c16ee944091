package web

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/shopspring/decimal"
)

var decimalTwo = decimal.NewFromInt(2)

//go:embed static
var static embed.FS

// Handler serves the web view, the REST endpoints and the stream
// (docs/HTTP.md).
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	page := func(w http.ResponseWriter, r *http.Request) {
		b, _ := fs.ReadFile(sub, "index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
	}
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /i/{symbol}", page)
	mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	mux.HandleFunc("GET /api/v1/instruments", h.instruments)
	mux.HandleFunc("GET /api/v1/book/{symbol}", h.withInst(h.book))
	mux.HandleFunc("GET /api/v1/trades/{symbol}", h.withInst(h.tradesHandler))
	mux.HandleFunc("GET /api/v1/ticker/{symbol}", h.withInst(h.ticker))
	mux.HandleFunc("GET /api/v1/candles/{symbol}", h.withInst(h.candlesHandler))
	mux.HandleFunc("GET /api/v1/server", h.panel)
	mux.HandleFunc("GET /api/v1/stream", h.serveStream)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not-found", "no endpoint "+r.Method+" "+r.URL.Path+" (docs/HTTP.md lists them)")
	})
	return mux
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

// ErrorJSON is every error's answer.
type ErrorJSON struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, code int, reason, message string) {
	writeJSON(w, code, map[string]ErrorJSON{"error": {reason, message}})
}

// withInst finds the path's instrument, answering 404 if there is none,
// and calls f under the read lock.
func (h *Hub) withInst(f func(http.ResponseWriter, *http.Request, *inst)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sym := r.PathValue("symbol")
		st := h.bySymbol[sym]
		if st == nil {
			writeError(w, http.StatusNotFound, "unknown-instrument", "no instrument "+quote(sym))
			return
		}
		h.mu.RLock()
		defer h.mu.RUnlock()
		if !st.synced {
			writeError(w, http.StatusServiceUnavailable, "starting", "the market data of "+quote(sym)+" is still loading")
			return
		}
		f(w, r, st)
	}
}

// intParam reads a whole-number query parameter from lo to hi.
func intParam(w http.ResponseWriter, r *http.Request, name string, def, lo, hi int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		writeError(w, http.StatusBadRequest, "bad-parameter", name+" must be a whole number from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi))
		return 0, false
	}
	return n, true
}

// PriceQty is a price with the quantity there.
type PriceQty struct {
	Price string `json:"price"`
	Qty   string `json:"qty"`
}

// InstrumentJSON is one instrument and its top of book.
type InstrumentJSON struct {
	Symbol   string     `json:"symbol"`
	ID       uint32     `json:"id"`
	TickSize string     `json:"tick_size"`
	LotSize  string     `json:"lot_size"`
	Phase    string     `json:"phase"`
	BestBid  *PriceQty  `json:"best_bid"`
	BestAsk  *PriceQty  `json:"best_ask"`
	Last     *TradeJSON `json:"last"`
}

func (st *inst) best(side engine.Side) *PriceQty {
	var p engine.Price
	var l level
	var ok bool
	if side == engine.Buy {
		p, l, ok = st.bids.Max()
	} else {
		p, l, ok = st.asks.Min()
	}
	if !ok {
		return nil
	}
	return &PriceQty{st.scale.FormatPrice(p), st.scale.FormatQty(l.qty)}
}

func (st *inst) last() *TradeJSON {
	if st.trades.len() == 0 {
		return nil
	}
	t := st.tradeJSON(st.trades.newest())
	return &t
}

func (h *Hub) instruments(w http.ResponseWriter, r *http.Request) {
	h.mu.RLock()
	out := make([]InstrumentJSON, 0, len(h.insts))
	for _, st := range h.insts {
		out = append(out, InstrumentJSON{Symbol: st.info.Symbol, ID: uint32(st.info.ID), TickSize: st.info.TickSize,
			LotSize: st.info.LotSize, Phase: phaseName(st.phase), BestBid: st.best(engine.Buy), BestAsk: st.best(engine.Sell), Last: st.last()})
	}
	h.mu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"instruments": out})
}

func (h *Hub) book(w http.ResponseWriter, r *http.Request, st *inst) {
	n, ok := intParam(w, r, "levels", 10, 1, 1000)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, st.book(n))
}

func (h *Hub) tradesHandler(w http.ResponseWriter, r *http.Request, st *inst) {
	n, ok := intParam(w, r, "limit", 100, 1, h.cfg.TradesKept)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"symbol": st.info.Symbol, "trades": st.recentTrades(n)})
}

func (h *Hub) candlesHandler(w http.ResponseWriter, r *http.Request, st *inst) {
	k := 1
	switch iv := r.URL.Query().Get("interval"); iv {
	case "1s":
		k = 0
	case "1m", "":
	default:
		writeError(w, http.StatusBadRequest, "bad-parameter", "interval must be 1s or 1m, not "+quote(iv))
		return
	}
	n, ok := intParam(w, r, "limit", 100, 1, st.candles[k].keep)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"symbol": st.info.Symbol, "interval": []string{"1s", "1m"}[k],
		"candles": st.recentCandles(k, n)})
}

// TickerJSON is /api/v1/ticker's answer.
type TickerJSON struct {
	Symbol  string     `json:"symbol"`
	Seq     uint64     `json:"seq"`
	Phase   string     `json:"phase"`
	Last    *TradeJSON `json:"last"`
	BestBid *PriceQty  `json:"best_bid"`
	BestAsk *PriceQty  `json:"best_ask"`
	Mid     *string    `json:"mid"`
	Spread  *string    `json:"spread"`
	Window  string     `json:"window"`
	Open    *string    `json:"open"`
	High    *string    `json:"high"`
	Low     *string    `json:"low"`
	Volume  string     `json:"volume"`
	Trades  int64      `json:"trades"`
}

func (h *Hub) ticker(w http.ResponseWriter, r *http.Request, st *inst) {
	t := TickerJSON{Symbol: st.info.Symbol, Seq: st.feedSeq, Phase: phaseName(st.phase), Last: st.last(),
		BestBid: st.best(engine.Buy), BestAsk: st.best(engine.Sell), Window: h.cfg.TickerWindow.String()}
	str := func(s string) *string { return &s }
	if bp, _, ok := st.bids.Max(); ok {
		if ap, _, ok := st.asks.Min(); ok {
			t.Spread = str(st.scale.FormatPrice(ap - bp))
			t.Mid = str(st.scale.PriceDecimal(bp).Add(st.scale.PriceDecimal(ap)).Div(decimalTwo).String())
		}
	}
	now := time.Now().UnixNano()
	from := now - int64(h.cfg.TickerWindow)
	from -= from % int64(time.Minute)
	var vol engine.Qty
	var hi, lo, open engine.Price
	cs := &st.candles[1]
	for i := cs.len() - 1; i >= 0 && cs.at(i).start >= from; i-- { // newest first, within the window
		c := cs.at(i)
		if t.Trades == 0 {
			hi, lo = c.high, c.low
		}
		hi, lo, open = max(hi, c.high), min(lo, c.low), c.open
		vol += c.volume
		t.Trades += c.trades
	}
	if t.Trades > 0 {
		t.Open, t.High, t.Low = str(st.scale.FormatPrice(open)), str(st.scale.FormatPrice(hi)), str(st.scale.FormatPrice(lo))
	}
	t.Volume = st.scale.FormatQty(vol)
	writeJSON(w, http.StatusOK, t)
}

// panel answers the server panel (with the admin token if one is set).
func (h *Hub) panel(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Panel == nil {
		writeError(w, http.StatusNotFound, "no-panel", "this server has no panel")
		return
	}
	if h.cfg.Token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="matchd admin"`)
			writeError(w, http.StatusUnauthorized, "token-needed", "the server panel needs Authorization: Bearer <admin token>")
			return
		}
	}
	p := h.cfg.Panel()
	now := time.Now()
	h.panelMu.Lock()
	prev := h.lastPanel
	rate := prev.rate
	if dt := now.Sub(prev.at); !prev.at.IsZero() && dt >= 200*time.Millisecond {
		rate = float64(p.Commands-prev.commands) / dt.Seconds()
		h.lastPanel = panelSample{at: now, commands: p.Commands, rate: rate}
	} else if prev.at.IsZero() {
		h.lastPanel = panelSample{at: now, commands: p.Commands}
	}
	h.panelMu.Unlock()
	writeJSON(w, http.StatusOK, struct {
		Panel
		CommandsPerSec float64 `json:"commands_per_s"`
		DurableLag     int64   `json:"durable_lag"`
	}{p, rate, max(p.Sequenced-p.Durable, 0)})
}
