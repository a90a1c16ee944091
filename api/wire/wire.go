// Package wire is the matchd binary protocol's codec: framing, and a fixed
// layout for every message. docs/PROTOCOL.md is its specification; the
// constants here are part of the wire format and never change meaning.
//
// # Framing
//
// Every message is a frame, all integers big-endian:
//
//	+----------------+--------+----------------------+
//	| length: uint16 | type   | body: length-1 bytes |
//	+----------------+--------+----------------------+
//
// length counts the type byte and the body. Each type has a fixed body size
// (BodySize) except the variable-length query answers, which carry their
// own counts.
//
// # Use
//
// Decoding never allocates: Parse returns the type and a body that aliases
// the input, and the Decode methods fill a caller's struct. Encoding appends
// to a caller's buffer. A frame split across reads is the caller's to
// reassemble; Reader does that with one fixed buffer.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the protocol version a client sends in Login. Version 2
// added named, resumable sessions (Login's session and next, the stream
// number and flags in every report head).
const Version uint16 = 2

// Frame limits.
const (
	HeaderSize = 3 // length (2) + type (1)
	// MaxClientFrame is the largest frame a client may send (all of its
	// messages are small and fixed-size).
	MaxClientFrame = 64
	// MaxFrame is the largest frame the server sends (depth and open-order
	// answers; longer answers are split into several frames).
	MaxFrame = 1 << 16
)

// Message types. Client to server are upper case, server to client lower
// case (except Heartbeat, which goes both ways).
const (
	TypeLogin      byte = 'L'
	TypeLogout     byte = 'O'
	TypeHeartbeat  byte = 'H'
	TypeNewOrder   byte = 'N'
	TypeCancel     byte = 'X'
	TypeReplace    byte = 'U'
	TypeMassCancel byte = 'M'
	TypeQuery      byte = 'Q'
	TypeSubscribe  byte = 'S'
	TypeNewOrderX  byte = 'E'
	TypeReplaceX   byte = 'V'
	TypePhase      byte = 'P'

	TypeLoginAccepted    byte = 'w'
	TypeLoginRejected    byte = 'j'
	TypeGoodbye          byte = 'g'
	TypeAccepted         byte = 'a'
	TypeRejected         byte = 'r'
	TypeExecuted         byte = 'e'
	TypeCanceled         byte = 'c'
	TypeReplaced         byte = 'u'
	TypeMassCanceled     byte = 'm'
	TypeTop              byte = 't'
	TypeDepth            byte = 'd'
	TypeOrders           byte = 'o'
	TypeInstruments      byte = 'i'
	TypeBookSnapshot     byte = 'b'
	TypeLevelUpdate      byte = 'l'
	TypeTrade            byte = 'x'
	TypeOrderStatus      byte = 'q'
	TypeFills            byte = 'f'
	TypeInstrumentStatus byte = 's'
	TypeTriggered        byte = 'k'
	TypePhaseChanged     byte = 'h'
	TypePhaseUpdate      byte = 'p'
	TypeIndicative       byte = 'n'
	TypeNotLeader        byte = 'z'
)

// Errors. A client that causes any of them is sent a Goodbye with the
// matching reason and disconnected.
var (
	ErrFrameTooLarge = errors.New("wire: frame too large")
	ErrUnknownType   = errors.New("wire: unknown message type")
	ErrBadLength     = errors.New("wire: wrong length for message type")
	ErrEmptyFrame    = errors.New("wire: frame without a type")
)

// BodySize returns the body size of a fixed-size type, or -1 for the
// variable-size ones and 0, false for unknown types.
func BodySize(t byte) (int, bool) {
	switch t {
	case TypeLogin:
		return loginSize, true
	case TypeLogout, TypeHeartbeat:
		return 0, true
	case TypeNewOrder:
		return newOrderSize, true
	case TypeCancel:
		return cancelSize, true
	case TypeReplace:
		return replaceSize, true
	case TypeMassCancel:
		return massCancelSize, true
	case TypeQuery:
		return querySize, true
	case TypeSubscribe:
		return subscribeSize, true
	case TypeLevelUpdate:
		return levelUpdateSize, true
	case TypeTrade:
		return tradeSize, true
	case TypeNotLeader:
		return notLeaderSize, true
	case TypeLoginAccepted:
		return loginAcceptedSize, true
	case TypeLoginRejected, TypeGoodbye:
		return 1, true
	case TypeAccepted:
		return acceptedSize, true
	case TypeRejected:
		return rejectedSize, true
	case TypeExecuted:
		return executedSize, true
	case TypeCanceled:
		return canceledSize, true
	case TypeReplaced:
		return replacedSize, true
	case TypeMassCanceled:
		return massCanceledSize, true
	case TypeTop:
		return topSize, true
	case TypeInstrumentStatus:
		return instrumentStatusSize, true
	case TypeOrderStatus:
		return orderStatusSize, true
	case TypeNewOrderX:
		return newOrderXSize, true
	case TypeReplaceX:
		return replaceXSize, true
	case TypePhase:
		return phaseSize, true
	case TypeTriggered:
		return triggeredSize, true
	case TypePhaseChanged:
		return phaseChangedSize, true
	case TypePhaseUpdate:
		return phaseUpdateSize, true
	case TypeIndicative:
		return indicativeSize, true
	case TypeDepth, TypeOrders, TypeInstruments, TypeBookSnapshot, TypeFills:
		return -1, true
	}
	return 0, false
}

