package api

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// This file is what runs on a session's writer goroutine, and the
// session's outbound queue that the release stage and the reader fill.
//
// The release stage writes a session's frames straight to its socket when
// nothing is queued and the writer is not writing (a non-blocking write:
// it never waits for a slow client); whatever the socket does not take at
// once is queued, and the writer goroutine is woken only for that, for
// heartbeats and for closing.

// session is one logged-in connection.
type session struct {
	id    uint64
	acct  engine.AccountID
	name  engine.SessionID
	conn  net.Conn
	cod   bool
	limit int
	log   *slog.Logger
	beat  time.Duration

	// Owned by the release stage (under Server.mu): this group commit's
	// frames for the session, sent together at its end: its own frames in
	// pendBuf, market data as references to the feed's shared buffers,
	// in order (pend); and whether the session is on Server.dirty.
	pend    []segment
	pendBuf []byte
	dirty   bool
	feeds   []engine.InstrumentID // subscribed instruments (under Server.mu)
	settled chan struct{}         // closed by Deliver at the session's barrier (under Server.mu)
	// The session's stream, and while replaying the number of the next
	// message the replay sends: Deliver sends the stream's messages only
	// once the replay has caught up (under Server.mu).
	stream    *stream
	replaying bool
	next      uint64

	mu       sync.Mutex
	out      []chunk       // frames waiting for the writer: the session's own, or shared market data
	outOwn   bool          // the last chunk of out is the session's own (it may grow)
	held     int           // bytes the session holds for its client: out and the write in progress
	total    *atomic.Int64 // what all sessions hold, each shared buffer counted once
	spareQ   []chunk       // the chunk list, written, for reuse
	spare    []byte        // an own chunk, written, for reuse
	bufs     net.Buffers   // the writer's list of the chunks it writes
	inFlight []chunk       // the chunks the writer is writing (under mu)
	writing  bool          // the writer has taken out and is writing it
	lastSent int64         // when something was last written to the socket (UnixNano)
	// progress is when the client last took bytes (unix nanoseconds): a
	// write completed, or a direct write took something.
	progress atomic.Int64
	closing  bool  // flush what is queued, then close
	byeWhy   uint8 // the first Goodbye reason queued or meant (0: none)

	// Non-blocking writes from the release stage (under mu): raw is nil
	// for connections that are not sockets (tests).
	raw    syscall.RawConn
	rawBuf []byte
	rawN   int
	rawFn  func(fd uintptr) bool

	// Credit (reader.go): requests submitted and not yet answered, and
	// open-orders queries not yet answered to their last page.
	inflight   atomic.Int64
	paged      atomic.Int32
	creditWake chan struct{} // Deliver wakes a reader waiting for credit
	waiting    atomic.Bool   // the reader waits for credit
	credit     int64

	wake    chan struct{}
	ended   chan struct{} // closed when the connection's goroutine has finished with it
	done    chan struct{} // closed when the writer has finished
	stopped atomic.Bool   // set when the writer has finished
}

// newSession returns a session on c, its writer not yet started.
func newSession(id uint64, acct engine.AccountID, c net.Conn, cod bool, cfg *Config, total *atomic.Int64) *session {
	ss := &session{id: id, acct: acct, conn: c, log: cfg.Logger, cod: cod, limit: cfg.OutboundLimit,
		beat: cfg.Heartbeat, wake: make(chan struct{}, 1), done: make(chan struct{}), ended: make(chan struct{}), total: total,
		creditWake: make(chan struct{}, 1), credit: int64(cfg.SessionCredit)}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			ss.raw = raw
			ss.rawFn = ss.rawWrite
		}
	}
	return ss
}

// returnCredit counts one of the session's requests answered (on the
// release stage), waking its reader, if it waits for credit, every 64
// answers (waking it only at half its credit left the pipeline half empty
// for a client that keeps it full: 4 pipelining connections got 0.59–0.65
// M orders/s instead of 0.78–0.90). It reports whether the session has
// nothing left in the pipeline.
func (ss *session) returnCredit() bool {
	n := ss.inflight.Add(-1)
	if ss.waiting.Load() && n%64 == 0 {
		select {
		case ss.creditWake <- struct{}{}:
		default:
		}
	}
	return n == 0
}

