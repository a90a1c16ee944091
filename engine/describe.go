package engine

import (
	"fmt"
	"strconv"
	"strings"
)

var sideNames = [...]string{Buy: "buy", Sell: "sell"}
var typeNames = [...]string{Limit: "limit", Market: "market", Stop: "stop", StopLimit: "stop-limit"}
var tifNames = [...]string{GTC: "gtc", IOC: "ioc", FOK: "fok", PostOnly: "post", GTD: "gtd", Day: "day"}
var stpNames = [...]string{STPDefault: "default", STPCancelResting: "cancel-resting", STPCancelIncoming: "cancel-incoming", STPCancelBoth: "cancel-both"}
var cmdNames = [...]string{CmdNewOrder: "new-order", CmdCancel: "cancel", CmdReplace: "replace", CmdMassCancel: "mass-cancel", CmdClock: "clock", CmdPhase: "phase"}
var eventNames = [...]string{EvAccepted: "accepted", EvRejected: "rejected", EvFill: "fill", EvCanceled: "canceled", EvReplaced: "replaced", EvMassCanceled: "mass-canceled", EvTopOfBook: "top", EvLevel: "level", EvTriggered: "triggered", EvPhase: "phase", EvIndicative: "indicative"}
var rejectNames = [...]string{
	RejectUnknownCommand: "unknown-command", RejectUnknownInstrument: "unknown-instrument",
	RejectBadSide: "bad-side", RejectBadType: "bad-type", RejectBadTimeInForce: "bad-tif",
	RejectBadSTP: "bad-stp", RejectBadPrice: "bad-price", RejectBadQuantity: "bad-qty",
	RejectOverMaxQuantity: "over-max-qty", RejectOutsidePriceBand: "outside-band",
	RejectWouldCross: "would-cross", RejectFOKUnfillable: "fok-unfillable",
	RejectUnknownOrder: "unknown-order", RejectNotOwner: "not-owner",
	RejectStaleClientRef: "stale-ref", RejectTooManyOpenOrders: "too-many-orders",
	RejectTooManySessions: "too-many-sessions", RejectBadStopPrice: "bad-stop-price",
	RejectBadDisplay: "bad-display", RejectBadExpiry: "bad-expiry", RejectHalted: "halted",
	RejectClosed: "closed", RejectNotInPhase: "not-in-phase", RejectNotOperator: "not-operator",
	RejectBadPhaseAction: "bad-phase-action",
}
var phaseNames = [...]string{PhaseContinuous: "continuous", PhaseHalted: "halted", PhaseAuction: "auction", PhaseClosed: "closed", PhaseVolatility: "volatility"}
var actionNames = [...]string{ActHalt: "halt", ActResume: "resume", ActOpenAuction: "open-auction", ActUncross: "uncross", ActClose: "close"}
var cancelNames = [...]string{CancelUser: "user", CancelUnfilled: "unfilled", CancelSelfTrade: "self-trade", CancelMass: "mass", CancelReplaced: "replaced", CancelExpired: "expired"}

func name[T ~uint8](names []string, v T) string {
	if int(v) < len(names) && names[v] != "" {
		return names[v]
	}
	return "?" + strconv.Itoa(int(v))
}

func parse[T ~uint8](names []string, s string) (T, bool) {
	for i, n := range names {
		if n != "" && n == s {
			return T(i), true
		}
	}
	return 0, false
}

// String returns "buy" or "sell".
func (s Side) String() string { return name(sideNames[:], s) }

// String returns "limit" or "market".
func (t OrderType) String() string { return name(typeNames[:], t) }

// String returns "gtc", "ioc", "fok" or "post".
func (t TimeInForce) String() string { return name(tifNames[:], t) }

// String returns the mode's kebab-case name.
func (m STPMode) String() string { return name(stpNames[:], m) }

// String returns the command kind's kebab-case name.
func (k CommandKind) String() string { return name(cmdNames[:], k) }

// String returns the event kind's name.
func (k EventKind) String() string { return name(eventNames[:], k) }

// String returns the reason's kebab-case name, as used in docs and logs.
func (r RejectReason) String() string { return name(rejectNames[:], r) }

// String returns the reason's kebab-case name.
func (r CancelReason) String() string { return name(cancelNames[:], r) }

// String returns the phase's name.
func (p Phase) String() string { return name(phaseNames[:], p) }

// String returns the action's kebab-case name (as matchctl admin spells it).
func (a PhaseAction) String() string { return name(actionNames[:], a) }

// ParsePhaseAction parses the output of PhaseAction.String.
func ParsePhaseAction(s string) (PhaseAction, bool) { return parse[PhaseAction](actionNames[:], s) }

