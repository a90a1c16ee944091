package api

import (
	"sync/atomic"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/pipeline"
)

// feed publishes market data (docs/PROTOCOL.md, "Market data"). It lives
// under Server.mu: Deliver numbers and encodes each durable batch's trades
// and level changes per instrument once, into a buffer every subscriber
// of the instrument shares (by reference, never a copy: a subscriber that
// does not keep up holds only references until it is cut off). Sessions subscribe through a
// QueryBook request, so the snapshot is taken by the matching loop at an
// exact point in the command sequence, and Deliver, which sees results in
// that order, stamps it with the feed sequence of that same point.
type feed struct {
	keep  int           // frames retained per instrument for subscribers that resume
	insts []*feedInst   // by instrument id
	dirty []*feedInst   // instruments with frames or joins in this batch
	subs  *atomic.Int64 // subscriptions in all (Server.stats.subscriptions)
	srv   *Server       // whose queue the frames go to
}

// feedInst is one instrument's feed.
type feedInst struct {
	id    engine.InstrumentID
	buf   []byte              // this batch's frames
	ret   stream              // the latest frames, by feed number, for subscribers that resume
	subs  map[uint64]*session // subscribed before this batch
	joins []feedJoin          // subscribed during this batch
	dirty bool
}

// feedJoin is a session that subscribed during the current batch: its
// snapshot includes buf[:from], so it gets only buf[from:].
type feedJoin struct {
	ss   *session
	from int
}

func (f *feed) inst(id engine.InstrumentID) *feedInst {
	if int(id) < len(f.insts) && f.insts[id] != nil {
		return f.insts[id]
	}
	if int(id) >= len(f.insts) {
		f.insts = append(f.insts, make([]*feedInst, int(id)+1-len(f.insts))...)
	}
	fi := &feedInst{id: id, subs: map[uint64]*session{}, ret: stream{first: 1}}
	f.insts[id] = fi
	return fi
}

func (f *feed) markDirty(fi *feedInst) {
	if !fi.dirty {
		fi.dirty = true
		f.dirty = append(f.dirty, fi)
	}
}

// publish encodes one market data event (numbered by the engine, so the
// numbers are the journal's), keeps it for subscribers that resume, and
// queues it for this batch's subscribers.
func (f *feed) publish(ev *engine.Event) {
	fi := f.inst(ev.Instrument)
	start := len(fi.buf)
	switch ev.Kind {
	case engine.EvFill:
		aggressor := ev.Side
		if ev.Reason == engine.FillAuction {
			aggressor = 0 // an uncrossing has none
		}
		fi.buf = (&wire.Trade{Instrument: ev.Instrument, FeedSeq: ev.FeedSeq, Seq: ev.Seq, Time: ev.Time,
			Trade: ev.TradeID, Aggressor: aggressor, Price: ev.Price, Qty: ev.Qty}).Append(fi.buf)
	case engine.EvPhase:
		fi.buf = (&wire.PhaseUpdate{Instrument: ev.Instrument, FeedSeq: ev.FeedSeq, Seq: ev.Seq, Time: ev.Time,
			Phase: engine.Phase(ev.Reason), Price: ev.Price}).Append(fi.buf)
	case engine.EvIndicative:
		fi.buf = (&wire.Indicative{Instrument: ev.Instrument, FeedSeq: ev.FeedSeq, Seq: ev.Seq, Price: ev.Price,
			Qty: ev.Qty, Surplus: ev.Leaves, Side: ev.Side}).Append(fi.buf)
	case engine.EvLevel:
		fi.buf = (&wire.LevelUpdate{Instrument: ev.Instrument, FeedSeq: ev.FeedSeq, Seq: ev.Seq, Side: ev.Side,
			Price: ev.Price, Qty: ev.Qty, Orders: ev.Orders}).Append(fi.buf)
	}
	fi.ret.add(ev.FeedSeq, fi.buf[start:])
	if f.srv.tap != nil {
		f.srv.tapBuf = append(f.srv.tapBuf, fi.buf[start:]...)
	}
	if fi.ret.retained() > f.keep+chunkBytes/32 {
		fi.ret.trim(f.keep)
	}
	if len(fi.subs) == 0 && len(fi.joins) == 0 {
		fi.buf = fi.buf[:start]
		return
	}
	f.markDirty(fi)
}

// resumable reports whether a subscriber that asks for the instrument's
// feed from number from can be sent what it missed up to last (the
// snapshot point): the server still keeps it, and it fits in a quarter of
// the subscriber's outbound limit.
func (fi *feedInst) resumable(from, last uint64, limit int) bool {
	st := &fi.ret
	switch {
	case from == 0 || from > last+1 || st.last != last:
		return false
	case from == last+1:
		return true
	case from < st.first:
		return false
	}
	return st.bytesFrom(from) <= limit/4
}

