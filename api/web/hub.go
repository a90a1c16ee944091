package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/units"
	"github.com/tidwall/btree"
)

// Config configures a Hub.
type Config struct {
	// Instruments are the instruments to serve (their symbols, tick and
	// lot sizes give the decimals).
	Instruments []engine.Instrument
	// TradesKept is how many of each instrument's latest trades the hub
	// keeps for the tape and /api/v1/trades (48 bytes each). Default 1,000.
	TradesKept int
	// CandlesKept is how many of each instrument's latest candles the
	// hub keeps per interval (64 bytes each; the 1 min ones at least the
	// ticker's window). Default 600: 10 minutes of 1 s candles.
	CandlesKept int
	// TickerWindow is the rolling window of the ticker's volume, high and
	// low (whole minutes, at most 7 days). Default 24 h.
	TickerWindow time.Duration
	// MaxStreams bounds the WebSocket clients at once; more are answered
	// 503. Default 1,000.
	MaxStreams int
	// StreamQueue is how many messages a WebSocket client may let pile up
	// before it is cut off as too slow. Default 4,096.
	StreamQueue int
	// StreamBytes is how many bytes of messages a WebSocket client may let
	// pile up before it is cut off as too slow. Default 16 MiB.
	StreamBytes int
	// TapLimit is how many bytes of market data frames the hub may fall
	// behind by before it starts over from snapshots. Default 16 MiB.
	TapLimit int
	// Token, if set, is needed (Authorization: Bearer) for the server
	// panel. The market data is public.
	Token string
	// Panel reads the server's counters for the server panel (nil: no
	// panel).
	Panel func() Panel
	// Logger receives the hub's events. Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills in zero fields.
func (c *Config) EnsureDefaults() {
	if c.TradesKept == 0 {
		c.TradesKept = 1000
	}
	if c.CandlesKept == 0 {
		c.CandlesKept = 600
	}
	if c.TickerWindow == 0 {
		c.TickerWindow = 24 * time.Hour
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = 1000
	}
	if c.StreamQueue == 0 {
		c.StreamQueue = 4096
	}
	if c.StreamBytes == 0 {
		c.StreamBytes = 16 << 20
	}
	if c.TapLimit == 0 {
		c.TapLimit = 16 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.TradesKept < 1 || c.CandlesKept < 1 {
		errs = append(errs, fmt.Errorf("web: trades kept %d and candles kept %d must be positive", c.TradesKept, c.CandlesKept))
	}
	if c.TickerWindow < time.Minute || c.TickerWindow > 7*24*time.Hour || c.TickerWindow%time.Minute != 0 {
		errs = append(errs, fmt.Errorf("web: ticker window %v must be whole minutes from 1m to 168h", c.TickerWindow))
	}
	if c.MaxStreams < 1 || c.StreamQueue < 16 || c.StreamBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("web: max streams %d must be positive, the stream queue %d at least 16 and its bytes %d at least 64 KiB",
			c.MaxStreams, c.StreamQueue, c.StreamBytes))
	}
	for _, in := range c.Instruments {
		if _, err := units.ScaleOf(in); err != nil {
			errs = append(errs, fmt.Errorf("web: instrument %s: %w", in.Symbol, err))
		}
	}
	return errors.Join(errs...)
}

// Panel is the server panel's figures, read from the same counters as
// /metrics. Latencies are the upper bounds of log2 histogram buckets, in
// microseconds.
type Panel struct {
	Sessions      int   `json:"sessions"`
	Connections   int   `json:"connections"`
	Subscriptions int   `json:"subscriptions"`
	Commands      int64 `json:"commands"` // applied since start
	Fills         int64 `json:"fills"`
	Sequenced     int64 `json:"sequenced_seq"`
	Durable       int64 `json:"durable_seq"`
	AckP50        int64 `json:"ack_p50_us"`
	AckP99        int64 `json:"ack_p99_us"`
	AckP999       int64 `json:"ack_p999_us"`
	SyncP50       int64 `json:"sync_p50_us"`
	SyncP99       int64 `json:"sync_p99_us"`
	Fsync         bool  `json:"fsync"`
}