// ParseSide parses the output of Side.String.
func ParseSide(s string) (Side, bool) { return parse[Side](sideNames[:], s) }

// ParseOrderType parses the output of OrderType.String.
func ParseOrderType(s string) (OrderType, bool) { return parse[OrderType](typeNames[:], s) }

// ParseTimeInForce parses the output of TimeInForce.String.
func ParseTimeInForce(s string) (TimeInForce, bool) { return parse[TimeInForce](tifNames[:], s) }

// ParseSTPMode parses the output of STPMode.String.
func ParseSTPMode(s string) (STPMode, bool) { return parse[STPMode](stpNames[:], s) }

// ParseRejectReason parses the output of RejectReason.String.
func ParseRejectReason(s string) (RejectReason, bool) {
	return parse[RejectReason](rejectNames[:], s)
}

// Describe returns a one-line, deterministic description of the command.
func (c *Command) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seq=%d %s acct=%d", c.Seq, c.Kind, c.Account)
	if c.Session != 0 {
		fmt.Fprintf(&b, " sess=%s", sessionName(c.Session))
	}
	switch c.Kind {
	case CmdNewOrder:
		fmt.Fprintf(&b, " ref=%d inst=%d %s %s %s", c.Ref, c.Instrument, c.Side, c.Type, c.TIF)
		if c.Type != Market && c.Type != Stop {
			fmt.Fprintf(&b, " price=%d", c.Price)
		}
		fmt.Fprintf(&b, " qty=%d", c.Qty)
		if c.StopPrice != 0 {
			fmt.Fprintf(&b, " stop=%d", c.StopPrice)
		}
		if c.Display != 0 {
			fmt.Fprintf(&b, " display=%d", c.Display)
		}
		if c.Expire != 0 {
			fmt.Fprintf(&b, " expire=%d", c.Expire)
		}
		if c.STP != STPDefault {
			fmt.Fprintf(&b, " stp=%s", c.STP)
		}
	case CmdCancel:
		fmt.Fprintf(&b, " order=%d", c.OrderID)
	case CmdReplace:
		fmt.Fprintf(&b, " order=%d ref=%d price=%d qty=%d", c.OrderID, c.Ref, c.Price, c.Qty)
		if c.StopPrice != 0 {
			fmt.Fprintf(&b, " stop=%d", c.StopPrice)
		}
		if c.Display != 0 {
			fmt.Fprintf(&b, " display=%d", c.Display)
		}
	case CmdMassCancel:
		fmt.Fprintf(&b, " inst=%d", c.Instrument)
		if c.SessionOnly {
			b.WriteString(" session-only")
		}
	case CmdClock:
		fmt.Fprintf(&b, " time=%d", c.Time)
	case CmdPhase:
		fmt.Fprintf(&b, " inst=%d %s", c.Instrument, c.Action)
	default:
		fmt.Fprintf(&b, " %+v", *c)
	}
	return b.String()
}

// Describe returns a one-line, deterministic description of the event,
// without its Seq and Time. Messages of named sessions end with
// " @SESSION#N" (the maker's too, for a fill): the session and the
// message's number in its stream.
func (ev *Event) Describe() string {
	d := ev.describe()
	if ev.SessSeq != 0 && ev.Session != 0 {
		d += fmt.Sprintf(" @%s#%d", sessionName(ev.Session), ev.SessSeq)
	}
	if ev.MakerSessSeq != 0 && ev.MakerSession != 0 {
		d += fmt.Sprintf(" maker@%s#%d", sessionName(ev.MakerSession), ev.MakerSessSeq)
	}
	return d
}

