package api

import (
	"context"
	"slices"
	"time"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/pipeline"
)

// This file is what runs on the pipeline's release stage: durable
// batches turned into frames and routed to sessions and subscribers.

// Deliver routes a durable batch's results to the sessions: every
// session message (execution report) to the stream the engine numbered
// it in (see engine.Event.Session), retained there and sent to the
// session's connection if it has one that is not still replaying; query
// answers to the asking connection, filtered to its account's orders;
// trades and level changes to the instrument's market data subscribers,
// after the batch's other responses. It runs on the pipeline's release
// stage.
//
// Each session's frames are collected over the batches of one group
// commit and handed over in one piece after its last batch (EndOfCommit;
// usually one non-blocking write straight to the socket), so a group
// commit costs a session one write, not one per response or per batch.
func (s *Server) Deliver(b *pipeline.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := int64(time.Since(s.epoch))
	cmd := 0
	for i := range b.Results {
		r := &b.Results[i]
		rt := route(r.Token)
		ss := s.sessions[rt.session()]
		if ss != nil {
			s.giveCredit(ss)
		}
		if r.Query != 0 && rt.session() == 0 { // an in-process query (session ids start at 1)
			// Whoever asked may act on the answer at once (Shutdown says
			// Goodbye after its barrier): hand over everything before it.
			s.feed.flush()
			s.flush()
			s.handTap()
			s.answerLocal(b, r)
			continue
		}
		if r.Query == pipeline.QueryBarrier {
			if ss != nil && ss.settled != nil {
				// The session is ending: everything it sent is answered
				// once this is handed over.
				s.feed.flush()
				s.flush()
				close(ss.settled)
				ss.settled = nil
			}
			continue
		}
		if r.Query == pipeline.QueryBook {
			if ss != nil {
				s.scratch = s.feed.subscribe(ss, b, r, s.scratch)
				ss.pagedDone()
			}
			continue
		}
		if r.Query != 0 {
			if ss != nil {
				s.answer(ss, b, r)
			}
			continue
		}
		c := &b.Cmds[cmd]
		cmd++
		if ss != nil && r.Recv != 0 {
			s.acks.observe(now - r.Recv)
		}
		s.cur = ss
		s.derive(c, b.EventsOf(r))
		s.cur = nil
	}
	s.feed.flush()
	s.handTap()
	if b.EndOfCommit {
		s.flush()
	}
	if s.outQueued.Load() > s.cfg.OutboundBudget {
		s.cutWorst()
	}
	s.stats.publish(&s.acks)
}

// cutWorst cuts off sessions until all together hold less than nine
// tenths of the outbound budget (under mu), and only sessions holding
// more than their fair share of it (the budget over the sessions holding
// anything): a client that reads, and so holds little, is never cut for
// others' backlog. Past the budget it cuts the stalled ones (whose client
// has taken nothing for stallTime), largest first; past twice the budget
// also those still reading, largest first. It runs only when the budget
// is passed.
func (s *Server) cutWorst() {
	type held struct {
		ss      *session
		n       int
		stalled bool
	}
	var all []held
	now := time.Now().UnixNano()
	for _, ss := range s.sessions {
		if n := ss.heldBytes(); n > 0 {
			all = append(all, held{ss, n, now-ss.progress.Load() > int64(stallTime)})
		}
	}
	if len(all) == 0 {
		return
	}
	slices.SortFunc(all, func(a, b held) int {
		if a.stalled != b.stalled {
			if a.stalled {
				return -1
			}
			return 1
		}
		return b.n - a.n
	})
	target := s.cfg.OutboundBudget / 10 * 9
	fair := max(s.cfg.OutboundBudget/int64(len(all)), 64<<10)
	left := s.outQueued.Load()
	for _, h := range all {
		if left <= target {
			break
		}
		if int64(h.n) <= fair || (!h.stalled && left <= 2*s.cfg.OutboundBudget) {
			continue
		}
		h.ss.cut(wire.ByeSlowConsumer)
		left -= int64(h.n)
		s.logs.warn(s.log, "budget", "api: outbound budget spent; cutting off a session holding more than its share",
			"session", h.ss.id, "account", h.ss.acct, "held", h.n, "stalled", h.stalled, "budget", s.cfg.OutboundBudget)
	}
}

// stallTime is how long a client must have taken nothing to count as
// stalled.
const stallTime = 100 * time.Millisecond

// queue adds frames of the session's own to what ss gets at the end of
// this group commit (under mu).
func (s *Server) queue(ss *session, frames []byte) {
	s.markDirty(ss)
	off := len(ss.pendBuf)
	ss.pendBuf = append(ss.pendBuf, frames...)
	if n := len(ss.pend); n > 0 && ss.pend[n-1].sh == nil && ss.pend[n-1].off+ss.pend[n-1].n == off {
		ss.pend[n-1].n += len(frames)
		return
	}
	ss.pend = append(ss.pend, segment{off: off, n: len(frames)})
}