// Hub keeps every instrument's public market data, built from the
// server's market tap, and serves it (Handler).
type Hub struct {
	cfg Config
	srv *api.Server
	tap *api.MarketTap
	log *slog.Logger

	mu       sync.RWMutex
	insts    []*inst // in the config's order
	bySymbol map[string]*inst
	byID     map[engine.InstrumentID]*inst

	nstreams  int // under mu
	panelMu   sync.Mutex
	lastPanel panelSample

	done   chan struct{}
	closed sync.Once
	spare  []byte
}

type panelSample struct {
	at       time.Time
	commands int64
	rate     float64
}

// New returns a hub for the server's market data. Start it once the
// server's pipeline runs.
func New(cfg Config, srv *api.Server) (*Hub, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, srv: srv, tap: api.NewMarketTap(cfg.TapLimit), log: cfg.Logger,
		bySymbol: map[string]*inst{}, byID: map[engine.InstrumentID]*inst{},
		done: make(chan struct{})}
	minutes := int(cfg.TickerWindow / time.Minute)
	for _, in := range cfg.Instruments {
		sc, _ := units.ScaleOf(in)
		st := &inst{info: in, scale: sc, subs: map[*stream]uint8{}, sym: mustJSON(in.Symbol),
			trades: ring[trade]{buf: make([]trade, 0, min(cfg.TradesKept, 1024)), keep: cfg.TradesKept},
			candles: [2]series{{step: int64(time.Second), ring: ring[candle]{keep: cfg.CandlesKept}},
				{step: int64(time.Minute), ring: ring[candle]{keep: max(cfg.CandlesKept, minutes+1)}}}}
		h.insts = append(h.insts, st)
		h.bySymbol[in.Symbol] = st
		h.byID[in.ID] = st
	}
	return h, nil
}

// Start starts the hub's goroutine: it takes the tap, a snapshot of every
// book, and then follows the feed.
func (h *Hub) Start() { go h.run() }

// Close stops the hub and cuts off its WebSocket clients.
func (h *Hub) Close() {
	h.closed.Do(func() { close(h.done) })
	h.mu.Lock()
	for _, st := range h.insts {
		for s := range st.subs {
			s.cut("server shutting down")
		}
	}
	h.mu.Unlock()
}

// inst is one instrument's market data (under Hub.mu).
type inst struct {
	info  engine.Instrument
	scale units.Scale

	bids, asks btree.Map[engine.Price, level]
	synced     bool   // the book holds a snapshot and what followed it
	feedSeq    uint64 // of the last frame the book includes
	phase      engine.Phase
	ind        wire.Indicative // the latest indicative uncrossing (zero: none)

	lastTrade uint64 // feed number of the newest trade taken
	trades    ring[trade]
	candles   [2]series // 1 s, 1 min

	subs map[*stream]uint8 // WebSocket subscribers and their channels
	sym  []byte            // the symbol as a JSON string

	// This take's changes for the subscribers, sent at its end as one
	// update per channel mask: the feed numbers it covers, the levels it
	// changed (each once, as they ended), its trades, and the phase and
	// indicative price if they changed.
	cyc cycle
}

// cycle is what one take changed of an instrument (under Hub.mu).
type cycle struct {
	from, to   uint64
	levels     []wire.LevelUpdate // each changed level once, in first-change order
	idx        map[levelKey]int   // into levels
	trades     []byte             // the trades' JSON objects, comma-separated
	phase, ind bool               // changed
	msgs       [chanBook | chanTrades + 1][]byte
}

type levelKey struct {
	side  engine.Side
	price engine.Price
}

func (c *cycle) level(u *wire.LevelUpdate) {
	k := levelKey{u.Side, u.Price}
	if i, ok := c.idx[k]; ok {
		c.levels[i] = *u
		return
	}
	if c.idx == nil {
		c.idx = map[levelKey]int{}
	}
	c.idx[k] = len(c.levels)
	c.levels = append(c.levels, *u)
}

