package api

import (
	"sync"

	"github.com/matchd/matchd/api/wire"
)

// MarketTap hands every market data frame the server publishes (the feed's
// Trade, LevelUpdate, PhaseUpdate and Indicative frames, docs/PROTOCOL.md)
// to one in-process consumer, such as the web view, in the feed's order.
// The release stage never waits for it: frames are copied into the tap's
// buffer once per batch, and if the consumer lets more than its limit pile
// up, the tap drops them and says so (Take reports lost), and the consumer
// starts again with Server.Tap and fresh snapshots.
type MarketTap struct {
	limit int
	ready chan struct{}

	mu   sync.Mutex
	buf  []byte
	lost bool
}

// NewMarketTap returns a tap that holds at most limit bytes of frames not
// yet taken (at least 64 KiB).
func NewMarketTap(limit int) *MarketTap {
	return &MarketTap{limit: max(limit, 64<<10), ready: make(chan struct{}, 1)}
}

// Ready is signalled when frames are waiting (or were lost).
func (t *MarketTap) Ready() <-chan struct{} { return t.ready }

// Take returns the frames waiting, appended to spare[:0], and whether
// frames were dropped since the last Take because the consumer fell
// behind (the tap is then empty until the next Server.Tap). The returned
// buffer is the caller's; pass it back as spare.
func (t *MarketTap) Take(spare []byte) (frames []byte, lost bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	frames, t.buf = t.buf, spare[:0]
	return frames, t.lost
}

// add copies one batch's frames in (under the server's mu).
func (t *MarketTap) add(frames []byte) {
	if len(frames) == 0 {
		return
	}
	t.mu.Lock()
	if t.lost || len(t.buf)+len(frames) > t.limit {
		t.lost, t.buf = true, t.buf[:0]
	} else {
		t.buf = append(t.buf, frames...)
	}
	t.mu.Unlock()
	select {
	case t.ready <- struct{}{}:
	default:
	}
}

// Tap makes t the server's market tap (replacing any other) and starts it
// with the history the server keeps: the Trade and PhaseUpdate frames of
// every instrument's feed retention (--feed-retention), oldest first, then
// every frame published from now on. A consumer that also wants the
// books takes a snapshot with Depth (levels 0) after Tap: the snapshot's
// FeedSeq says which of the frames that follow it already includes.
// Calling Tap again (after Take reported lost) empties t and starts it
// over the same way.
func (s *Server) Tap(t *MarketTap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.mu.Lock()
	t.buf, t.lost = t.buf[:0], false
	for _, fi := range s.feed.insts {
		if fi == nil || fi.ret.retained() == 0 {
			continue
		}
		for next := fi.ret.first; next <= fi.ret.last; {
			var fr []byte
			fr, next = fi.ret.frames(next, 64<<10)
			for len(fr) > 0 {
				typ, _, n, err := wire.Parse(fr, wire.MaxFrame)
				if err != nil || n == 0 {
					break
				}
				if typ == wire.TypeTrade || typ == wire.TypePhaseUpdate {
					t.buf = append(t.buf, fr[:n]...)
				}
				fr = fr[n:]
			}
		}
	}
	t.mu.Unlock()
	s.tap, s.tapBuf = t, s.tapBuf[:0]
	select {
	case t.ready <- struct{}{}:
	default:
	}
}

// handTap gives the tap the frames published since the last hand-over
// (under mu).
func (s *Server) handTap() {
	if s.tap != nil && len(s.tapBuf) > 0 {
		s.tap.add(s.tapBuf)
		if cap(s.tapBuf) > spareMax {
			s.tapBuf = nil
		}
		s.tapBuf = s.tapBuf[:0]
	}
}
