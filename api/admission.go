package api

import (
	"container/list"
	"net"
	"sync"
	"time"

	"github.com/matchd/matchd/engine"
)

// This file bounds what a client can make the server spend before it has
// logged in: connections that never log in, and guesses at tokens.
//
// Pre-login connections are held in a table of at most
// Config.MaxPreLogin, and at most Config.MaxPreLoginPerAddr from one
// source address; when either is full, the oldest pre-login connection
// (of all, or of that address) is closed to make room. A flood of idle
// connections so ages itself out in a fraction of a second, while an
// honest client, which logs in within a round trip, is not refused.
// Until it logs in a connection has a 128-byte read buffer.
//
// Failed logins back off, per account and per source address: after
// loginFreeFailures failures, the next attempt is refused unchecked
// ("retry later") until a delay has passed that doubles with each further
// failure, up to loginMaxBackoff. A success clears the account's and the
// address's record.

// preLoginBuffer is a connection's read buffer until it logs in (a Login
// frame is 42 bytes; the largest client frame 64).
const preLoginBuffer = 128

type admission struct {
	mu     sync.Mutex
	order  *list.List            // pre-login connections, oldest first (*preConn)
	byAddr map[string]*list.List // each address's elements of order, oldest first
	fails  map[failKey]*failure  // recent login failures
	sweep  time.Time             // when fails was last swept
}

type preConn struct {
	c      net.Conn
	addr   string
	inAddr *list.Element // its element in byAddr[addr]
}

// failKey is an account or a source address with login failures.
type failKey struct {
	acct engine.AccountID // 0 for an address
	addr string
}

type failure struct {
	n     int
	until time.Time // attempts before this are refused unchecked
	last  time.Time
}

const (
	loginFreeFailures = 3
	loginBaseBackoff  = 100 * time.Millisecond
	loginMaxBackoff   = 10 * time.Second
	loginForget       = 10 * time.Minute // a record with no failure for this long is dropped
	maxFailRecords    = 100_000
)

func newAdmission() *admission {
	return &admission{order: list.New(), byAddr: map[string]*list.List{}, fails: map[failKey]*failure{}}
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// admit registers a new pre-login connection. If the table, or its
// address's share, was full it returns the oldest pre-login connection
// (of all, or of that address), which the caller closes.
func (a *admission) admit(c net.Conn, maxTotal, maxPerAddr int) (e *list.Element, evict net.Conn) {
	addr := hostOf(c.RemoteAddr())
	a.mu.Lock()
	defer a.mu.Unlock()
	var old *list.Element
	if l := a.byAddr[addr]; l != nil && l.Len() >= maxPerAddr {
		old = l.Front().Value.(*list.Element)
	} else if a.order.Len() >= maxTotal {
		old = a.order.Front()
	}
	if old != nil {
		evict = old.Value.(*preConn).c
		a.removeLocked(old)
	}
	l := a.byAddr[addr]
	if l == nil {
		l = list.New()
		a.byAddr[addr] = l
	}
	pc := &preConn{c: c, addr: addr}
	e = a.order.PushBack(pc)
	pc.inAddr = l.PushBack(e)
	return e, evict
}

// done removes a connection from the pre-login table (it logged in, or it
// ended); removing one that was evicted is a no-op.
func (a *admission) done(e *list.Element) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.removeLocked(e)
}

func (a *admission) removeLocked(e *list.Element) {
	pc, ok := e.Value.(*preConn)
	if !ok || pc == nil {
		return
	}
	a.order.Remove(e)
	e.Value = (*preConn)(nil)
	l := a.byAddr[pc.addr]
	l.Remove(pc.inAddr)
	if l.Len() == 0 {
		delete(a.byAddr, pc.addr)
	}
}

// preLogin returns how many connections have not logged in.
func (a *admission) preLogin() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.order.Len()
}

// throttled reports whether a login for acct from addr must be refused
// unchecked because of earlier failures.
func (a *admission) throttled(acct engine.AccountID, addr string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range []failKey{{acct: acct}, {addr: addr}} {
		if f := a.fails[k]; f != nil && now.Before(f.until) {
			return true
		}
	}
	return false
}

// failed records a failed login.
func (a *admission) failed(acct engine.AccountID, addr string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.fails) > maxFailRecords {
		// Failures from very many addresses: forget the addresses' (the
		// accounts' records, which protect the tokens, stay).
		for k := range a.fails {
			if k.acct == 0 {
				delete(a.fails, k)
			}
		}
	}
	if now.Sub(a.sweep) > time.Minute {
		for k, f := range a.fails {
			if now.Sub(f.last) > loginForget {
				delete(a.fails, k)
			}
		}
		a.sweep = now
	}
	for _, k := range []failKey{{acct: acct}, {addr: addr}} {
		f := a.fails[k]
		if f == nil {
			f = &failure{}
			a.fails[k] = f
		}
		f.n++
		f.last = now
		if f.n >= loginFreeFailures {
			d := loginMaxBackoff
			if shift := f.n - loginFreeFailures; shift < 20 {
				d = min(loginBaseBackoff<<shift, loginMaxBackoff)
			}
			f.until = now.Add(d)
		}
	}
}

// succeeded clears the records of a good login.
func (a *admission) succeeded(acct engine.AccountID, addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.fails, failKey{acct: acct})
	delete(a.fails, failKey{addr: addr})
}

// rateLog logs a line per key at most once a second, with how many were
// suppressed in between.
type rateLog struct {
	mu   sync.Mutex
	last map[string]time.Time
	supp map[string]int
}

func (r *rateLog) warn(log interface {
	Warn(msg string, args ...any)
}, key, msg string, args ...any) {
	r.mu.Lock()
	if r.last == nil {
		r.last, r.supp = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if now.Sub(r.last[key]) < time.Second {
		r.supp[key]++
		r.mu.Unlock()
		return
	}
	n := r.supp[key]
	r.last[key], r.supp[key] = now, 0
	r.mu.Unlock()
	log.Warn(msg, append(args, "suppressed", n)...)
}
