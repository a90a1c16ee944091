package engine

import (
	"cmp"
	"slices"
)

// SessionID names one order-entry session of an account: the client's own
// name for it (like an OUCH port or a FIX SenderCompID), up to 8 bytes of
// printable ASCII packed big-endian, left-aligned. Zero is the account's
// default session (journals written before sessions existed use it).
type SessionID uint64

// MaxSessionsPerAccount bounds the sessions one account may use. A command
// from a session beyond it is rejected with RejectTooManySessions: each
// session the engine has seen is kept (in snapshots too) so that its
// references and message numbers survive.
const MaxSessionsPerAccount = 64

// session is the per-session state the engine keeps: the last client
// reference (refs strictly increase per session) and how many messages
// the session's stream holds.
type session struct {
	name    SessionID
	acct    int32 // index of its account in Engine.accts
	lastRef ClientRef
	msgs    uint64 // messages numbered so far; the last one's number
}

// sessionOf returns the index of a's session name in Engine.sess,
// creating it on first use, or -1 if a already has MaxSessionsPerAccount
// others. (enterSession checks a's last session before it calls this.)
func (e *Engine) sessionOf(a *account, name SessionID) int32 {
	for _, i := range a.sessions {
		if e.sess[i].name == name {
			a.lastSess = i
			return i
		}
	}
	if len(a.sessions) >= MaxSessionsPerAccount {
		return -1
	}
	return e.addSession(a, name, 0, 0)
}

func (e *Engine) addSession(a *account, name SessionID, lastRef ClientRef, msgs uint64) int32 {
	i := int32(len(e.sess))
	e.sess = append(e.sess, &session{name: name, acct: a.idx, lastRef: lastRef, msgs: msgs})
	a.sessions = append(a.sessions, i)
	a.lastSess = i
	return i
}

// to numbers the next message of session s's stream.
func (e *Engine) to(s int32) (SessionID, uint64) {
	ss := e.sess[s]
	ss.msgs++
	return ss.name, ss.msgs
}

// SessionInfo describes one session the engine has seen.
type SessionInfo struct {
	Account AccountID
	Session SessionID
	LastRef ClientRef // the last client reference the session used
	Msgs    uint64    // the number of the last message of its stream (0: none yet)
}

// Sessions appends every session the engine has seen to out, by account
// then session name.
func (e *Engine) Sessions(out []SessionInfo) []SessionInfo {
	start := len(out)
	for _, s := range e.sess {
		out = append(out, SessionInfo{Account: e.accts[s.acct].id, Session: s.name, LastRef: s.lastRef, Msgs: s.msgs})
	}
	sortSessions(out[start:])
	return out
}

func sortSessions(s []SessionInfo) {
	slices.SortFunc(s, func(a, b SessionInfo) int {
		if c := cmp.Compare(a.Account, b.Account); c != 0 {
			return c
		}
		return cmp.Compare(a.Session, b.Session)
	})
}
