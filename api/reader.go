package api

import (
	"container/list"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/pipeline"
)

// This file is what runs on a connection's own goroutine: login, then the
// session's read loop, which decodes frames in place and submits them to
// the pipeline's ring in batches, and finally the session's end.

func (s *Server) serveConn(c net.Conn, pre *list.Element) {
	defer s.wg.Done()
	defer s.conns.Add(-1)
	loggedIn := false
	defer func() {
		if !loggedIn {
			s.adm.done(pre)
		}
	}()
	rd := wire.NewReader(c, wire.MaxClientFrame, preLoginBuffer)
	c.SetReadDeadline(time.Now().Add(s.cfg.LoginTimeout))
	reject := func(typ byte, reason uint8) {
		if typ == wire.TypeLoginRejected {
			s.stats.disconnects[CauseLoginRejected].Add(1)
		} else {
			s.stats.disconnects[reason].Add(1)
		}
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(wire.AppendReason(nil, typ, reason))
		c.Close()
	}
	typ, body, err := rd.Next()
	switch {
	case isTimeout(err):
		reject(wire.TypeGoodbye, wire.ByeLoginTimeout)
		return
	case err != nil && errors.Is(err, net.ErrClosed):
		s.stats.disconnects[CauseEvicted].Add(1) // closed by Serve to make room
		return
	case err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		s.stats.disconnects[CauseClosed].Add(1)
		c.Close()
		return
	case err != nil:
		reject(wire.TypeGoodbye, wire.ByeMalformed)
		return
	case typ != wire.TypeLogin:
		reject(wire.TypeGoodbye, wire.ByeNotLoggedIn)
		return
	}
	var login wire.Login
	login.Decode(body)
	if login.Version != wire.Version {
		reject(wire.TypeLoginRejected, wire.LoginBadVersion)
		return
	}
	addr := hostOf(c.RemoteAddr())
	now := time.Now()
	if s.adm.throttled(login.Account, addr, now) {
		// Refused without looking at the token: guessing gains nothing.
		s.stats.disconnects[CauseLoginThrottled].Add(1)
		refuse(c, wire.LoginRetryLater)
		return
	}
	tok := login.Token[:]
	for len(tok) > 0 && tok[len(tok)-1] == 0 {
		tok = tok[:len(tok)-1]
	}
	want, known := s.tokens[login.Account]
	got := sha256.Sum256(tok)
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 || !known {
		s.adm.failed(login.Account, addr, now)
		s.stats.loginFailures.Add(1)
		s.logs.warn(s.log, "login", "api: login rejected (logged at most once a second)", "account", login.Account,
			"remote", c.RemoteAddr().String(), "failures_total", s.stats.loginFailures.Load())
		reject(wire.TypeLoginRejected, wire.LoginBadCredentials)
		return
	}
	s.adm.succeeded(login.Account, addr)
	if f := s.leadership.Load(); f != nil {
		if lead, id, at := (*f)(); !lead {
			// A replica that does not lead: the client goes to the leader.
			s.stats.disconnects[CauseLoginRejected].Add(1)
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write((&wire.NotLeader{Leader: id, Addr: at}).Append(nil))
			c.Close()
			return
		}
	}
	name := login.Session
	if name != (wire.SessionName{}) && !name.Valid() || name == (wire.SessionName{}) && login.Next != 0 {
		reject(wire.TypeLoginRejected, wire.LoginBadSession)
		return
	}
	ss := newSession(uint64(s.nextID.Add(1)), login.Account, c, login.Flags&wire.FlagCancelOnDisconnect != 0, &s.cfg, &s.outQueued)
	ss.name = name.ID()
	if refused := s.attach(ss, login.Next, login.Flags&wire.FlagTakeOver != 0); refused != 0 {
		reject(wire.TypeLoginRejected, refused)
		return
	}
	from := ss.next
	s.adm.done(pre)
	loggedIn = true
	rd.Grow(wire.MaxClientFrame, 64<<10)
	s.stats.sessions.Add(1)
	go ss.writer()
	if ss.replaying {
		go s.replay(ss)
	}
	ss.signal()
	if s.closing.Load() {
		// Shutdown may have said goodbye to everyone just before this
		// session became visible to it.
		ss.bye(wire.ByeShutdown)
	}
	s.log.Info("api: session opened", "connection", ss.id, "session", name.String(), "account", ss.acct,
		"remote", c.RemoteAddr(), "cancel_on_disconnect", ss.cod, "from", from)
	cause := s.readLoop(ss, rd)
	if cause == causeShutdown {
		<-s.drained // everything this session sent is answered
		ss.bye(wire.ByeShutdown)
	}
	ss.mu.Lock()
	why := ss.byeWhy // before the Logout Goodbye below, which is a no-op if one was sent
	ss.mu.Unlock()
	s.stats.disconnects[why].Add(1)
	s.stats.sessions.Add(-1)
	s.mu.Lock()
	delete(s.sessions, ss.id)
	delete(s.byAccount[ss.acct], ss.id)
	s.feed.drop(ss)
	if ss.inflight.Load() > 0 {
		// Its last answers will find no session to return credit to
		// (Deliver holds mu too, so this and they agree).
		s.active.Add(-1)
	}
	current := ss.name == 0 || ss.stream.live == ss // not taken over by a newer connection
	if ss.name != 0 && current {
		ss.stream.live = nil
	}
	s.mu.Unlock()
	if ss.cod && current {
		// Only the orders this session entered; its stream tells the
		// client, when it resumes, what was canceled.
		s.p.Submit(pipeline.Request{Cmd: engine.Command{Kind: engine.CmdMassCancel, Account: ss.acct,
			Session: ss.name, SessionOnly: true}})
	}
	ss.bye(wire.ByeLogout) // no-op if a Goodbye is already queued
	<-ss.done
	linger(c)
	s.log.Info("api: session closed", "connection", ss.id, "session", wire.NameOf(ss.name).String(), "account", ss.acct, "cause", cause)
	close(ss.ended)
}