// sessionName is a session's name as text (its bytes up to the padding).
func sessionName(s SessionID) string {
	b := []byte{byte(s >> 56), byte(s >> 48), byte(s >> 40), byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}

// ParseSessionID packs a session name of up to 8 bytes the way the
// protocol does (left-aligned, zero-padded, big-endian).
func ParseSessionID(name string) SessionID {
	var s SessionID
	for i := range 8 {
		s <<= 8
		if i < len(name) {
			s |= SessionID(name[i])
		}
	}
	return s
}

func (ev *Event) describe() string {
	switch ev.Kind {
	case EvAccepted:
		return fmt.Sprintf("accepted order=%d acct=%d ref=%d %s price=%d qty=%d",
			ev.OrderID, ev.Account, ev.Ref, ev.Side, ev.Price, ev.Qty)
	case EvRejected:
		return fmt.Sprintf("rejected acct=%d ref=%d order=%d reason=%s",
			ev.Account, ev.Ref, ev.OrderID, RejectReason(ev.Reason))
	case EvFill:
		d := fmt.Sprintf("fill trade=%d price=%d qty=%d taker=%d/%d leaves=%d maker=%d/%d leaves=%d",
			ev.TradeID, ev.Price, ev.Qty, ev.OrderID, ev.Account, ev.Leaves,
			ev.MakerOrder, ev.MakerAccount, ev.MakerLeaves)
		if ev.Reason == FillAuction {
			d += " auction"
		}
		return d
	case EvCanceled:
		return fmt.Sprintf("canceled order=%d acct=%d ref=%d qty=%d reason=%s",
			ev.OrderID, ev.Account, ev.Ref, ev.Qty, CancelReason(ev.Reason))
	case EvReplaced:
		return fmt.Sprintf("replaced order=%d acct=%d ref=%d orig-ref=%d price=%d qty=%d leaves=%d",
			ev.OrderID, ev.Account, ev.Ref, ev.OrigRef, ev.Price, ev.Qty, ev.Leaves)
	case EvMassCanceled:
		return fmt.Sprintf("mass-canceled acct=%d inst=%d count=%d", ev.Account, ev.Instrument, ev.Qty)
	case EvTopOfBook:
		return fmt.Sprintf("top inst=%d bid=%s ask=%s", ev.Instrument,
			describeSide(ev.BidPrice, ev.BidQty), describeSide(ev.AskPrice, ev.AskQty))
	case EvLevel:
		return fmt.Sprintf("level inst=%d %s %d qty=%d orders=%d", ev.Instrument, ev.Side, ev.Price, ev.Qty, ev.Orders)
	case EvTriggered:
		return fmt.Sprintf("triggered order=%d acct=%d ref=%d %s price=%d qty=%d",
			ev.OrderID, ev.Account, ev.Ref, ev.Side, ev.Price, ev.Qty)
	case EvPhase:
		d := fmt.Sprintf("phase inst=%d %s", ev.Instrument, Phase(ev.Reason))
		if ev.Price != 0 {
			d += fmt.Sprintf(" at=%d", ev.Price)
		}
		return d
	case EvIndicative:
		if ev.Qty == 0 {
			return fmt.Sprintf("indicative inst=%d none", ev.Instrument)
		}
		d := fmt.Sprintf("indicative inst=%d price=%d qty=%d", ev.Instrument, ev.Price, ev.Qty)
		if ev.Leaves != 0 {
			d += fmt.Sprintf(" surplus=%d %s", ev.Leaves, ev.Side)
		}
		return d
	}
	return fmt.Sprintf("event %+v", *ev)
}

func describeSide(p Price, q Qty) string {
	if q == 0 {
		return "-"
	}
	return fmt.Sprintf("%d@%d", q, p)
}

// DescribeBook returns a deterministic multi-line picture of an instrument's
// book: asks from worst to best, then bids from best to worst, each level
// with its orders in queue order as id:qty(account).
func (e *Engine) DescribeBook(id InstrumentID) string {
	b := e.book(id)
	if b == nil {
		return "unknown instrument\n"
	}
	var sb strings.Builder
	line := func(l *level) {
		fmt.Fprintf(&sb, "  %d x %d:", l.price, l.qty)
		for o := l.head; o != nil; o = o.next {
			fmt.Fprintf(&sb, " %d:%d(%d)", o.id, o.qty, e.accts[o.acct].id)
			if h := e.hidden(o); h != 0 {
				fmt.Fprintf(&sb, "+%d", h)
			}
		}
		sb.WriteByte('\n')
	}
	if b.phase != PhaseContinuous {
		fmt.Fprintf(&sb, "phase: %s\n", b.phase)
	}
	sb.WriteString("asks:\n")
	var asks []*level
	b.asks.scan(func(l *level) bool { asks = append(asks, l); return true })
	for i := len(asks) - 1; i >= 0; i-- {
		line(asks[i])
	}
	sb.WriteString("bids:\n")
	b.bids.scan(func(l *level) bool { line(l); return true })
	for i, t := range b.stops {
		if t.Len() == 0 {
			continue
		}
		fmt.Fprintf(&sb, "%s stops:", []string{"buy", "sell"}[i])
		t.Scan(func(k stopKey) bool {
			fmt.Fprintf(&sb, " %d:%d@%d(%d)", k.o.id, k.o.qty, e.exts[k.o.ext-1].stop, e.accts[k.o.acct].id)
			return true
		})
		sb.WriteByte('\n')
	}
	return sb.String()
}