// subscribe answers a QueryBook: it sends ss the snapshot, stamped with
// the current feed sequence, and adds ss to the instrument's subscribers
// from this point of the batch on. scratch is reused for the frames.
func (f *feed) subscribe(ss *session, b *pipeline.Batch, r *pipeline.Result, scratch []byte) []byte {
	req := route(r.Token).request()
	bids, asks := b.DepthOf(r)
	if !r.Found {
		scratch = (&wire.BookSnapshot{Request: req, Instrument: r.Instrument, Seq: r.Seq}).Append(scratch[:0], nil, nil)
		f.srv.queue(ss, scratch)
		return scratch
	}
	fi := f.inst(r.Instrument)
	if fi.resumable(r.From, r.FeedSeq, ss.limit) {
		// What it missed, from the frames kept: the same bytes it would
		// have been sent.
		scratch = (&wire.BookSnapshot{Request: req, Instrument: r.Instrument, FeedSeq: r.From - 1, Seq: r.Seq,
			Found: true, Resumed: true}).Append(scratch[:0], nil, nil)
		for next := r.From; next <= r.FeedSeq; {
			var fr []byte
			fr, next = fi.ret.frames(next, 64<<10)
			scratch = append(scratch, fr...)
		}
		return f.join(ss, fi, scratch)
	}
	m := wire.BookSnapshot{Request: req, Instrument: r.Instrument, FeedSeq: r.FeedSeq, Seq: r.Seq, Found: true, Phase: r.Phase}
	scratch = scratch[:0]
	for {
		nb := min(len(bids), wire.MaxSnapshotLevels)
		na := min(len(asks), wire.MaxSnapshotLevels-nb)
		m.More = nb+na < len(bids)+len(asks)
		scratch = m.Append(scratch, bids[:nb], asks[:na])
		bids, asks = bids[nb:], asks[na:]
		if !m.More {
			break
		}
	}
	return f.join(ss, fi, scratch)
}

// join queues a subscriber's first frames and adds it to the
// instrument's subscribers from this point of the batch on.
func (f *feed) join(ss *session, fi *feedInst, scratch []byte) []byte {
	f.srv.queue(ss, scratch)
	if ss.isClosing() {
		return scratch
	}
	f.unsubscribe(ss, fi.id)
	fi.joins = append(fi.joins, feedJoin{ss: ss, from: len(fi.buf)})
	f.markDirty(fi)
	ss.feeds = append(ss.feeds, fi.id)
	f.subs.Add(1)
	return scratch
}

// unsubscribe removes ss from the instrument's subscribers, if it is one.
func (f *feed) unsubscribe(ss *session, id engine.InstrumentID) {
	if int(id) >= len(f.insts) || f.insts[id] == nil {
		return
	}
	fi := f.insts[id]
	found := false
	if _, ok := fi.subs[ss.id]; ok {
		delete(fi.subs, ss.id)
		found = true
	}
	for i, j := range fi.joins {
		if j.ss == ss {
			fi.joins = append(fi.joins[:i], fi.joins[i+1:]...)
			found = true
			break
		}
	}
	if found {
		f.subs.Add(-1)
		for i, x := range ss.feeds {
			if x == id {
				ss.feeds = append(ss.feeds[:i], ss.feeds[i+1:]...)
				break
			}
		}
	}
}

// drop removes a closing session from every instrument it subscribed to.
func (f *feed) drop(ss *session) {
	for len(ss.feeds) > 0 {
		f.unsubscribe(ss, ss.feeds[len(ss.feeds)-1])
	}
}

// flush sends each instrument's frames of this batch to its subscribers
// and makes this batch's joins ordinary subscribers. The frames go after
// the sessions' other responses of the batch (Server.flush sends them); a
// subscriber too slow to take them is cut off by send, and drop removes
// it when its session ends.
func (f *feed) flush() {
	for _, fi := range f.dirty {
		var sh *shared
		if len(fi.buf) > 0 && (len(fi.subs) > 0 || len(fi.joins) > 0) {
			sh = &shared{b: fi.buf, total: &f.srv.outQueued}
		}
		if sh != nil {
			for _, ss := range fi.subs {
				f.srv.queueShared(ss, sh, 0)
			}
		}
		for _, j := range fi.joins {
			if sh != nil && j.from < len(fi.buf) {
				f.srv.queueShared(j.ss, sh, j.from)
			}
			fi.subs[j.ss.id] = j.ss
		}
		if sh != nil {
			// Every subscriber holds this buffer, until it is written or
			// copied by nobody: the next batch's frames go to a new one.
			fi.buf = make([]byte, 0, max(cap(fi.buf), 1024))
		} else {
			fi.buf = fi.buf[:0]
		}
		fi.joins, fi.dirty = fi.joins[:0], false
	}
	f.dirty = f.dirty[:0]
}