// attach makes ss the connection of its session, to be sent the
// session's stream from message next (0: only what comes next), or
// answers why not with a LoginRejected reason. A session has one
// connection at a time: a login to a session that has one is refused,
// unless it takes over (the client knows its old connection is gone; the
// server may not have noticed yet), which ends the old connection and
// waits until everything it sent is answered into the stream. Then a
// barrier through the pipeline: whatever any connection of the session
// submitted before this login is in the stream up to LoginAccepted.Last,
// so a client that has read that far and misses an answer knows the
// command never reached the engine. LoginAccepted is queued before ss is
// visible to Deliver, so nothing can overtake it. Unnamed sessions (name
// 0) have no stream and share the account's session 0.
func (s *Server) attach(ss *session, next uint64, takeOver bool) (why uint8) {
	k := streamKey{ss.acct, ss.name}
	if ss.name != 0 {
		s.mu.Lock()
		st := s.streams.get(k, false)
		switch {
		case st == nil && s.streams.count[ss.acct] >= engine.MaxSessionsPerAccount:
			why = wire.LoginTooManySessions
		case st != nil && st.live != nil && !takeOver:
			why = wire.LoginSessionInUse
		case st != nil && next > st.last+1 && st.live == nil:
			// (with a connection still there, its answers may be on the
			// way: checked again below)
			why = wire.LoginAheadOfStream
		case st != nil && next != 0 && next < st.first:
			why = wire.LoginBeforeRetention
		}
		var old *session
		if why == 0 && st != nil {
			old = st.live
			st.live = nil // old's end neither cancels on disconnect nor touches the stream
		}
		s.mu.Unlock()
		if why != 0 {
			return why
		}
		if old != nil {
			s.log.Info("api: session taken over by a new connection", "session", wire.NameOf(ss.name).String(),
				"account", ss.acct, "old", old.id, "new", ss.id)
			old.cut(wire.ByeTakenOver)
			select {
			case <-old.ended:
			case <-time.After(settleWait):
			}
		}
		s.barrier()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &stream{}
	if ss.name != 0 {
		st = s.streams.get(k, false)
		switch {
		case st == nil && s.streams.count[ss.acct] >= engine.MaxSessionsPerAccount:
			return wire.LoginTooManySessions
		case st == nil:
			st = s.streams.get(k, true)
		case st.live != nil && !takeOver:
			return wire.LoginSessionInUse // another login got in first
		}
		switch {
		case next == 0:
			next = st.last + 1
		case next > st.last+1:
			return wire.LoginAheadOfStream
		case next < st.first:
			return wire.LoginBeforeRetention
		}
		if st.live != nil {
			st.live.cut(wire.ByeTakenOver) // a login that got in meanwhile: the newest wins
		}
		st.live = ss
	}
	ss.stream, ss.next, ss.replaying = st, next, next != 0 && next <= st.last
	ss.appendLocked((&wire.LoginAccepted{Connection: ss.id, Version: wire.Version, Session: wire.NameOf(ss.name),
		Next: next, Last: st.last}).Append(nil))
	s.sessions[ss.id] = ss
	if s.byAccount[ss.acct] == nil {
		s.byAccount[ss.acct] = map[uint64]*session{}
	}
	s.byAccount[ss.acct][ss.id] = ss
	return 0
}

// barrier waits until everything submitted before it has been delivered,
// bounded by settleWait and the pipeline's failure.
func (s *Server) barrier() {
	ch := make(chan DepthAnswer, 1)
	id := s.addWaiter(ch)
	defer s.dropWaiter(id)
	if err := s.p.Submit(pipeline.Request{Token: uint64(newRoute(0, id)), Query: pipeline.Query{Kind: pipeline.QueryBarrier}}); err != nil {
		return
	}
	t := time.NewTimer(settleWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-s.p.Failed():
	}
}

// replayChunk is how much of its stream a resuming session is sent at a
// time.
const replayChunk = 64 << 10

// replay sends ss its stream from ss.next until it has caught up, a chunk
// at a time while its client holds less than half its outbound limit;
// then Deliver sends it what follows. A client that reads nothing for the
// idle timeout is cut off, as is one whose place in the stream the
// retention dropped meanwhile.
func (s *Server) replay(ss *session) {
	deadline := time.Now().Add(s.cfg.IdleTimeout)
	for {
		for ss.heldBytes() > ss.limit/2 {
			if ss.isClosing() || ss.stopped.Load() || s.closing.Load() {
				return
			}
			if time.Now().After(deadline) {
				ss.cut(wire.ByeSlowConsumer)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		deadline = time.Now().Add(s.cfg.IdleTimeout)
		s.mu.Lock()
		st := ss.stream
		switch {
		case s.sessions[ss.id] != ss || st.live != ss:
			s.mu.Unlock()
			return
		case ss.next > st.last:
			ss.replaying = false // Deliver sends the rest
			s.mu.Unlock()
			return
		case ss.next < st.first:
			s.mu.Unlock()
			s.log.Warn("api: a resuming session fell behind its stream's retention", "session", wire.NameOf(ss.name).String(),
				"account", ss.acct, "next", ss.next, "first_retained", st.first)
			ss.cut(wire.ByeSlowConsumer)
			return
		}
		f, next := st.frames(ss.next, replayChunk)
		ss.next = next
		ok := ss.send(f)
		s.mu.Unlock()
		if !ok {
			return
		}
	}
}

// readLoop's answers when the server stopped it: Shutdown, or the end of
// the session's writer (a Goodbye sent, or a write failed).
const (
	causeShutdown   = "server shutdown"
	causeWriterDone = "closed by the server"
)

// readLoop reads requests until the session ends and returns why. It
// submits what it decoded whenever the read buffer runs dry (or the batch
// is full), so a client's pipelined frames enter the ring together.
func (s *Server) readLoop(ss *session, rd *wire.Reader) string {
	s.readers.Add(1)
	defer s.readers.Add(-1)
	reqs := make([]pipeline.Request, 0, 64)
	flush := func() bool {
		if len(reqs) > 0 {
			if !s.awaitCredit(ss, len(reqs)) {
				return false
			}
			s.takeCredit(ss, len(reqs))
			if err := s.p.Submit(reqs...); err != nil {
				ss.bye(wire.ByeFailStop)
				return false
			}
			reqs = reqs[:0]
		}
		return true
	}
	var recv int64                 // when the frames being parsed arrived
	var deadline time.Time         // the read deadline last set
	slack := s.cfg.IdleTimeout / 8 // the deadline is renewed only when this much has passed
	for {
		fresh := rd.Buffered() == 0
		if fresh {
			if !flush() {
				return "journal failure"
			}
			now := time.Now()
			if deadline.Sub(now) < s.cfg.IdleTimeout-slack {
				deadline = now.Add(s.cfg.IdleTimeout)
				ss.conn.SetReadDeadline(deadline)
			}
			if s.closing.Load() { // after the deadline: Shutdown's comes later, or this sees it
				return causeShutdown
			}
			if ss.stopped.Load() { // likewise for the writer's
				return causeWriterDone
			}
		}
		typ, body, err := rd.Next()
		if fresh {
			recv = int64(time.Since(s.epoch))
		}
		switch {
		case err == nil:
		case isTimeout(err) && s.closing.Load():
			flush()
			return causeShutdown
		case isTimeout(err) && ss.stopped.Load():
			return causeWriterDone // what it sent since would never be answered
		case isTimeout(err):
			flush()
			ss.bye(wire.ByeIdle)
			return "idle timeout"
		case errors.Is(err, io.EOF):
			// The client closed its sending side (or the whole
			// connection): as a Logout, everything it sent is answered.
			if flush() {
				s.settle(ss)
			}
			ss.bye(wire.ByeLogout)
			return "connection closed"
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
			flush()
			return "connection closed"
		case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrUnknownType),
			errors.Is(err, wire.ErrBadLength), errors.Is(err, wire.ErrEmptyFrame):
			if flush() {
				s.settle(ss)
			}
			ss.bye(wire.ByeMalformed)
			return "malformed frame: " + err.Error()
		default:
			flush()
			return "read error: " + err.Error()
		}
		req, act, why := s.translate(ss, typ, body, recv)
		if act == actSubmit && (req.Query.Kind == pipeline.QueryOpenOrders || req.Query.Kind == pipeline.QueryBook) {
			// At most maxPagedQueries long answers (open orders, book
			// snapshots) at a time per session.
			for ss.paged.Load() >= maxPagedQueries {
				if !flush() || !s.awaitCredit(ss, 0) {
					return "journal failure"
				}
				if s.closing.Load() {
					return causeShutdown
				}
				if ss.stopped.Load() {
					return causeWriterDone
				}
			}
			ss.paged.Add(1)
		}
		switch act {
		case actSubmit:
			reqs = append(reqs, req)
			if len(reqs) == cap(reqs) && !flush() {
				return "journal failure"
			}
		case actLogout:
			if flush() {
				s.settle(ss)
			}
			ss.bye(wire.ByeLogout)
			return why
		case actMalformed:
			if flush() {
				s.settle(ss)
			}
			ss.bye(wire.ByeMalformed)
			return why
		}
	}
}

// maxPagedQueries bounds a session's long answers not yet given: open-
// orders queries not answered to their last page, and subscriptions whose
// book snapshot has not been sent.
const maxPagedQueries = 2

// creditOf is how many requests ss may have in the pipeline: its credit
// while other sessions have requests there too, four times that while it
// is alone (a lone client pipelining gets more throughput, and the
// backlog anyone joining finds is still short).
func (s *Server) creditOf(ss *session) int64 {
	if s.active.Load() > 1 {
		return ss.credit
	}
	return 4 * ss.credit
}

// takeCredit counts n requests of ss about to be submitted, and ss as in
// the pipeline if it had nothing there.
func (s *Server) takeCredit(ss *session, n int) {
	if ss.inflight.Add(int64(n)) == int64(n) {
		s.active.Add(1)
	}
}

// giveCredit counts one request of ss answered (or not submitted after
// all), and ss as out of the pipeline when it was its last.
func (s *Server) giveCredit(ss *session) {
	if ss.returnCredit() {
		s.active.Add(-1)
	}
}

// awaitCredit waits until ss may submit n more requests: no more than
// its credit (creditOf) in the pipeline, and no more than half its
// outbound limit held for it (a client that sends faster than it reads is
// read more slowly, rather than cut off). n == 0 waits until Deliver or
// the writer next wakes it, or a short while. It returns false if the
// pipeline failed; the caller checks for shutdown and the writer's end.
func (s *Server) awaitCredit(ss *session, n int) bool {
	for n == 0 || ss.heldBytes() > ss.limit/2 || ss.inflight.Load()+int64(n) > s.creditOf(ss) {
		ss.waiting.Store(true)
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ss.creditWake:
		case <-t.C:
		case <-s.p.Failed():
			t.Stop()
			ss.waiting.Store(false)
			ss.bye(wire.ByeFailStop)
			return false
		}
		t.Stop()
		ss.waiting.Store(false)
		if n == 0 || s.closing.Load() || ss.stopped.Load() {
			return true // the caller looks again
		}
	}
	return true
}

// settleWait bounds how long an ending session waits for the answers to
// what it sent.
const settleWait = 5 * time.Second

// settle waits until everything ss submitted has been answered and handed
// to its writer (a barrier through the pipeline), so that its Goodbye
// comes after the last answer. Bounded by settleWait and the pipeline's
// failure.
func (s *Server) settle(ss *session) {
	done := make(chan struct{})
	s.mu.Lock()
	ss.settled = done
	s.mu.Unlock()
	s.takeCredit(ss, 1)
	if err := s.p.Submit(pipeline.Request{Token: uint64(newRoute(ss.id, 0)), Query: pipeline.Query{Kind: pipeline.QueryBarrier}}); err != nil {
		return
	}
	t := time.NewTimer(settleWait)
	defer t.Stop()
	select {
	case <-done:
	case <-s.p.Failed():
	case <-t.C:
		s.log.Warn("api: answers to an ending session were not all delivered in time", "session", ss.id)
	}
}

// What translate tells the read loop to do with a frame.
const (
	actNone      = iota // handled (a heartbeat, an unsubscribe, a static answer)
	actSubmit           // submit the request
	actLogout           // end the session with Goodbye(logout)
	actMalformed        // end the session with Goodbye(malformed): why says how
)

// translate turns one client frame into what the read loop does with it:
// the one place where wire messages become pipeline requests. Commands
// carry the session's account, never one from the frame.
func (s *Server) translate(ss *session, typ byte, body []byte, recv int64) (req pipeline.Request, act int, why string) {
	own := uint64(newRoute(ss.id, 0))
	switch typ {
	case wire.TypeHeartbeat:
		return req, actNone, ""
	case wire.TypeLogout:
		return req, actLogout, "logout"
	case wire.TypeNewOrder, wire.TypeNewOrderX:
		var m wire.NewOrderX // a NewOrder is one without the extra fields
		if typ == wire.TypeNewOrder {
			m.NewOrder.Decode(body)
		} else {
			m.Decode(body)
		}
		cmd := m.Command(ss.acct)
		cmd.Session = ss.name
		return pipeline.Request{Cmd: cmd, Token: own, Recv: recv}, actSubmit, ""
	case wire.TypeReplace, wire.TypeReplaceX:
		var m wire.ReplaceX // likewise
		if typ == wire.TypeReplace {
			m.Replace.Decode(body)
		} else {
			m.Decode(body)
		}
		return pipeline.Request{Cmd: engine.Command{Kind: engine.CmdReplace, Account: ss.acct, Session: ss.name,
			OrderID: m.OrderID, Ref: m.Ref, Price: m.Price, Qty: m.Qty, StopPrice: m.StopPrice, Display: m.Display},
			Token: own, Recv: recv}, actSubmit, ""
	case wire.TypePhase:
		// The engine checks that the account is an operator: a trader's
		// Phase is rejected (24), journaled like any rejected command.
		var m wire.Phase
		m.Decode(body)
		return pipeline.Request{Cmd: engine.Command{Kind: engine.CmdPhase, Account: ss.acct, Session: ss.name,
			Instrument: m.Instrument, Action: m.Action}, Token: own, Recv: recv}, actSubmit, ""
	case wire.TypeCancel:
		var m wire.Cancel
		m.Decode(body)
		return pipeline.Request{Cmd: engine.Command{Kind: engine.CmdCancel, Account: ss.acct, Session: ss.name,
			OrderID: m.OrderID}, Token: own, Recv: recv}, actSubmit, ""
	case wire.TypeMassCancel:
		var m wire.MassCancel
		m.Decode(body)
		return pipeline.Request{Cmd: engine.Command{Kind: engine.CmdMassCancel, Account: ss.acct, Session: ss.name,
			Instrument: m.Instrument}, Token: own, Recv: recv}, actSubmit, ""
	case wire.TypeSubscribe:
		var m wire.Subscribe
		m.Decode(body)
		switch m.Action {
		case wire.SubscribeOn:
			return pipeline.Request{Token: uint64(newRoute(ss.id, m.Request)), Query: pipeline.Query{
				Kind: pipeline.QueryBook, Instrument: m.Instrument, From: m.From}}, actSubmit, ""
		case wire.Unsubscribe:
			s.mu.Lock()
			s.feed.unsubscribe(ss, m.Instrument)
			s.mu.Unlock()
			return req, actNone, ""
		}
		return req, actMalformed, "unknown subscribe action"
	case wire.TypeQuery:
		var m wire.Query
		m.Decode(body)
		switch m.Kind {
		case wire.QueryInstrument: // static: answered here, at once
			ss.send((&wire.Instruments{Request: m.Request}).Append(nil, s.cfg.Instruments))
			return req, actNone, ""
		case wire.QueryOrderStatus, wire.QueryOrderByRef, wire.QueryExecutions:
			// From the history of what has been released: answered here
			// (or, for an order older than it, asked of the engine).
			if ask, ok := s.answerHistory(ss, &m); ok {
				return ask, actSubmit, ""
			}
			return req, actNone, ""
		}
		if m.Kind == wire.QueryStatus {
			return pipeline.Request{Token: uint64(newRoute(ss.id, m.Request)), Query: pipeline.Query{
				Kind: pipeline.QueryStatus, Instrument: m.Instrument}}, actSubmit, ""
		}
		kind := pipeline.QueryKind(m.Kind) // the wire and pipeline kinds 1-4 agree
		if kind < pipeline.QueryTop || kind > pipeline.QueryOpenOrders {
			return req, actMalformed, "unknown query kind"
		}
		q := pipeline.Query{Kind: kind, Instrument: m.Instrument, Account: ss.acct, OrderID: m.OrderID, Levels: int32(m.Levels)}
		if kind == pipeline.QueryOpenOrders {
			q.OrderID = 0 // from the first page
		}
		return pipeline.Request{Token: uint64(newRoute(ss.id, m.Request)), Query: q}, actSubmit, ""
	}
	// A second Login, or a server-to-client type: not ours to send.
	return req, actMalformed, fmt.Sprintf("unexpected message type %q", typ)
}