// Parse looks for one whole frame at the start of b. It returns the type,
// the body (aliasing b) and the number of bytes the frame occupies. n == 0
// with a nil error means b holds only part of a frame: read more. Frames
// longer than max, of unknown type, or of the wrong size for their type are
// errors.
func Parse(b []byte, max int) (typ byte, body []byte, n int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, nil
	}
	length := int(binary.BigEndian.Uint16(b))
	if length == 0 {
		return 0, nil, 0, ErrEmptyFrame
	}
	if length+2 > max {
		return 0, nil, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, length+2, max)
	}
	if len(b) < 3 {
		return 0, nil, 0, nil
	}
	typ = b[2]
	size, ok := BodySize(typ)
	if !ok {
		return 0, nil, 0, fmt.Errorf("%w: %q", ErrUnknownType, typ)
	}
	if size >= 0 && length-1 != size && !(typ == TypeLogin && length-1 == loginV1Size) {
		return 0, nil, 0, fmt.Errorf("%w: %q has %d bytes, want %d", ErrBadLength, typ, length-1, size)
	}
	if len(b) < length+2 {
		return typ, nil, 0, nil
	}
	return typ, b[3 : length+2], length + 2, nil
}

// appendHeader appends a frame header for a body of size bytes.
func appendHeader(b []byte, typ byte, size int) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(size+1))
	return append(b, typ)
}

// AppendEmpty appends a frame with no body (Logout, Heartbeat).
func AppendEmpty(b []byte, typ byte) []byte { return appendHeader(b, typ, 0) }

// AppendReason appends a one-byte-body frame (LoginRejected, Goodbye).
func AppendReason(b []byte, typ byte, reason uint8) []byte {
	return append(appendHeader(b, typ, 1), reason)
}

// LoginRejected reasons (wire-stable).
const (
	LoginBadCredentials    uint8 = 1 // unknown account or wrong token
	LoginBadVersion        uint8 = 2 // protocol version not supported
	LoginTooManyConnection uint8 = 3 // the server, or this source address, is at its connection limit
	LoginRetryLater        uint8 = 4 // too many failed logins for this account or address: retry later
	LoginBadSession        uint8 = 5 // the session name is not 1-8 printable ASCII bytes padded with zeros
	LoginTooManySessions   uint8 = 6 // the account has engine.MaxSessionsPerAccount other sessions
	LoginBeforeRetention   uint8 = 7 // next is older than the oldest message the server keeps
	LoginAheadOfStream     uint8 = 8 // next is beyond the session's last message + 1
	LoginSessionInUse      uint8 = 9 // the session has a connection (and the Login did not take over)
)

// loginTexts says each login reject reason in words.
var loginTexts = [...]string{
	LoginBadCredentials:    "bad credentials: unknown account or wrong token",
	LoginBadVersion:        "protocol version not supported",
	LoginTooManyConnection: "the server, or this address, has as many connections as it takes",
	LoginRetryLater:        "too many failed logins for this account or address: retry later",
	LoginBadSession:        "bad session name: 1 to 8 printable ASCII characters",
	LoginTooManySessions:   "the account has as many sessions as it may",
	LoginBeforeRetention:   "the first message asked for is older than the server keeps",
	LoginAheadOfStream:     "the first message asked for is beyond the session's last",
	LoginSessionInUse:      "the session is in use by another connection",
}

// LoginReasonText says a LoginRejected reason in words (with its number
// for one this version does not know).
func LoginReasonText(r uint8) string {
	if int(r) < len(loginTexts) && loginTexts[r] != "" {
		return loginTexts[r]
	}
	return fmt.Sprintf("reason %d", r)
}

// byeTexts says each Goodbye reason in words.
var byeTexts = [...]string{
	ByeLogout:       "logged out",
	ByeMalformed:    "a malformed frame",
	ByeNotLoggedIn:  "a message before login",
	ByeIdle:         "idle: nothing received within the idle timeout",
	ByeSlowConsumer: "too slow: the client did not read its responses",
	ByeShutdown:     "the server is shutting down",
	ByeLoginTimeout: "no login within the login timeout",
	ByeFailStop:     "the server failed (fail-stop): nothing more is accepted",
	ByeTakenOver:    "another connection took the session over",
}

// ByeReasonText says a Goodbye reason in words.
func ByeReasonText(r uint8) string {
	if int(r) < len(byeTexts) && byeTexts[r] != "" {
		return byeTexts[r]
	}
	return fmt.Sprintf("reason %d", r)
}

// Goodbye reasons (wire-stable): the server sends Goodbye, then closes.
const (
	ByeLogout       uint8 = 1 // the client logged out
	ByeMalformed    uint8 = 2 // frame too large, unknown type or wrong length
	ByeNotLoggedIn  uint8 = 3 // a message other than Login before login
	ByeIdle         uint8 = 4 // nothing received within the idle timeout
	ByeSlowConsumer uint8 = 5 // the client did not read its responses
	ByeShutdown     uint8 = 6 // the server is stopping
	ByeLoginTimeout uint8 = 7 // no Login within the login timeout
	ByeFailStop     uint8 = 8 // the journal failed; nothing more will be accepted
	ByeTakenOver    uint8 = 9 // another connection logged in to this session
)
