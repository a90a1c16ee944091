package engine_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/matchd/matchd/engine"
)

// scenario holds the state of one scenario file: an engine, the next
// sequence number, and the next client ref per account (so files only spell
// refs out when the ref itself is under test).
type scenario struct {
	e    *engine.Engine
	seq  engine.Seq
	time int64                       // of the last command: 1000 per command unless at= says later
	refs map[string]engine.ClientRef // by "account/session"
	out  []engine.Event
}

// TestScenarios runs every file in testdata/scenarios. Regenerate expected
// output with: go test ./engine -run TestScenarios -rewrite (then review the
// diff).
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/scenarios", func(t *testing.T, path string) {
		s := &scenario{}
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return s.run(t, td)
		})
	})
}

func args(t *testing.T, td *datadriven.TestData) map[string]string {
	m := map[string]string{}
	for _, a := range td.CmdArgs {
		if len(a.Vals) != 1 {
			td.Fatalf(t, "argument %s needs exactly one value", a.Key)
		}
		m[a.Key] = a.Vals[0]
	}
	return m
}

// num parses a numeric argument, or def if absent.
func num[T ~int64 | ~uint64 | ~uint32 | ~uint8 | ~int32](t *testing.T, m map[string]string, key string, def T) T {
	v, ok := m[key]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		u, uerr := strconv.ParseUint(v, 10, 64) // client refs use all 64 bits
		if uerr != nil {
			t.Fatalf("argument %s=%q: %v", key, v, err)
		}
		return T(u)
	}
	return T(n)
}

// enum parses a named argument with parse, accepting a number for invalid
// values under test.
func enum[T ~uint8](t *testing.T, m map[string]string, key string, def T, parse func(string) (T, bool)) T {
	v, ok := m[key]
	if !ok {
		return def
	}
	if x, ok := parse(v); ok {
		return x
	}
	n, err := strconv.ParseUint(v, 10, 8)
	if err != nil {
		t.Fatalf("argument %s=%q not known", key, v)
	}
	return T(n)
}

func (s *scenario) run(t *testing.T, td *datadriven.TestData) string {
	m := args(t, td)
	if td.Cmd != "reset" && s.e == nil {
		td.Fatalf(t, "reset first")
	}
	switch td.Cmd {
	case "reset":
		return s.reset(t, td)
	case "new", "cancel", "replace", "mass-cancel", "raw", "clock", "phase":
		return s.apply(t, td.Cmd, m)
	case "book":
		return s.e.DescribeBook(num(t, m, "inst", engine.InstrumentID(1)))
	case "top":
		top, ok := s.e.Top(num(t, m, "inst", engine.InstrumentID(1)))
		if !ok {
			return "unknown instrument"
		}
		return fmt.Sprintf("bid=%d@%d ask=%d@%d", top.BidQty, top.BidPrice, top.AskQty, top.AskPrice)
	case "depth":
		var sb strings.Builder
		inst := num(t, m, "inst", engine.InstrumentID(1))
		n := int(num(t, m, "levels", int64(0)))
		for _, side := range []engine.Side{engine.Buy, engine.Sell} {
			fmt.Fprintf(&sb, "%s:", side)
			for _, l := range s.e.Depth(inst, side, n, nil) {
				fmt.Fprintf(&sb, " %d@%d(%d)", l.Qty, l.Price, l.Orders)
			}
			sb.WriteByte('\n')
		}
		return sb.String()
	case "order":
		o, ok := s.e.Order(num(t, m, "id", engine.OrderID(0)))
		if !ok {
			return "unknown order"
		}
		return fmt.Sprintf("%+v", o)
	case "orders":
		var sb strings.Builder
		for _, o := range s.e.OpenOrders(num(t, m, "acct", engine.AccountID(0)), nil) {
			fmt.Fprintf(&sb, "%+v\n", o)
		}
		if sb.Len() == 0 {
			return "none"
		}
		return sb.String()
	case "wake":
		if w := s.e.NextWake(); w != math.MaxInt64 {
			return strconv.FormatInt(w, 10)
		}
		return "none"
	case "phase-of":
		in, ok := s.e.Instrument(num(t, m, "inst", engine.InstrumentID(1)))
		if !ok {
			return "unknown instrument"
		}
		return fmt.Sprintf("%s indicative=%d@%d", in.Phase, in.IndicativeQty, in.IndicativePrice)
	case "ref-price":
		in, ok := s.e.Instrument(num(t, m, "inst", engine.InstrumentID(1)))
		if !ok {
			return "unknown instrument"
		}
		return strconv.FormatInt(int64(in.RefPrice), 10)
	case "snapshot":
		// Round-trips the state through a snapshot; the scenario goes on
		// with the restored engine, so later commands prove it.
		data := s.e.Snapshot(nil)
		r, err := engine.Restore(data)
		if err != nil {
			return "error: " + err.Error()
		}
		if again := r.Snapshot(nil); string(again) != string(data) {
			td.Fatalf(t, "snapshot of restored engine differs")
		}
		if r.StateHash() != s.e.StateHash() {
			td.Fatalf(t, "state hash differs after restore")
		}
		s.e = r
		return fmt.Sprintf("ok: %d open orders, last seq %d", r.OpenOrderCount(), r.LastSeq())
	}
	td.Fatalf(t, "unknown command %q", td.Cmd)
	return ""
}