// pagedDone counts an open-orders query answered to its last page.
func (ss *session) pagedDone() {
	ss.paged.Add(-1)
	select {
	case ss.creditWake <- struct{}{}:
	default:
	}
}

// rawWrite is the body of a non-blocking write: one write(2) of rawBuf,
// never waiting for the socket to become writable.
func (ss *session) rawWrite(fd uintptr) bool {
	n, err := syscall.Write(int(fd), ss.rawBuf)
	if err != nil || n < 0 {
		n = 0 // EAGAIN: the socket is full; anything else: the writer will see it
	}
	ss.rawN = n
	return true
}

// tryWrite writes as much of frames as the socket takes at once and
// returns how much that was (under mu).
func (ss *session) tryWrite(frames []byte) int {
	if ss.raw == nil {
		return 0
	}
	ss.rawBuf, ss.rawN = frames, 0
	if err := ss.raw.Write(ss.rawFn); err != nil {
		ss.rawN = 0
	}
	ss.rawBuf = nil
	if ss.rawN > 0 {
		now := time.Now().UnixNano()
		ss.lastSent = now
		ss.progress.Store(now)
	}
	return ss.rawN
}

// segment is a piece of what a session is sent: the session's own bytes
// (pendBuf[off:off+n]), a shared buffer's (sh.b[off:off+n]), or bytes of
// its stream's chunks (ext: valid until the group commit's flush, which
// copies what the socket does not take at once).
type segment struct {
	sh     *shared
	off, n int
	ext    []byte
}

// chunk is a piece of a session's outbound queue: its own bytes, or part
// of a shared buffer it holds a reference to.
type chunk struct {
	b  []byte
	sh *shared
}

// shared is a buffer of market data every subscriber of an instrument is
// sent by reference: written once by the feed, never changed. It counts
// in the server's outbound total once, while any session holds it.
type shared struct {
	b     []byte
	refs  atomic.Int32
	total *atomic.Int64
}

func (sh *shared) ref() {
	if sh.refs.Add(1) == 1 {
		sh.total.Add(int64(len(sh.b)))
	}
}

func (sh *shared) unref() {
	if sh.refs.Add(-1) == 0 {
		sh.total.Add(-int64(len(sh.b)))
	}
}

// send delivers one or more whole frames of the session's own: see
// sendSegments.
func (ss *session) send(frames []byte) bool {
	return ss.sendSegments(frames, []segment{{off: 0, n: len(frames)}})
}

// sendSegments delivers whole frames, the segments of own in order
// (those with b set are shared buffers, the others ranges of own):
// straight to the socket if nothing is queued before them and it takes
// them, queued for the writer otherwise, shared buffers by reference (a
// slow subscriber holds no copy of the market data). It reports false if
// the session is closing or has just been cut off as a slow consumer.
func (ss *session) sendSegments(own []byte, segs []segment) bool {
	total := 0
	for _, sg := range segs {
		total += sg.n + len(sg.ext)
	}
	ss.mu.Lock()
	if ss.closing {
		ss.mu.Unlock()
		return false
	}
	// The limit is on everything the session holds (what waits and what
	// is being written): one answer larger than it (a page of open
	// orders) is still taken whole if nothing else is held.
	if ss.held > 0 && ss.held+total > ss.limit {
		ss.cutLocked(wire.ByeSlowConsumer)
		ss.mu.Unlock()
		ss.log.Warn("api: disconnecting slow consumer", "session", ss.id, "account", ss.acct)
		ss.signal()
		return false
	}
	direct := len(ss.out) == 0 && !ss.writing
	queued := false
	for _, sg := range segs {
		var data []byte
		switch {
		case sg.ext != nil:
			data = sg.ext
		case sg.sh != nil:
			data = sg.sh.b[sg.off : sg.off+sg.n]
		default:
			data = own[sg.off : sg.off+sg.n]
		}
		if direct {
			data = data[ss.tryWrite(data):]
			direct = len(data) == 0
		}
		if len(data) == 0 {
			continue
		}
		queued = true
		if sg.sh != nil {
			ss.appendShared(sg.sh, data)
		} else {
			ss.appendLocked(data)
		}
	}
	ss.mu.Unlock()
	if queued {
		ss.signal()
	}
	return true
}