type level struct {
	qty    engine.Qty
	orders int32
}

type trade struct {
	feedSeq   uint64
	id        engine.TradeID
	time      int64
	price     engine.Price
	qty       engine.Qty
	aggressor engine.Side
}

// ring keeps the newest keep values: a circular buffer that grows as
// values come, to keep at most (an instrument that never trades holds
// nothing).
type ring[T any] struct {
	buf  []T
	next int // where the next value goes once buf is full
	keep int
}

func (r *ring[T]) add(v T) {
	if len(r.buf) < r.keep {
		r.buf = append(r.buf, v)
		return
	}
	r.buf[r.next] = v
	r.next = (r.next + 1) % r.keep
}

// len is how many values it holds.
func (r *ring[T]) len() int { return len(r.buf) }

// newest returns the newest value (the ring must not be empty).
func (r *ring[T]) newest() *T {
	return r.at(len(r.buf) - 1)
}

// at returns the i-th value, oldest first (0 <= i < len).
func (r *ring[T]) at(i int) *T {
	if len(r.buf) < r.keep {
		return &r.buf[i]
	}
	return &r.buf[(r.next+i)%r.keep]
}

// last returns a copy of up to n of the newest values, oldest first.
func (r *ring[T]) last(n int) []T {
	n = min(n, len(r.buf))
	out := make([]T, 0, n)
	for i := len(r.buf) - n; i < len(r.buf); i++ {
		out = append(out, *r.at(i))
	}
	return out
}

// candle is one interval's OHLCV.
type candle struct {
	start                  int64 // nanoseconds since the Unix epoch
	open, high, low, close engine.Price
	volume                 engine.Qty
	trades                 int64
}

// series is one interval's candles, oldest first; intervals without
// trades have none.
type series struct {
	step int64
	ring[candle]
}

func (s *series) add(t *trade) {
	start := t.time - t.time%s.step
	if s.len() > 0 && s.newest().start >= start {
		c := s.newest() // engine time never goes back
		c.high, c.low = max(c.high, t.price), min(c.low, t.price)
		c.close = t.price
		c.volume += t.qty
		c.trades++
		return
	}
	s.ring.add(candle{start: start, open: t.price, high: t.price, low: t.price, close: t.price, volume: t.qty, trades: 1})
}

func (h *Hub) run() {
	h.resync()
	for {
		select {
		case <-h.done:
			return
		case <-h.tap.Ready():
		}
		frames, lost := h.tap.Take(h.spare)
		if lost {
			h.log.Warn("web: fell behind the market data feed; starting over from snapshots")
			h.resync()
			continue
		}
		if h.apply(frames) {
			h.log.Warn("web: a gap in the market data feed; starting over from snapshots")
			h.resync()
		}
		h.spare = frames
		// Coalesce: the page renders at most 10 frames a second, and a
		// wake-up per batch would cost the server's CPU at high rates.
		select {
		case <-h.done:
			return
		case <-time.After(coalesce):
		}
	}
}

// coalesce is the least time between two takes from the tap.
const coalesce = 5 * time.Millisecond

// resync takes the tap (with the server's retained trades) and a snapshot
// of every book, retrying until the server answers or the hub closes.
func (h *Hub) resync() {
	h.srv.Tap(h.tap)
	for _, st := range h.insts {
		for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ans, err := h.srv.Depth(ctx, st.info.ID, 0)
			cancel()
			if err == nil {
				h.mu.Lock()
				st.load(&ans)
				for s, ch := range st.subs {
					s.send(h.snapshotMsg(st, ch))
				}
				h.mu.Unlock()
				break
			}
			select {
			case <-h.done:
				return
			case <-time.After(backoff):
			}
		}
	}
}

// load replaces the book with a snapshot (under mu).
func (st *inst) load(a *api.DepthAnswer) {
	st.bids.Clear()
	st.asks.Clear()
	for _, l := range a.Bids {
		st.bids.Set(l.Price, level{l.Qty, l.Orders})
	}
	for _, l := range a.Asks {
		st.asks.Set(l.Price, level{l.Qty, l.Orders})
	}
	st.synced, st.feedSeq, st.phase, st.ind = a.Found, a.FeedSeq, a.Phase, wire.Indicative{}
}

