package web

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The stream's channels.
const (
	chanBook   uint8 = 1 // snapshots, level changes, phases, indicative prices
	chanTrades uint8 = 2 // trades
)

// writeTimeout is how long one WebSocket write may take before the
// client is cut off.
const writeTimeout = 5 * time.Second

// stream is one WebSocket client.
type stream struct {
	q      chan []byte
	limit  int64        // bytes it may have queued
	queued atomic.Int64 // bytes queued and not yet written
	once   sync.Once
	gone   chan struct{}
	reason string

	window time.Time // the current second of subscribe requests (under Hub.mu)
	asked  int       // subscribe requests in it
}

// maxSubscribesPerSec bounds one client's subscribe requests: each costs
// a snapshot of whole books.
const maxSubscribesPerSec = 20

// send queues a message without waiting: a client whose queue is full is
// cut off (under Hub.mu). One message larger than the byte bound (a very
// deep book's snapshot) still goes to a client with nothing queued.
func (s *stream) send(msg []byte) {
	if q := s.queued.Load(); q > 0 && q+int64(len(msg)) > s.limit {
		s.cut("too slow")
		return
	}
	select {
	case s.q <- msg:
		s.queued.Add(int64(len(msg)))
	default:
		s.cut("too slow")
	}
}

func (s *stream) cut(reason string) {
	s.once.Do(func() {
		s.reason = reason
		close(s.gone)
	})
}

// request is what a client sends.
type request struct {
	Op       string   `json:"op"`
	Symbols  []string `json:"symbols"`
	Channels []string `json:"channels"`
}

func (h *Hub) serveStream(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.nstreams >= h.cfg.MaxStreams {
		h.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "too-many-streams", "the server has as many WebSocket clients as it takes (--web-max-streams)")
		return
	}
	h.nstreams++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.nstreams--
		h.mu.Unlock()
	}()
	// Public data, read only: any page may show it.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: []string{"*"}})
	if err != nil {
		return // Accept answered the request
	}
	c.SetReadLimit(16 << 10)
	s := &stream{q: make(chan []byte, h.cfg.StreamQueue), limit: int64(h.cfg.StreamBytes), gone: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	read := make(chan struct{})
	go func() {
		defer close(read)
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			var req request
			if err := json.Unmarshal(data, &req); err != nil {
				h.mu.Lock()
				s.send(errorMsg("bad-request", "a request is a JSON object: {\"op\":\"subscribe\",\"symbols\":[...],\"channels\":[...]}"))
				h.mu.Unlock()
				continue
			}
			h.handle(s, &req)
		}
	}()
	defer h.unsubscribeAll(s)
	for {
		select {
		case <-s.gone: // before anything still queued
			c.Close(websocket.StatusPolicyViolation, s.reason)
			return
		default:
		}
		select {
		case m := <-s.q:
			wctx, wcancel := context.WithTimeout(ctx, writeTimeout)
			err := c.Write(wctx, websocket.MessageText, m)
			wcancel()
			s.queued.Add(-int64(len(m)))
			if err != nil {
				c.CloseNow()
				return
			}
		case <-s.gone:
			c.Close(websocket.StatusPolicyViolation, s.reason)
			return
		case <-read:
			c.CloseNow()
			return
		case <-h.done:
			c.Close(websocket.StatusGoingAway, "server shutting down")
			return
		}
	}
}

// handle carries out one request: it answers a bad one with an error
// message and changes nothing.
func (h *Hub) handle(s *stream, req *request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var mask uint8
	for _, c := range req.Channels {
		switch c {
		case "book":
			mask |= chanBook
		case "trades":
			mask |= chanTrades
		default:
			s.send(errorMsg("bad-channel", "channels are \"book\" and \"trades\", not "+quote(c)))
			return
		}
	}
	if len(req.Channels) == 0 {
		mask = chanBook | chanTrades
	}
	var sts []*inst
	for _, sym := range req.Symbols {
		if sym == "*" {
			sts = append(sts, h.insts...)
			continue
		}
		st := h.bySymbol[sym]
		if st == nil {
			s.send(errorMsg("unknown-instrument", "no instrument "+quote(sym)))
			return
		}
		sts = append(sts, st)
	}
	switch req.Op {
	case "subscribe":
		if now := time.Now(); now.Sub(s.window) >= time.Second {
			s.window, s.asked = now, 0
		}
		if s.asked++; s.asked > maxSubscribesPerSec {
			s.send(errorMsg("rate-limited", "at most 20 subscribe requests a second"))
			return
		}
		if len(sts) == 0 {
			s.send(errorMsg("bad-request", "subscribe names at least one symbol (or \"*\")"))
			return
		}
		for _, st := range sts {
			st.subs[s] = mask
			if st.synced {
				s.send(h.snapshotMsg(st, mask))
			}
		}
	case "unsubscribe":
		for _, st := range sts {
			delete(st.subs, s)
		}
	default:
		s.send(errorMsg("bad-op", "op is \"subscribe\" or \"unsubscribe\", not "+quote(req.Op)))
	}
}

func (h *Hub) unsubscribeAll(s *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, st := range h.insts {
		delete(st.subs, s)
	}
}

func errorMsg(reason, message string) []byte {
	return mustJSON(struct {
		Type    string `json:"type"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}{"error", reason, message})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