// queueShared adds sh.b[from:] (market data), by reference: sh.b must
// not change afterwards (under mu).
func (s *Server) queueShared(ss *session, sh *shared, from int) {
	s.markDirty(ss)
	ss.pend = append(ss.pend, segment{sh: sh, off: from, n: len(sh.b) - from})
}

func (s *Server) markDirty(ss *session) {
	if !ss.dirty {
		ss.dirty = true
		s.dirty = append(s.dirty, ss)
	}
}

// flush hands every session its frames of this group commit, in one send
// each.
func (s *Server) flush() {
	for _, ss := range s.dirty {
		ss.sendSegments(ss.pendBuf, ss.pend)
		clear(ss.pend) // no reference to shared buffers stays behind
		if cap(ss.pendBuf) > spareMax {
			ss.pendBuf = nil // give a spike back
		}
		ss.pend, ss.pendBuf, ss.dirty = ss.pend[:0], ss.pendBuf[:0], false
	}
	s.dirty = s.dirty[:0]
	s.streams.release() // nothing refers to trimmed chunks now
}

// put retains a session message in its stream and queues it for the
// stream's connection, unless that connection is still being sent its
// replay (which reads the stream itself). Unnamed sessions have no
// stream: an answer goes to the connection that sent the command, what
// happens to an order to every unnamed connection of the account (under
// mu).
func (s *Server) put(k streamKey, msg uint64, f []byte, answer bool) {
	if k.name == 0 {
		if answer {
			if s.cur != nil && s.cur.acct == k.acct && s.cur.name == 0 {
				s.queue(s.cur, f)
			}
			return
		}
		for _, ss := range s.byAccount[k.acct] {
			if ss.name == 0 {
				s.queue(ss, f)
			}
		}
		return
	}
	st := s.streams.add(k, msg, f)
	if ss := st.live; ss != nil && !ss.replaying {
		// The bytes just kept in the stream, by reference: no second copy.
		c := st.chunks[len(st.chunks)-1]
		s.queueExt(ss, c.buf[len(c.buf)-len(f):])
	}
}

// queueExt adds bytes of a stream's chunk to what ss gets at the end of
// this group commit, by reference (under mu): the chunk is not reused
// before the flush (streams.release).
func (s *Server) queueExt(ss *session, b []byte) {
	s.markDirty(ss)
	if n := len(ss.pend); n > 0 && ss.pend[n-1].ext != nil {
		last := ss.pend[n-1].ext
		if cap(last) >= len(last)+len(b) && &last[:len(last)+1][len(last)] == &b[0] {
			ss.pend[n-1].ext = last[:len(last)+len(b)] // the next bytes of the same chunk
			return
		}
	}
	ss.pend = append(ss.pend, segment{ext: b})
}

// answer sends a query's answer to the session that asked.
func (s *Server) answer(ss *session, b *pipeline.Batch, r *pipeline.Result) {
	req := route(r.Token).request()
	f := s.scratch[:0]
	switch r.Query {
	case pipeline.QueryTop:
		f = (&wire.Top{Request: req, Seq: r.Seq, Instrument: r.Instrument, Found: r.Found, TopOfBook: r.Top}).Append(f)
	case pipeline.QueryStatus:
		f = (&wire.InstrumentStatus{Request: req, Seq: r.Seq, Instrument: r.Instrument, Found: r.Found, Phase: r.Phase,
			RefPrice: r.Band[0], BandLow: r.Band[1], BandHigh: r.Band[2]}).Append(f)
	case pipeline.QueryDepth:
		bids, asks := b.DepthOf(r)
		f = (&wire.Depth{Request: req, Seq: r.Seq, Instrument: r.Instrument, Found: r.Found}).Append(f, bids, asks)
	case pipeline.QueryOrder, pipeline.QueryOpenOrders:
		if r.Query == pipeline.QueryOrder && r.From == statusMark {
			var o *engine.OrderInfo
			if list := b.OrdersOf(r); len(list) > 0 {
				o = &list[0]
			}
			st := openStatus(req, o, ss.acct)
			st.Seq = r.Seq
			f = st.Append(f)
			break
		}
		s.orders = s.orders[:0]
		for _, o := range b.OrdersOf(r) {
			if o.Account == ss.acct { // never another account's order
				s.orders = append(s.orders, o)
			}
		}
		os := s.orders
		for {
			n := min(len(os), wire.MaxOrdersPerFrame)
			f = (&wire.Orders{Request: req, Seq: r.Seq, More: n < len(os) || r.More}).Append(f, os[:n])
			os = os[n:]
			if len(os) == 0 {
				break
			}
		}
		if r.Query == pipeline.QueryOpenOrders {
			if r.More {
				// The next page is asked for once the client has read
				// most of this one.
				page := b.OrdersOf(r)
				go s.nextPage(ss, req, page[len(page)-1].ID)
			} else {
				ss.pagedDone()
			}
		}
		if cap(s.orders) > 4*pipeline.OpenOrdersPage {
			s.orders = nil
		}
	}
	s.queue(ss, f)
	s.scratch = f
}