// apply takes a run of frames into the books, tapes and candles, and sends
// what changed to the WebSocket subscribers. It reports a gap: a frame
// that does not follow its book's last (the hub must resync).
func (h *Hub) apply(frames []byte) (gap bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer func() {
		for _, st := range h.insts {
			st.flush()
		}
	}()
	for len(frames) > 0 {
		typ, body, n, err := wire.Parse(frames, wire.MaxFrame)
		if err != nil || n == 0 {
			h.log.Error("web: an undecodable market data frame", "err", err)
			return true
		}
		frames = frames[n:]
		var id engine.InstrumentID
		var fs uint64
		var lu wire.LevelUpdate
		var tr wire.Trade
		var pu wire.PhaseUpdate
		var iu wire.Indicative
		switch typ {
		case wire.TypeLevelUpdate:
			lu.Decode(body)
			id, fs = lu.Instrument, lu.FeedSeq
		case wire.TypeTrade:
			tr.Decode(body)
			id, fs = tr.Instrument, tr.FeedSeq
		case wire.TypePhaseUpdate:
			pu.Decode(body)
			id, fs = pu.Instrument, pu.FeedSeq
		case wire.TypeIndicative:
			iu.Decode(body)
			id, fs = iu.Instrument, iu.FeedSeq
		default:
			continue
		}
		st := h.byID[id]
		if st == nil {
			continue
		}
		if typ == wire.TypeTrade && fs > st.lastTrade {
			t := trade{feedSeq: fs, id: tr.Trade, time: tr.Time, price: tr.Price, qty: tr.Qty, aggressor: tr.Aggressor}
			st.lastTrade = fs
			st.trades.add(t)
			st.candles[0].add(&t)
			st.candles[1].add(&t)
		}
		if !st.synced || fs <= st.feedSeq {
			continue // in the snapshot already
		}
		if fs != st.feedSeq+1 {
			gap = true
			continue
		}
		st.feedSeq = fs
		live := len(st.subs) > 0
		if live {
			if st.cyc.from == 0 {
				st.cyc.from = fs
			}
			st.cyc.to = fs
		}
		switch typ {
		case wire.TypeLevelUpdate:
			side := &st.asks
			if lu.Side == engine.Buy {
				side = &st.bids
			}
			if lu.Qty == 0 {
				side.Delete(lu.Price)
			} else {
				side.Set(lu.Price, level{lu.Qty, lu.Orders})
			}
			if live {
				st.cyc.level(&lu)
			}
		case wire.TypeTrade:
			if live {
				if len(st.cyc.trades) > 0 {
					st.cyc.trades = append(st.cyc.trades, ',')
				}
				st.cyc.trades = appendTrade(st.cyc.trades, st, st.trades.newest())
			}
		case wire.TypePhaseUpdate:
			st.phase = pu.Phase
			if pu.Phase != engine.PhaseAuction && pu.Phase != engine.PhaseVolatility {
				st.ind = wire.Indicative{}
			}
			st.cyc.phase = st.cyc.phase || live
		case wire.TypeIndicative:
			st.ind = iu
			st.cyc.ind = st.cyc.ind || live
		}
	}
	return gap
}

// flush sends this take's changes to the subscribers: one update each,
// with what its channels asked for (under mu).
func (st *inst) flush() {
	c := &st.cyc
	if c.from == 0 {
		return
	}
	for s, want := range st.subs {
		if c.msgs[want] == nil {
			c.msgs[want] = appendUpdate(nil, st, want)
		}
		s.send(c.msgs[want])
	}
	clear(c.idx)
	if cap(c.trades) > 1<<20 || cap(c.levels) > 1<<16 {
		c.trades, c.levels = nil, nil // give a spike back
	}
	c.from, c.to, c.levels, c.trades, c.phase, c.ind, c.msgs = 0, 0, c.levels[:0], c.trades[:0], false, false, [4][]byte{}
}