// appendLocked queues frames of the session's own for the writer (a copy)
// and counts them as held (under mu).
func (ss *session) appendLocked(frames []byte) {
	if ss.outOwn && len(ss.out) > 0 {
		last := &ss.out[len(ss.out)-1]
		last.b = append(last.b, frames...)
	} else {
		buf := ss.spare
		ss.spare = nil
		if buf == nil {
			buf = make([]byte, 0, max(len(frames), 512))
		}
		ss.out = append(ss.out, chunk{b: append(buf[:0], frames...)})
		ss.outOwn = true
	}
	ss.hold(len(frames))
}

// appendShared queues part of a shared buffer by reference (under mu).
func (ss *session) appendShared(sh *shared, frames []byte) {
	ss.out = append(ss.out, chunk{b: frames, sh: sh})
	ss.outOwn = false
	sh.ref()
	ss.held += len(frames)
}

// hold counts n more (or, negative, fewer) bytes of the session's own
// held (under mu).
func (ss *session) hold(n int) {
	ss.held += n
	if ss.total != nil {
		ss.total.Add(int64(n))
	}
}

// release lets go of written or dropped chunks (under mu): own bytes are
// no longer held, shared buffers lose a reference. It returns the bytes.
func (ss *session) release(chunks []chunk) int {
	n := 0
	for _, c := range chunks {
		n += len(c.b)
		if c.sh != nil {
			ss.held -= len(c.b)
			c.sh.unref()
		} else {
			ss.hold(-len(c.b))
		}
	}
	return n
}

// cutLocked drops what the session holds and closes it after a Goodbye
// (under mu): a slow consumer, or the worst offender when the server's
// outbound budget is spent. A write in progress is abandoned at once.
func (ss *session) cutLocked(reason uint8) {
	ss.closing = true
	ss.byeWhy = reason
	ss.release(ss.out)
	ss.out, ss.outOwn = nil, false
	ss.appendLocked(wire.AppendReason(nil, wire.TypeGoodbye, reason))
	if ss.writing {
		ss.conn.SetWriteDeadline(time.Now()) // the writer's write fails and it closes
	}
}

// heldBytes returns what the session holds.
func (ss *session) heldBytes() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.held
}

// cut is cutLocked for callers that do not hold mu.
func (ss *session) cut(reason uint8) {
	ss.mu.Lock()
	if !ss.closing {
		ss.cutLocked(reason)
	}
	ss.mu.Unlock()
	ss.signal()
}

// recycle keeps written chunks for reuse (under mu): the list, and an
// own chunk unless a spike made it large. Shared chunks are only let go:
// no one may write into them.
func (ss *session) recycle(chunks []chunk) {
	for _, c := range chunks {
		if c.sh == nil && ss.spare == nil && cap(c.b) <= spareMax {
			ss.spare = c.b[:0]
		}
	}
	clear(chunks)
	if cap(chunks) <= 1024 {
		ss.spareQ = chunks[:0]
	}
}

// spareMax is the largest buffer a session keeps for reuse once written:
// a spike (a long answer, a burst of market data) is given back.
const spareMax = 256 << 10

// isClosing reports whether the session is closing.
func (ss *session) isClosing() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.closing
}

// bye queues a Goodbye and closes the session once it is written.
func (ss *session) bye(reason uint8) {
	ss.mu.Lock()
	if !ss.closing {
		ss.appendLocked(wire.AppendReason(nil, wire.TypeGoodbye, reason))
		ss.closing = true
		ss.byeWhy = reason
	}
	ss.mu.Unlock()
	ss.signal()
}

