package api

import (
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// This file keeps the sessions' streams: every message the server sends a
// session (execution reports), numbered by the engine and retained so that
// a client resuming its session is sent what it missed. The streams are
// derived from the journal: the release stage appends what each durable
// batch says, and at start the node replays the journal from the oldest
// snapshot it keeps through Observe, so a restart rebuilds the same
// messages, byte for byte.

// streamKey names one session's stream.
type streamKey struct {
	acct engine.AccountID
	name engine.SessionID
}

// stream is one session's retained messages (under Server.mu).
type stream struct {
	key   streamKey
	last  uint64  // number of the last message of the stream (0: none yet)
	first uint64  // number of the first retained message (offs[0])
	buf   []byte  // the retained frames, back to back
	offs  []int32 // where each retained message starts in buf
	live  *session
}

// retained is how many messages the stream holds.
func (st *stream) retained() int { return len(st.offs) }

// add appends message msg. A message that does not follow the last one
// (the retention rebuilt at start begins in the middle of a stream)
// starts the retention afresh there.
func (st *stream) add(msg uint64, f []byte) int {
	grew := len(f)
	if msg != st.last+1 || len(st.offs) == 0 {
		grew -= len(st.buf)
		st.buf, st.offs, st.first = st.buf[:0], st.offs[:0], msg
	}
	st.offs = append(st.offs, int32(len(st.buf)))
	st.buf = append(st.buf, f...)
	st.last = msg
	return grew
}

// trim keeps the newest keep messages and returns the bytes it freed.
func (st *stream) trim(keep int) int {
	drop := len(st.offs) - keep
	if drop <= 0 {
		return 0
	}
	if keep == 0 {
		n := len(st.buf)
		st.buf, st.offs, st.first = nil, nil, st.last+1
		return n
	}
	cut := int(st.offs[drop])
	n := copy(st.buf, st.buf[cut:])
	st.buf = st.buf[:n]
	n = copy(st.offs, st.offs[drop:])
	st.offs = st.offs[:n]
	for i := range st.offs {
		st.offs[i] -= int32(cut)
	}
	st.first += uint64(drop)
	if cap(st.buf) > 4*len(st.buf)+64<<10 {
		st.buf = append([]byte(nil), st.buf...) // give a spike back
	}
	return cut
}

// frames returns the frames of messages from up to at most max bytes
// (at least one message), aliasing the stream's buffer, and the number of
// the message after the last returned. from must be retained.
func (st *stream) frames(from uint64, max int) ([]byte, uint64) {
	i := int(from - st.first)
	start := int(st.offs[i])
	j := i + 1
	for j < len(st.offs) && int(st.offs[j])-start < max {
		j++
	}
	end := len(st.buf)
	if j < len(st.offs) {
		end = int(st.offs[j])
	}
	return st.buf[start:end], st.first + uint64(j)
}

// streams is every session's stream (under Server.mu).
type streams struct {
	byKey  map[streamKey]*stream
	count  map[engine.AccountID]int
	bytes  int64 // retained in all streams
	keep   int   // messages retained per stream
	budget int64 // bytes retained in all streams
}

func newStreams(keep int, budget int64) streams {
	return streams{byKey: map[streamKey]*stream{}, count: map[engine.AccountID]int{}, keep: keep, budget: budget}
}

// get returns the stream of k, making it if make is set.
func (ss *streams) get(k streamKey, create bool) *stream {
	st := ss.byKey[k]
	if st == nil && create {
		st = &stream{key: k, first: 1}
		ss.byKey[k] = st
		ss.count[k.acct]++
	}
	return st
}

// add appends message msg of k's stream and keeps the retention bounds:
// keep messages per stream (trimmed a quarter past it, so trimming costs
// little per message), budget bytes in all (the largest stream is halved
// while they are passed).
func (ss *streams) add(k streamKey, msg uint64, f []byte) *stream {
	st := ss.get(k, true)
	ss.bytes += int64(st.add(msg, f))
	if st.retained() > ss.keep+ss.keep/4 {
		ss.bytes -= int64(st.trim(ss.keep))
	}
	for ss.bytes > ss.budget {
		var big *stream
		for _, o := range ss.byKey {
			if big == nil || len(o.buf) > len(big.buf) {
				big = o
			}
		}
		ss.bytes -= int64(big.trim(big.retained() / 2))
	}
	return st
}

// seed makes sure the stream of every session the engine knows exists and
// ends at the engine's last message number (the journal replayed at start
// may begin after a session's last message).
func (ss *streams) seed(infos []engine.SessionInfo) {
	for _, in := range infos {
		if in.Session == 0 {
			continue // unnamed: no stream
		}
		st := ss.get(streamKey{in.Account, in.Session}, true)
		if st.last != in.Msgs {
			ss.bytes -= int64(len(st.buf))
			st.buf, st.offs, st.last, st.first = nil, nil, in.Msgs, in.Msgs+1
		}
	}
}

// putFunc takes one session message: the stream it belongs to, its
// number, the frame (valid only during the call), and whether it answers
// the command (rather than telling what happened to one of the session's
// orders).
type putFunc func(k streamKey, msg uint64, f []byte, answer bool)

// encodeStream encodes the session messages among one command's events
// and calls put with each. The command's last message to its own session
// carries wire.FlagEndOfCommand. Messages of unnamed sessions (session 0)
// carry number 0: they form no stream a client could resume. It is the
// one encoding of the streams, used live (Deliver) and at start
// (Observe), so both make the same bytes.
func encodeStream(c *engine.Command, evs []engine.Event, scratch, maker []byte, put putFunc) ([]byte, []byte) {
	own := streamKey{c.Account, c.Session}
	lastOwn := -1
	for j := range evs {
		if ev := &evs[j]; ev.SessSeq != 0 && ev.Account == c.Account && ev.Session == c.Session {
			lastOwn = j
		}
	}
	for j := range evs {
		ev := &evs[j]
		if ev.SessSeq == 0 && ev.MakerSessSeq == 0 {
			continue // market data, or a reject of a session that could not be opened
		}
		rep := wire.Report{Msg: numbered(ev.Session, ev.SessSeq), Seq: ev.Seq, Time: ev.Time, OrderID: ev.OrderID, Ref: ev.Ref}
		if j == lastOwn {
			rep.Flags = wire.FlagEndOfCommand
		}
		f := scratch[:0]
		switch ev.Kind {
		case engine.EvAccepted:
			f = (&wire.Accepted{Report: rep, Instrument: ev.Instrument, Side: ev.Side, Type: c.Type,
				TIF: c.TIF, STP: c.STP, Price: ev.Price, Qty: ev.Qty}).Append(f)
		case engine.EvRejected:
			reason := engine.RejectReason(ev.Reason)
			if reason == engine.RejectNotOwner {
				// Another account's live order is answered as if it did
				// not exist, so ids cannot be probed (the engine and the
				// metrics keep the difference).
				reason = engine.RejectUnknownOrder
			}
			f = (&wire.Rejected{Report: rep, Reason: reason}).Append(f)
		case engine.EvFill:
			f = (&wire.Executed{Report: rep, Trade: ev.TradeID, Price: ev.Price, Qty: ev.Qty,
				Leaves: ev.Leaves, Liquidity: wire.LiquidityRemoved}).Append(f)
			mrep := wire.Report{Msg: numbered(ev.MakerSession, ev.MakerSessSeq), Seq: ev.Seq, Time: ev.Time, OrderID: ev.MakerOrder, Ref: ev.MakerRef}
			maker = (&wire.Executed{Report: mrep, Trade: ev.TradeID, Price: ev.Price, Qty: ev.Qty,
				Leaves: ev.MakerLeaves, Liquidity: wire.LiquidityAdded}).Append(maker[:0])
			put(streamKey{ev.MakerAccount, ev.MakerSession}, ev.MakerSessSeq, maker, false)
		case engine.EvCanceled:
			f = (&wire.Canceled{Report: rep, Qty: ev.Qty, Reason: engine.CancelReason(ev.Reason)}).Append(f)
		case engine.EvReplaced:
			f = (&wire.Replaced{Report: rep, OrigRef: ev.OrigRef, Price: ev.Price, Qty: ev.Qty, Leaves: ev.Leaves}).Append(f)
		case engine.EvMassCanceled:
			rep.OrderID, rep.Ref = 0, 0
			f = (&wire.MassCanceled{Report: rep, Instrument: ev.Instrument, Count: uint32(ev.Qty)}).Append(f)
		default:
			continue
		}
		k := streamKey{ev.Account, ev.Session}
		// An answer to the command: it names the command's own order
		// (not a resting order it traded with or canceled on the way).
		answer := k == own && (ev.Kind != engine.EvFill && ev.Kind != engine.EvCanceled || ev.OrderID == firstOrder(c, evs))
		put(k, ev.SessSeq, f, answer)
		scratch = f
	}
	return scratch, maker
}

// numbered is a message's number on the wire: 0 for unnamed sessions.
func numbered(s engine.SessionID, msg uint64) uint64 {
	if s == 0 {
		return 0
	}
	return msg
}

// firstOrder is the order a command is about: the one it names, or the
// one it entered.
func firstOrder(c *engine.Command, evs []engine.Event) engine.OrderID {
	if c.OrderID != 0 || c.Kind != engine.CmdNewOrder {
		return c.OrderID
	}
	for j := range evs {
		if evs[j].Kind == engine.EvAccepted {
			return evs[j].OrderID
		}
	}
	return 0
}

// Observe adds one replayed command's session messages to the streams.
// The node calls it for every command recovery replays, before the
// server serves; then Seed.
func (s *Server) Observe(c *engine.Command, evs []engine.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scratch, s.makerScratch = encodeStream(c, evs, s.scratch, s.makerScratch, func(k streamKey, msg uint64, f []byte, _ bool) {
		if k.name != 0 {
			s.streams.add(k, msg, f)
		}
	})
	for j := range evs {
		if k := evs[j].Kind; k == engine.EvFill || k == engine.EvLevel {
			s.feed.publish(&evs[j]) // no subscribers yet: kept for those that resume
		}
	}
}

// Seed tells the server every session the recovered engine knows, so that
// a session whose messages all predate the replayed journal still resumes
// at the right number.
func (s *Server) Seed(infos []engine.SessionInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams.seed(infos)
}