// nextPage asks for the page of ss's open orders after order id after,
// once the session holds less than half its outbound limit (the client
// reads); it gives up, cutting the session off, if that takes longer than
// the idle timeout.
func (s *Server) nextPage(ss *session, req uint32, after engine.OrderID) {
	deadline := time.Now().Add(s.cfg.IdleTimeout)
	for ss.heldBytes() > ss.limit/2 {
		if ss.isClosing() || s.closing.Load() {
			ss.pagedDone()
			return
		}
		if time.Now().After(deadline) {
			ss.cut(wire.ByeSlowConsumer)
			ss.pagedDone()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Counted in the pipeline only while the session is registered (its
	// removal, under mu too, settles the count of a session that ends).
	s.mu.Lock()
	if s.sessions[ss.id] != ss || ss.stopped.Load() {
		s.mu.Unlock()
		ss.pagedDone()
		return
	}
	s.takeCredit(ss, 1)
	s.mu.Unlock()
	err := s.p.Submit(pipeline.Request{Token: uint64(newRoute(ss.id, req)),
		Query: pipeline.Query{Kind: pipeline.QueryOpenOrders, Account: ss.acct, OrderID: after}})
	if err != nil {
		s.giveCredit(ss)
		ss.pagedDone()
	}
}

// DepthAnswer is the answer to Server.Depth.
type DepthAnswer struct {
	Seq        engine.Seq // the last command applied when it was read
	Found      bool       // whether the instrument exists
	Bids, Asks []engine.LevelInfo
	// FeedSeq and Phase are, for a whole book (levels 0), the
	// instrument's feed number and trading phase at that point: the
	// snapshot includes every market data frame up to FeedSeq.
	FeedSeq uint64
	Phase   engine.Phase
}

// Depth reads up to levels levels of each side of the instrument (all if
// levels <= 0) through the matching loop, like a session's depth query:
// the answer reflects every command sequenced before it and comes once
// those are durable. It is for the admin endpoints, not the hot path (it
// allocates).
func (s *Server) Depth(ctx context.Context, inst engine.InstrumentID, levels int) (DepthAnswer, error) {
	ch := make(chan DepthAnswer, 1)
	id := s.addWaiter(ch)
	defer s.dropWaiter(id)
	kind := pipeline.QueryDepth
	if levels <= 0 {
		kind = pipeline.QueryBook
	}
	err := s.p.Submit(pipeline.Request{Token: uint64(newRoute(0, id)), Query: pipeline.Query{Kind: kind, Instrument: inst, Levels: int32(levels)}})
	if err != nil {
		return DepthAnswer{}, err
	}
	select {
	case a := <-ch:
		return a, nil
	case <-ctx.Done():
		return DepthAnswer{}, ctx.Err()
	case <-s.p.Failed():
		return DepthAnswer{}, s.p.Err()
	}
}

// addWaiter registers ch for the answer to an in-process query and
// returns its id.
func (s *Server) addWaiter(ch chan<- DepthAnswer) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextW++
	if s.nextW == 0 {
		s.nextW = 1
	}
	s.waiters[s.nextW] = ch
	return s.nextW
}

func (s *Server) dropWaiter(id uint32) {
	s.mu.Lock()
	delete(s.waiters, id)
	s.mu.Unlock()
}

// answerLocal answers an in-process query (under mu): a barrier with its
// sequence number only.
func (s *Server) answerLocal(b *pipeline.Batch, r *pipeline.Result) {
	ch := s.waiters[route(r.Token).request()]
	if ch == nil {
		return
	}
	if r.Query == pipeline.QueryBarrier {
		ch <- DepthAnswer{Seq: r.Seq}
		return
	}
	if r.Query != pipeline.QueryDepth && r.Query != pipeline.QueryBook {
		return
	}
	bids, asks := b.DepthOf(r)
	ch <- DepthAnswer{Seq: r.Seq, Found: r.Found, Bids: slices.Clone(bids), Asks: slices.Clone(asks), FeedSeq: r.FeedSeq, Phase: r.Phase}
}
