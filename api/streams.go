package api

import (
	"slices"

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

// hash mixes the key's bits (a multiply and shifts: the key is two
// integers, no bytes to walk).
func (k streamKey) hash() uint64 {
	h := (uint64(k.acct)*0x9e3779b97f4a7c15 ^ uint64(k.name)) * 0xbf58476d1ce4e5b9
	return h ^ h>>31
}

// stream is one session's retained messages (under Server.mu), in
// chunks: trimming drops whole chunks from the front and never copies a
// retained message.
type stream struct {
	key    streamKey
	last   uint64 // number of the last message of the stream (0: none yet)
	first  uint64 // number of the first retained message
	chunks []*streamChunk
	n      int          // messages retained
	spare  *streamChunk // a chunk trimmed off, for reuse: steady state allocates nothing
	live   *session
	// A session's stream (owner set) keeps the chunks it trims until
	// owner.release: the connection's queue may refer to their bytes
	// until the group commit's flush. The feed's retention recycles at once.
	owner   *streams
	retired []*streamChunk
	refs    []refEntry // the session's references and their orders, increasing (history.go)
}

// streamChunk is a run of consecutive messages, back to back in buf.
type streamChunk struct {
	first uint64  // number of offs[0]'s message
	buf   []byte  // the frames
	offs  []int32 // where each starts in buf
}

// chunkBytes is the most a stream chunk grows to.
const chunkBytes = 64 << 10

// retained is how many messages the stream holds.
func (st *stream) retained() int { return st.n }

// size is the bytes the stream's chunks hold.
func (st *stream) size() int {
	n := 0
	for _, c := range st.chunks {
		n += len(c.buf)
	}
	return n
}

// add appends message msg and returns the bytes retained grew by. A
// message that does not follow the last one (the retention rebuilt at
// start begins in the middle of a stream) starts the retention afresh
// there.
func (st *stream) add(msg uint64, f []byte) int {
	grew := len(f)
	if msg != st.last+1 || st.n == 0 {
		grew -= st.size()
		for i, c := range st.chunks {
			st.retire(c)
			st.chunks[i] = nil
		}
		st.chunks, st.n, st.first = st.chunks[:0], 0, msg
	}
	var c *streamChunk
	if k := len(st.chunks); k > 0 && len(st.chunks[k-1].buf)+len(f) <= chunkBytes {
		c = st.chunks[k-1]
	} else {
		if c = st.spare; c != nil && cap(c.buf) >= len(f) {
			st.spare = nil
		} else {
			c = &streamChunk{buf: make([]byte, 0, min(chunkBytes, max(4<<10, 2*len(f))))}
			if k > 0 {
				c.buf = make([]byte, 0, max(chunkBytes, len(f)))
			}
		}
		c.first = msg
		st.chunks = append(st.chunks, c)
	}
	c.offs = append(c.offs, int32(len(c.buf)))
	c.buf = append(c.buf, f...)
	st.n++
	st.last = msg
	return grew
}

// trim drops the oldest chunks while at least keep messages remain
// without them, and returns the bytes it freed.
func (st *stream) trim(keep int) int {
	freed := 0
	for len(st.chunks) > 0 && (keep == 0 || st.n-len(st.chunks[0].offs) >= keep) {
		c := st.chunks[0]
		st.chunks[0] = nil
		st.chunks = st.chunks[1:]
		st.n -= len(c.offs)
		freed += len(c.buf)
		st.retire(c)
	}
	if len(st.chunks) > 0 {
		st.first = st.chunks[0].first
	} else {
		st.first = st.last + 1
	}
	return freed
}

// retire lets go of a trimmed chunk: kept until the owner's release for
// a session's stream, recycled at once otherwise.
func (st *stream) retire(c *streamChunk) {
	if st.owner == nil {
		st.recycle(c)
		return
	}
	if len(st.retired) == 0 {
		st.owner.retiring = append(st.owner.retiring, st)
	}
	st.retired = append(st.retired, c)
}

// recycle keeps c, emptied, as the spare chunk if there is none (or a
// larger one than the spare).
func (st *stream) recycle(c *streamChunk) {
	if st.spare == nil || cap(c.buf) > cap(st.spare.buf) {
		c.buf, c.offs = c.buf[:0], c.offs[:0]
		st.spare = c
	}
}

// frames returns the frames of messages from on, up to max bytes (at
// least one message) and within one chunk, aliasing the stream's
// buffers, and the number of the message after the last returned. from
// must be retained.
func (st *stream) frames(from uint64, max int) ([]byte, uint64) {
	k, _ := slices.BinarySearchFunc(st.chunks, from, func(c *streamChunk, m uint64) int {
		if c.first+uint64(len(c.offs)) <= m {
			return -1
		}
		if c.first > m {
			return 1
		}
		return 0
	})
	c := st.chunks[k]
	i := int(from - c.first)
	start := int(c.offs[i])
	j := i + 1
	for j < len(c.offs) && int(c.offs[j])-start < max {
		j++
	}
	end := len(c.buf)
	if j < len(c.offs) {
		end = int(c.offs[j])
	}
	return c.buf[start:end], c.first + uint64(j)
}

// bytesFrom is how many bytes the retained messages from on hold.
func (st *stream) bytesFrom(from uint64) int {
	n := 0
	for _, c := range st.chunks {
		switch {
		case c.first+uint64(len(c.offs)) <= from:
		case c.first >= from:
			n += len(c.buf)
		default:
			n += len(c.buf) - int(c.offs[from-c.first])
		}
	}
	return n
}

// streams is every session's stream (under Server.mu).
type streams struct {
	table []*stream // open addressing by streamKey.hash (a Go map's generic hashing of the key was 9 % of the server)
	all   []*stream
	count map[engine.AccountID]int
	bytes int64 // retained in all streams
	// streams holding trimmed chunks until release
	retiring []*stream
	keep     int   // messages retained per stream
	budget   int64 // bytes retained in all streams
}

func newStreams(keep int, budget int64) streams {
	return streams{table: make([]*stream, 64), count: map[engine.AccountID]int{}, keep: keep, budget: budget}
}

// get returns the stream of k, making it if make is set.
func (ss *streams) get(k streamKey, create bool) *stream {
	mask := uint64(len(ss.table) - 1)
	i := k.hash() & mask
	for ; ss.table[i] != nil; i = (i + 1) & mask {
		if ss.table[i].key == k {
			return ss.table[i]
		}
	}
	if !create {
		return nil
	}
	st := &stream{key: k, first: 1, owner: ss}
	ss.table[i] = st
	ss.all = append(ss.all, st)
	ss.count[k.acct]++
	if 2*len(ss.all) > len(ss.table) { // keep it at most half full
		ss.table = make([]*stream, 2*len(ss.table))
		for _, o := range ss.all {
			j := o.key.hash() & uint64(len(ss.table)-1)
			for ss.table[j] != nil {
				j = (j + 1) & uint64(len(ss.table)-1)
			}
			ss.table[j] = o
		}
	}
	return st
}

// release recycles the chunks the streams trimmed: nothing refers to
// them any more (after a flush, or outside Deliver).
func (ss *streams) release() {
	for _, st := range ss.retiring {
		for i, c := range st.retired {
			st.recycle(c)
			st.retired[i] = nil
		}
		st.retired = st.retired[:0]
	}
	clear(ss.retiring)
	ss.retiring = ss.retiring[:0]
}

// add appends message msg of k's stream and keeps the retention bounds:
// keep messages per stream (trimmed a quarter past it, so trimming costs
// little per message), budget bytes in all (the largest stream is halved
// while they are passed).
func (ss *streams) add(k streamKey, msg uint64, f []byte) *stream {
	st := ss.get(k, true)
	ss.bytes += int64(st.add(msg, f))
	if st.retained() > ss.keep+chunkBytes/32 {
		ss.bytes -= int64(st.trim(ss.keep))
	}
	for ss.bytes > ss.budget {
		var big *stream
		for _, o := range ss.all {
			if big == nil || o.retained() > big.retained() {
				big = o
			}
		}
		freed := big.trim(big.retained() / 2)
		if freed == 0 {
			freed = big.trim(0) // one chunk: all of it
		}
		if freed == 0 {
			break
		}
		ss.bytes -= int64(freed)
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
			ss.bytes -= int64(st.size())
			st.chunks, st.n, st.last, st.first = nil, 0, in.Msgs, in.Msgs+1
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
	about := c.OrderID // the order the command is about: the one it names or enters
	if c.Kind == engine.CmdNewOrder && len(evs) > 0 && evs[0].Kind == engine.EvAccepted {
		about = evs[0].OrderID
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
		case engine.EvTriggered:
			f = (&wire.Triggered{Report: rep, Instrument: ev.Instrument, Side: ev.Side, Price: ev.Price, Qty: ev.Qty}).Append(f)
		case engine.EvPhase:
			rep.OrderID, rep.Ref = 0, 0
			f = (&wire.PhaseChanged{Report: rep, Instrument: ev.Instrument, Phase: engine.Phase(ev.Reason)}).Append(f)
		default:
			continue
		}
		k := streamKey{ev.Account, ev.Session}
		// An answer to the command: it names the command's own order
		// (not a resting order it traded with or canceled on the way).
		// A trigger is never one: it is what happens to a parked order.
		answer := k == own && ev.Kind != engine.EvTriggered &&
			(ev.Kind != engine.EvFill && ev.Kind != engine.EvCanceled || ev.OrderID == about)
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

// Observe adds one replayed command's session messages to the streams.
// The node calls it for every command recovery replays, before the
// server serves; then Seed.
func (s *Server) Observe(c *engine.Command, evs []engine.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.derive(c, evs)    // no connection or subscriber yet: only kept
	s.streams.release() // nothing refers to trimmed chunks
}

// derive takes one command's events into everything derived from them:
// the sessions' streams (and their connections, s.cur being the one that
// sent the command), the order history and the market data feed (under
// mu). Deliver and Observe both use it, so the live server and a restart
// derive the same.
func (s *Server) derive(c *engine.Command, evs []engine.Event) {
	s.scratch, s.makerScratch = encodeStream(c, evs, s.scratch, s.makerScratch, s.putFn)
	s.hist.apply(c, evs)
	for j := range evs {
		if evs[j].FeedSeq != 0 { // trades, level changes, phases, indicative prices
			s.feed.publish(&evs[j])
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