func (s *scenario) reset(t *testing.T, td *datadriven.TestData) string {
	var cfg engine.Config
	for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		cmd, cargs, err := datadriven.ParseLine(line)
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		m := map[string]string{}
		for _, a := range cargs {
			m[a.Key] = a.Vals[0]
		}
		switch cmd {
		case "inst":
			cfg.Instruments = append(cfg.Instruments, engine.Instrument{
				ID:                num(t, m, "id", engine.InstrumentID(0)),
				Symbol:            m["sym"],
				MaxQty:            num(t, m, "max-qty", engine.Qty(0)),
				BandBps:           num(t, m, "band", int64(0)),
				StartPrice:        num(t, m, "start", engine.Price(0)),
				MaxOpenPerAccount: num(t, m, "max-open", int32(0)),
				VolatilityBps:     num(t, m, "vol", int64(0)),
				VolatilityAuction: num(t, m, "vol-auction", int64(0)),
				AuctionAt:         num(t, m, "auction-at", int64(0)),
				OpenAt:            num(t, m, "open-at", int64(0)),
				CloseAt:           num(t, m, "close-at", int64(0)),
			})
		case "account":
			cfg.Accounts = append(cfg.Accounts, engine.AccountDefaults{
				ID:       num(t, m, "id", engine.AccountID(0)),
				STP:      enum(t, m, "stp", engine.STPDefault, engine.ParseSTPMode),
				Operator: m["operator"] == "true",
			})
		case "default-stp":
			cfg.DefaultSTP = enum(t, m, "stp", engine.STPDefault, engine.ParseSTPMode)
		default:
			td.Fatalf(t, "unknown reset line %q", line)
		}
	}
	e, err := engine.New(cfg)
	if err != nil {
		s.e = nil
		return "error:\n" + err.Error()
	}
	*s = scenario{e: e, refs: map[string]engine.ClientRef{}}
	return "ok"
}

func (s *scenario) apply(t *testing.T, kind string, m map[string]string) string {
	s.seq++
	s.time = max(s.time+1000, num(t, m, "at", int64(0)))
	c := engine.Command{
		Seq:       s.seq,
		Time:      s.time,
		StopPrice: num(t, m, "stop", engine.Price(0)),
		Display:   num(t, m, "display", engine.Qty(0)),
		Expire:    num(t, m, "expire", int64(0)),
		Account:   num(t, m, "acct", engine.AccountID(0)),
		OrderID:   num(t, m, "order", engine.OrderID(0)),
		Price:     num(t, m, "price", engine.Price(0)),
		Qty:       num(t, m, "qty", engine.Qty(0)),
		Session:   engine.ParseSessionID(m["sess"]),
	}
	c.SessionOnly = m["session-only"] == "true"
	nextRef := func() engine.ClientRef {
		k := fmt.Sprint(c.Account, "/", c.Session)
		s.refs[k]++
		r := num(t, m, "ref", s.refs[k])
		s.refs[k] = max(s.refs[k], r)
		return r
	}
	switch kind {
	case "new":
		c.Kind = engine.CmdNewOrder
		c.Instrument = num(t, m, "inst", engine.InstrumentID(1))
		c.Side = enum(t, m, "side", 0, engine.ParseSide)
		c.Type = enum(t, m, "type", engine.Limit, engine.ParseOrderType)
		def := engine.GTC
		if c.Type == engine.Market {
			def = engine.IOC
		}
		c.TIF = enum(t, m, "tif", def, engine.ParseTimeInForce)
		c.STP = enum(t, m, "stp", engine.STPDefault, engine.ParseSTPMode)
		c.Ref = nextRef()
	case "cancel":
		c.Kind = engine.CmdCancel
	case "replace":
		c.Kind = engine.CmdReplace
		c.Ref = nextRef()
	case "mass-cancel":
		c.Kind = engine.CmdMassCancel
		c.Instrument = num(t, m, "inst", engine.InstrumentID(0))
	case "raw":
		c.Kind = num(t, m, "kind", engine.CommandKind(0))
	case "clock":
		c.Kind = engine.CmdClock
	case "phase":
		c.Kind = engine.CmdPhase
		c.Instrument = num(t, m, "inst", engine.InstrumentID(1))
		c.Action = enum(t, m, "action", 0, engine.ParsePhaseAction)
	}
	s.out = s.e.Apply(&c, s.out[:0])
	if err := s.e.CheckInvariants(); err != nil {
		t.Fatalf("after %s:\n%v", c.Describe(), err)
	}
	var sb strings.Builder
	for i := range s.out {
		ev := &s.out[i]
		if ev.Seq != c.Seq || ev.Time != c.Time {
			t.Fatalf("event %s carries seq %d time %d, command %d %d", ev.Describe(), ev.Seq, ev.Time, c.Seq, c.Time)
		}
		sb.WriteString(ev.Describe())
		sb.WriteByte('\n')
	}
	return sb.String()
}
