package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// ErrGap is returned by Book.Apply (and then by Book.Err) when a market
// data message does not carry the next feed sequence number: something was
// missed, and the book can no longer be trusted. Subscribe again.
var ErrGap = errors.New("client: market data gap")

// Book is a local copy of one instrument's order book, rebuilt from the
// market data feed: a BookSnapshot, then LevelUpdates. It checks every feed
// sequence number. Its methods are safe for concurrent use.
type Book struct {
	Instrument engine.InstrumentID

	mu      sync.Mutex
	bids    map[engine.Price]engine.LevelInfo
	asks    map[engine.Price]engine.LevelInfo
	feedSeq uint64
	seq     engine.Seq
	loading bool // a snapshot has begun and not ended
	ready   bool // a whole snapshot has arrived
	err     error
	trades  int64
	phase   engine.Phase // from PhaseUpdates since the snapshot (0: none seen)
	ind     wire.Indicative
}

// NewBook returns an empty book for the instrument, waiting for a snapshot.
func NewBook(inst engine.InstrumentID) *Book {
	return &Book{Instrument: inst, bids: map[engine.Price]engine.LevelInfo{}, asks: map[engine.Price]engine.LevelInfo{}}
}

// Apply applies one market data message of the book's instrument
// (BookSnapshot, LevelUpdate, Trade, PhaseUpdate or Indicative; others
// are ignored). It reports
// whether the message completed a snapshot, and ErrGap if a sequence
// number was skipped. After a gap the book keeps the error until the next
// snapshot.
func (b *Book) Apply(m *Message) (snapshotDone bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch m.Type {
	case wire.TypeBookSnapshot:
		s := &m.Snapshot
		if s.Instrument != b.Instrument {
			return false, nil
		}
		if !s.Found {
			b.err = fmt.Errorf("client: instrument %d not found", b.Instrument)
			return true, b.err
		}
		if s.Resumed {
			// The answer to a resubscription from feedSeq+1: the missed
			// updates follow, and the book carries on.
			if !b.ready || b.err != nil || s.FeedSeq != b.feedSeq {
				b.err = fmt.Errorf("%w: instrument %d: resumed after %d, the book is at %d", ErrGap, b.Instrument, s.FeedSeq, b.feedSeq)
				return true, b.err
			}
			return true, nil
		}
		if !b.loading || b.feedSeq != s.FeedSeq {
			clear(b.bids)
			clear(b.asks)
			b.loading, b.ready, b.err = true, false, nil
		}
		if s.Phase != 0 {
			b.phase, b.ind = s.Phase, wire.Indicative{}
		}
		for _, l := range m.Bids {
			b.bids[l.Price] = l
		}
		for _, l := range m.Asks {
			b.asks[l.Price] = l
		}
		b.feedSeq, b.seq = s.FeedSeq, s.Seq
		if !s.More {
			b.loading, b.ready = false, true
		}
		return !s.More, nil
	case wire.TypeLevelUpdate:
		u := &m.Level
		if u.Instrument != b.Instrument {
			return false, nil
		}
		if err := b.next(u.FeedSeq, u.Seq); err != nil {
			return false, err
		}
		side := b.asks
		if u.Side == engine.Buy {
			side = b.bids
		}
		if u.Qty == 0 {
			delete(side, u.Price)
		} else {
			side[u.Price] = engine.LevelInfo{Price: u.Price, Qty: u.Qty, Orders: u.Orders}
		}
	case wire.TypeTrade:
		t := &m.Trade
		if t.Instrument != b.Instrument {
			return false, nil
		}
		if err := b.next(t.FeedSeq, t.Seq); err != nil {
			return false, err
		}
		b.trades++
	case wire.TypePhaseUpdate:
		u := &m.PhaseUpdate
		if u.Instrument != b.Instrument {
			return false, nil
		}
		if err := b.next(u.FeedSeq, u.Seq); err != nil {
			return false, err
		}
		b.phase = u.Phase
		if u.Phase != engine.PhaseAuction && u.Phase != engine.PhaseVolatility {
			b.ind = wire.Indicative{}
		}
	case wire.TypeIndicative:
		u := &m.Indicative
		if u.Instrument != b.Instrument {
			return false, nil
		}
		if err := b.next(u.FeedSeq, u.Seq); err != nil {
			return false, err
		}
		b.ind = *u
	}
	return false, nil
}

