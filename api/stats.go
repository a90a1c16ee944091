package api

import (
	"math/bits"
	"sync/atomic"

	"github.com/matchd/matchd/api/wire"
)

// Disconnect causes, the index into Metrics.Disconnects. Causes 1 to 8 are
// the Goodbye reasons the server sent (wire.Bye*).
const (
	CauseClosed             = 0  // the client closed the connection, or it broke
	CauseLoginRejected      = 9  // bad credentials or protocol version
	CauseTooManyConnections = 10 // over the connection limit
	CauseEvicted            = 11 // closed before login to make room for a newer connection
	CauseLoginThrottled     = 12 // refused unchecked after repeated failed logins
	NumCauses               = 13
)

// CauseNames are the disconnect causes' metric label values.
var CauseNames = [NumCauses]string{
	CauseClosed:             "connection_closed",
	wire.ByeLogout:          "logout",
	wire.ByeMalformed:       "malformed_frame",
	wire.ByeNotLoggedIn:     "not_logged_in",
	wire.ByeIdle:            "idle_timeout",
	wire.ByeSlowConsumer:    "slow_consumer",
	wire.ByeShutdown:        "shutdown",
	wire.ByeLoginTimeout:    "login_timeout",
	wire.ByeFailStop:        "journal_failure",
	CauseLoginRejected:      "login_rejected",
	CauseTooManyConnections: "too_many_connections",
	CauseEvicted:            "evicted_before_login",
	CauseLoginThrottled:     "login_throttled",
}

// stats are the server's counters, each written by its owner and read by
// Metrics.
type stats struct {
	sessions, subscriptions atomic.Int64
	disconnects             [NumCauses]atomic.Int64
	acks, ackNanos          atomic.Int64
	ackLatency              [24]atomic.Int64
	loginFailures           atomic.Int64
	acceptErrors            atomic.Int64
}

// Metrics is a snapshot of the server's counters.
type Metrics struct {
	Sessions      int64 // logged in now
	Subscriptions int64 // market data subscriptions now
	Connections   int64 // open connections, logged in or not
	// Disconnects counts ended connections by cause (Cause*, wire.Bye*).
	Disconnects [NumCauses]int64
	// Acks counts commands answered to the session that sent them, and
	// AckLatency[k] those whose first response was queued [2^k, 2^(k+1))
	// microseconds after the server read them (k = 0 also counts faster
	// ones); AckNanos is the sum. Published by Deliver once per batch.
	Acks, AckNanos int64
	AckLatency     [24]int64
	// PreLogin counts connections that have not logged in yet;
	// LoginFailures the logins refused for bad credentials; AcceptErrors
	// the failed accepts (out of file descriptors), each retried.
	PreLogin, LoginFailures, AcceptErrors int64
	// OutboundQueued is what all sessions hold for their clients.
	OutboundQueued int64
	// InPipeline counts sessions with requests in the pipeline.
	InPipeline int64
}

// Metrics returns a snapshot of the server's counters.
func (s *Server) Metrics() Metrics {
	st := &s.stats
	m := Metrics{Sessions: st.sessions.Load(), Subscriptions: st.subscriptions.Load(), Connections: s.conns.Load(),
		Acks: st.acks.Load(), AckNanos: st.ackNanos.Load(), PreLogin: int64(s.adm.preLogin()),
		LoginFailures: st.loginFailures.Load(), AcceptErrors: st.acceptErrors.Load(),
		OutboundQueued: s.outQueued.Load(), InPipeline: s.active.Load()}
	for i := range m.Disconnects {
		m.Disconnects[i] = st.disconnects[i].Load()
	}
	for k := range m.AckLatency {
		m.AckLatency[k] = st.ackLatency[k].Load()
	}
	return m
}

// ackCounts are Deliver's own plain counters (under Server.mu), published
// into Stats at the end of each batch.
type ackCounts struct {
	n, nanos int64
	hist     [24]int64
	dirty    bool
}

func (a *ackCounts) observe(d int64) {
	a.n++
	a.nanos += d
	k := 0
	if us := d / 1000; us > 1 {
		k = min(bits.Len64(uint64(us))-1, 23)
	}
	a.hist[k]++
	a.dirty = true
}

func (s *stats) publish(a *ackCounts) {
	if !a.dirty {
		return
	}
	a.dirty = false
	s.acks.Store(a.n)
	s.ackNanos.Store(a.nanos)
	for k, v := range a.hist {
		s.ackLatency[k].Store(v)
	}
}