func (ss *session) signal() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// writer flushes queued frames with one write each time, sends heartbeats
// when idle, and once closing and flushed, shuts its side of the
// connection (the session's goroutine closes it, see linger). If a write
// fails it closes the connection at once.
func (ss *session) writer() {
	defer close(ss.done)
	defer func() { // stop the reader too, and give back what is held
		ss.mu.Lock()
		ss.release(ss.out)
		ss.release(ss.inFlight)
		ss.out, ss.outOwn, ss.spareQ, ss.spare, ss.inFlight = nil, false, nil, nil, nil
		ss.mu.Unlock()
		ss.stopped.Store(true)
		ss.conn.SetReadDeadline(time.Now())
	}()
	// The heartbeat timer fires when the socket has been silent for beat
	// since the last write (the writer's or the release stage's).
	hb := time.NewTimer(ss.beat)
	defer hb.Stop()
	ss.mu.Lock()
	ss.lastSent = time.Now().UnixNano()
	ss.mu.Unlock()
	for {
		select {
		case <-ss.wake:
		case <-hb.C:
			ss.mu.Lock()
			silent := time.Duration(time.Now().UnixNano() - ss.lastSent)
			next := ss.beat - silent
			if silent >= ss.beat {
				next = ss.beat
				if len(ss.out) == 0 && !ss.closing {
					ss.appendLocked(wire.AppendEmpty(nil, wire.TypeHeartbeat))
				}
			}
			ss.mu.Unlock()
			hb.Reset(next)
		}
		ss.mu.Lock()
		chunks, closing := ss.out, ss.closing
		ss.out, ss.outOwn = ss.spareQ[:0], false
		ss.spareQ, ss.inFlight = nil, chunks
		ss.writing = len(chunks) > 0
		ss.mu.Unlock()
		ss.bufs = ss.bufs[:0]
		for _, c := range chunks {
			ss.bufs = append(ss.bufs, c.b)
		}
		if len(chunks) > 0 {
			ss.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			bufs := ss.bufs // WriteTo consumes its copy of the list
			if _, err := bufs.WriteTo(ss.conn); err != nil {
				ss.mu.Lock()
				ss.closing = true
				if isTimeout(err) && ss.byeWhy == 0 {
					ss.byeWhy = wire.ByeSlowConsumer
				}
				ss.mu.Unlock()
				if isTimeout(err) {
					ss.log.Warn("api: disconnecting slow consumer: write timed out", "session", ss.id, "account", ss.acct)
				}
				ss.conn.Close()
				return
			}
			ss.mu.Lock()
			ss.lastSent = time.Now().UnixNano()
			ss.mu.Unlock()
		}
		ss.progress.Store(time.Now().UnixNano())
		clear(ss.bufs)
		ss.mu.Lock()
		ss.release(chunks)
		ss.recycle(chunks)
		ss.inFlight = nil
		ss.writing = false
		if ss.waiting.Load() { // its reader waits for the backlog to shrink
			select {
			case ss.creditWake <- struct{}{}:
			default:
			}
		}
		more := len(ss.out) > 0
		ss.mu.Unlock()
		if more {
			ss.signal() // queued while this write ran
		}
		if closing && !more {
			if tc, ok := ss.conn.(*net.TCPConn); ok {
				tc.CloseWrite() // FIN after the last frame
			}
			return
		}
	}
}

// lingerTime bounds how long a closed session's connection is drained.
const lingerTime = 2 * time.Second

// linger closes a session's connection after its writer is done, reading
// and discarding what the client still sends (for up to lingerTime) until
// it closes its side. Closing a socket with unread input makes the kernel
// reset the connection, and a reset can destroy responses the client has
// not read yet: the last acknowledgments before a Goodbye.
func linger(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(lingerTime))
	var buf [4096]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			break
		}
	}
	c.Close()
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}