// Phase returns the instrument's phase as of the snapshot and the
// PhaseUpdates since (0 from a server that does not say), and the last
// indicative uncrossing price and volume of a call auction (announced
// after the snapshot: zero until the auction's book next changes).
func (b *Book) Phase() (engine.Phase, wire.Indicative) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.phase, b.ind
}

// next checks and advances the feed sequence (under mu).
func (b *Book) next(feedSeq uint64, seq engine.Seq) error {
	switch {
	case b.err != nil:
		return b.err
	case !b.ready:
		return nil // no snapshot yet: nothing to apply to
	case feedSeq != b.feedSeq+1:
		b.err = fmt.Errorf("%w: instrument %d: feed sequence %d after %d", ErrGap, b.Instrument, feedSeq, b.feedSeq)
		return b.err
	}
	b.feedSeq, b.seq = feedSeq, seq
	return nil
}

// Ready reports whether a whole snapshot has arrived.
func (b *Book) Ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ready
}

// Err returns the gap (or unknown instrument) that made the book stale.
func (b *Book) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// FeedSeq returns the feed sequence number of the last change applied,
// and the command sequence number that made it.
func (b *Book) FeedSeq() (uint64, engine.Seq) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.feedSeq, b.seq
}

// Trades returns how many trades the book has seen since its snapshot.
func (b *Book) Trades() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.trades
}

// Depth returns up to n levels (n <= 0: all) of each side, best first.
func (b *Book) Depth(n int) (bids, asks []engine.LevelInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sortedLevels(b.bids, n, true), sortedLevels(b.asks, n, false)
}

// Top returns the best bid and ask.
func (b *Book) Top() engine.TopOfBook {
	bids, asks := b.Depth(1)
	var t engine.TopOfBook
	if len(bids) > 0 {
		t.BidPrice, t.BidQty = bids[0].Price, bids[0].Qty
	}
	if len(asks) > 0 {
		t.AskPrice, t.AskQty = asks[0].Price, asks[0].Qty
	}
	return t
}

func sortedLevels(m map[engine.Price]engine.LevelInfo, n int, desc bool) []engine.LevelInfo {
	out := make([]engine.LevelInfo, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b engine.LevelInfo) int {
		if desc {
			a, b = b, a
		}
		switch {
		case a.Price < b.Price:
			return -1
		case a.Price > b.Price:
			return 1
		}
		return 0
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Subscribe subscribes the session to the instrument's market data and
// returns a Book the client keeps up to date from then on (on its reader
// goroutine, before Config.OnMessage sees each message). It returns once
// the snapshot has arrived. Subscribing again replaces the book.
func (c *Client) Subscribe(ctx context.Context, inst engine.InstrumentID) (*Book, error) {
	b := NewBook(inst)
	c.mu.Lock()
	c.books[inst] = b
	c.mu.Unlock()
	req := c.request()
	m, err := c.roundTrip(ctx, waitKey{'q', uint64(req)}, (&wire.Subscribe{Request: req, Instrument: inst, Action: wire.SubscribeOn}).Append(nil))
	if err != nil {
		return nil, err
	}
	if !m.Snapshot.Found {
		c.mu.Lock()
		delete(c.books, inst)
		c.mu.Unlock()
		return nil, fmt.Errorf("client: subscribe: instrument %d not found", inst)
	}
	return b, nil
}

// resubscribe asks again, on a new connection, for the market data of
// every book the client keeps: from the next feed number of a book that
// is whole (the server replays what it missed, or sends a fresh
// snapshot), with a snapshot otherwise.
func (c *Client) resubscribe() {
	c.mu.Lock()
	var frames []byte
	for inst, b := range c.books {
		b.mu.Lock()
		from := uint64(0)
		if b.ready && b.err == nil {
			from = b.feedSeq + 1
		}
		b.mu.Unlock()
		frames = (&wire.Subscribe{Instrument: inst, Action: wire.SubscribeOn, From: from}).Append(frames)
	}
	c.mu.Unlock()
	if len(frames) > 0 {
		c.Send(frames)
	}
}

// Unsubscribe stops the instrument's market data; its Book stops changing.
func (c *Client) Unsubscribe(inst engine.InstrumentID) error {
	c.mu.Lock()
	delete(c.books, inst)
	c.mu.Unlock()
	return c.Send((&wire.Subscribe{Instrument: inst, Action: wire.Unsubscribe}).Append(nil))
}
