package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"testing"
	"testing/iotest"

	"github.com/matchd/matchd/engine"
)

// samples returns one frame of every type, built by the encoders.
func samples() [][]byte {
	tok := [TokenSize]byte{'a', 'l', 'i', 'c', 'e', '-', 'd', 'e', 'm', 'o'}
	rep := Report{Msg: 12, Flags: FlagEndOfCommand, Seq: 9, Time: 1_700_000_000_000_000_000, OrderID: 42, Ref: 7}
	algo := SessionName{'A', 'L', 'G', 'O', '-', '1'}
	var out [][]byte
	add := func(b []byte) { out = append(out, b) }
	add((&Login{Version: Version, Account: 1, Flags: FlagCancelOnDisconnect, Token: tok, Session: algo, Next: 5}).Append(nil))
	add(AppendEmpty(nil, TypeLogout))
	add(AppendEmpty(nil, TypeHeartbeat))
	add((&NewOrder{Ref: 7, Instrument: 1, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC, Price: 10_000, Qty: 5}).Append(nil))
	add((&Cancel{OrderID: 42}).Append(nil))
	add((&Replace{OrderID: 42, Ref: 8, Price: 10_001, Qty: 3}).Append(nil))
	add((&MassCancel{Instrument: 2}).Append(nil))
	add((&Query{Request: 5, Kind: QueryDepth, Levels: 3, Instrument: 1}).Append(nil))
	add((&LoginAccepted{Connection: 77, Version: Version, Session: algo, Next: 5, Last: 11}).Append(nil))
	add(AppendReason(nil, TypeLoginRejected, 1))
	add(AppendReason(nil, TypeGoodbye, 2))
	add((&Accepted{Report: rep, Instrument: 1, Side: engine.Sell, Type: engine.Limit, TIF: engine.PostOnly, Price: 10_000, Qty: 5}).Append(nil))
	add((&Rejected{Report: rep, Reason: engine.RejectNotOwner}).Append(nil))
	add((&Executed{Report: rep, Trade: 3, Price: 10_000, Qty: 2, Leaves: 3, Liquidity: LiquidityAdded}).Append(nil))
	add((&Canceled{Report: rep, Qty: 3, Reason: engine.CancelUser}).Append(nil))
	add((&Replaced{Report: rep, OrigRef: 6, Price: 9_999, Qty: 5, Leaves: 5}).Append(nil))
	add((&MassCanceled{Report: Report{Msg: 13, Flags: FlagEndOfCommand, Seq: 10, Time: 5}, Instrument: 0, Count: 3}).Append(nil))
	add((&Top{Request: 5, Seq: 10, Instrument: 1, Found: true,
		TopOfBook: engine.TopOfBook{BidPrice: 99, BidQty: 1, AskPrice: 101, AskQty: 2}}).Append(nil))
	add((&Query{Request: 12, Kind: QueryStatus, Instrument: 1}).Append(nil))
	add((&InstrumentStatus{Request: 12, Seq: 10, Instrument: 1, Found: true, Phase: engine.PhaseContinuous,
		RefPrice: 10_060, BandLow: 9_054, BandHigh: 11_066}).Append(nil))
	add((&Depth{Request: 6, Seq: 10, Instrument: 1, Found: true}).Append(nil,
		[]engine.LevelInfo{{Price: 99, Qty: 1, Orders: 1}}, []engine.LevelInfo{{Price: 101, Qty: 2, Orders: 1}, {Price: 102, Qty: 9, Orders: 3}}))
	add((&Orders{Request: 7, Seq: 10}).Append(nil, []engine.OrderInfo{{ID: 42, Ref: 7, Instrument: 1,
		Side: engine.Buy, TIF: engine.GTC, Price: 99, Leaves: 1, Filled: 4, Time: 123}}))
	add((&Instruments{Request: 8}).Append(nil, []InstrumentInfo{{ID: 1, Symbol: "AAPL", TickSize: "0.01", LotSize: "1"},
		{ID: 2, Symbol: "BTC-USD", TickSize: "0.01", LotSize: "0.0001"}}))
	add((&Subscribe{Request: 9, Instrument: 1, Action: SubscribeOn}).Append(nil))
	add((&BookSnapshot{Request: 9, Instrument: 1, FeedSeq: 41, Seq: 10, Found: true}).Append(nil,
		[]engine.LevelInfo{{Price: 99, Qty: 1, Orders: 1}}, []engine.LevelInfo{{Price: 101, Qty: 2, Orders: 1}}))
	add((&LevelUpdate{Instrument: 1, FeedSeq: 42, Seq: 11, Side: engine.Sell, Price: 101, Qty: 7, Orders: 2}).Append(nil))
	add((&Trade{Instrument: 1, FeedSeq: 43, Seq: 12, Time: 5, Trade: 3, Aggressor: engine.Buy, Price: 101, Qty: 2}).Append(nil))
	add((&OrderStatus{Request: 10, Found: true, OrderID: 42, Session: algo, Ref: 7, Instrument: 1, Side: engine.Buy,
		State: OrderFilled, Price: 10_000, Qty: 5, Filled: 5, Leaves: 0, Seq: 12, Time: 5}).Append(nil))
	add((&Fills{Request: 11}).Append(nil, []Fill{{Trade: 3, OrderID: 42, Session: algo, Instrument: 1, Side: engine.Buy,
		Liquidity: LiquidityRemoved, Price: 10_000, Qty: 2, Seq: 12, Time: 5}}))
	add((&NewOrderX{NewOrder: NewOrder{Ref: 8, Instrument: 1, Side: engine.Sell, Type: engine.StopLimit, TIF: engine.GTD,
		Price: 9_900, Qty: 10}, StopPrice: 9_950, Display: 2, Expire: 1_700_000_060_000_000_000}).Append(nil))
	add((&ReplaceX{Replace: Replace{OrderID: 43, Ref: 9}, StopPrice: 9_940, Display: 3}).Append(nil))
	add((&Phase{Instrument: 1, Action: engine.ActHalt}).Append(nil))
	add((&Triggered{Report: rep, Instrument: 1, Side: engine.Sell, Price: 9_900, Qty: 10}).Append(nil))
	add((&PhaseChanged{Report: Report{Msg: 3, Flags: FlagEndOfCommand, Seq: 14, Time: 6}, Instrument: 1,
		Phase: engine.PhaseHalted}).Append(nil))
	add((&PhaseUpdate{Instrument: 1, FeedSeq: 44, Seq: 14, Time: 6, Phase: engine.PhaseVolatility, Price: 10_300}).Append(nil))
	add((&Indicative{Instrument: 1, FeedSeq: 45, Seq: 15, Price: 10_100, Qty: 7, Surplus: 4, Side: engine.Sell}).Append(nil))
	add((&NotLeader{Leader: 2, Addr: "10.0.0.2:7001"}).Append(nil))
	return out
}

// decodeAny decodes a frame body into a value (for comparisons), or an
// error for a malformed variable-size body.
func decodeAny(typ byte, body []byte) (any, error) {
	switch typ {
	case TypeLogin:
		var m Login
		m.Decode(body)
		return m, nil
	case TypeLogout, TypeHeartbeat:
		return typ, nil
	case TypeNewOrder:
		var m NewOrder
		m.Decode(body)
		return m, nil
	case TypeCancel:
		var m Cancel
		m.Decode(body)
		return m, nil
	case TypeReplace:
		var m Replace
		m.Decode(body)
		return m, nil
	case TypeMassCancel:
		var m MassCancel
		m.Decode(body)
		return m, nil
	case TypeQuery:
		var m Query
		m.Decode(body)
		return m, nil
	case TypeSubscribe:
		var m Subscribe
		m.Decode(body)
		return m, nil
	case TypeLevelUpdate:
		var m LevelUpdate
		m.Decode(body)
		return m, nil
	case TypeTrade:
		var m Trade
		m.Decode(body)
		return m, nil
	case TypeLoginAccepted:
		var m LoginAccepted
		m.Decode(body)
		return m, nil
	case TypeNotLeader:
		var m NotLeader
		m.Decode(body)
		return m, nil
	case TypeLoginRejected, TypeGoodbye:
		return [2]byte{typ, body[0]}, nil
	case TypeAccepted:
		var m Accepted
		m.Decode(body)
		return m, nil
	case TypeRejected:
		var m Rejected
		m.Decode(body)
		return m, nil
	case TypeExecuted:
		var m Executed
		m.Decode(body)
		return m, nil
	case TypeCanceled:
		var m Canceled
		m.Decode(body)
		return m, nil
	case TypeReplaced:
		var m Replaced
		m.Decode(body)
		return m, nil
	case TypeMassCanceled:
		var m MassCanceled
		m.Decode(body)
		return m, nil
	case TypeTop:
		var m Top
		m.Decode(body)
		return m, nil
	case TypeInstrumentStatus:
		var m InstrumentStatus
		m.Decode(body)
		return m, nil
	case TypeDepth:
		var m Depth
		bids, asks, err := m.Decode(body, nil, nil)
		return []any{m, bids, asks}, err
	case TypeBookSnapshot:
		var m BookSnapshot
		bids, asks, err := m.Decode(body, nil, nil)
		return []any{m, bids, asks}, err
	case TypeOrders:
		var m Orders
		orders, err := m.Decode(body, nil)
		return []any{m, orders}, err
	case TypeInstruments:
		var m Instruments
		list, err := m.Decode(body, nil)
		return []any{m, list}, err
	case TypeOrderStatus:
		var m OrderStatus
		m.Decode(body)
		return m, nil
	case TypeFills:
		var m Fills
		list, err := m.Decode(body, nil)
		return []any{m, list}, err
	case TypeNewOrderX:
		var m NewOrderX
		m.Decode(body)
		return m, nil
	case TypeReplaceX:
		var m ReplaceX
		m.Decode(body)
		return m, nil
	case TypePhase:
		var m Phase
		m.Decode(body)
		return m, nil
	case TypeTriggered:
		var m Triggered
		m.Decode(body)
		return m, nil
	case TypePhaseChanged:
		var m PhaseChanged
		m.Decode(body)
		return m, nil
	case TypePhaseUpdate:
		var m PhaseUpdate
		m.Decode(body)
		return m, nil
	case TypeIndicative:
		var m Indicative
		m.Decode(body)
		return m, nil
	}
	panic("unknown type")
}

// encodeAny re-encodes what decodeAny returned.
func encodeAny(v any) []byte {
	switch m := v.(type) {
	case byte:
		return AppendEmpty(nil, m)
	case [2]byte:
		return AppendReason(nil, m[0], m[1])
	case Login:
		return m.Append(nil)
	case NotLeader:
		return m.Append(nil)
	case NewOrder:
		return m.Append(nil)
	case Cancel:
		return m.Append(nil)
	case Replace:
		return m.Append(nil)
	case MassCancel:
		return m.Append(nil)
	case Query:
		return m.Append(nil)
	case LoginAccepted:
		return m.Append(nil)
	case Accepted:
		return m.Append(nil)
	case Rejected:
		return m.Append(nil)
	case Executed:
		return m.Append(nil)
	case Canceled:
		return m.Append(nil)
	case Replaced:
		return m.Append(nil)
	case MassCanceled:
		return m.Append(nil)
	case Top:
		return m.Append(nil)
	case InstrumentStatus:
		return m.Append(nil)
	case Subscribe:
		return m.Append(nil)
	case LevelUpdate:
		return m.Append(nil)
	case Trade:
		return m.Append(nil)
	case OrderStatus:
		return m.Append(nil)
	case NewOrderX:
		return m.Append(nil)
	case ReplaceX:
		return m.Append(nil)
	case Phase:
		return m.Append(nil)
	case Triggered:
		return m.Append(nil)
	case PhaseChanged:
		return m.Append(nil)
	case PhaseUpdate:
		return m.Append(nil)
	case Indicative:
		return m.Append(nil)
	case []any:
		switch h := m[0].(type) {
		case Depth:
			return h.Append(nil, m[1].([]engine.LevelInfo), m[2].([]engine.LevelInfo))
		case BookSnapshot:
			return h.Append(nil, m[1].([]engine.LevelInfo), m[2].([]engine.LevelInfo))
		case Orders:
			return h.Append(nil, m[1].([]engine.OrderInfo))
		case Instruments:
			return h.Append(nil, m[1].([]InstrumentInfo))
		case Fills:
			return h.Append(nil, m[1].([]Fill))
		}
	}
	panic("unknown value")
}

func TestRoundTripEveryType(t *testing.T) {
	seen := map[byte]bool{}
	for _, f := range samples() {
		typ, body, n, err := Parse(f, MaxFrame)
		if err != nil || n != len(f) {
			t.Fatalf("%q: parse %d of %d: %v", typ, n, len(f), err)
		}
		seen[typ] = true
		v, err := decodeAny(typ, body)
		if err != nil {
			t.Fatal(err)
		}
		if again := encodeAny(v); !bytes.Equal(again, f) {
			t.Errorf("%q: re-encoded differs:\n%x\n%x", typ, f, again)
		}
	}
	for _, typ := range []byte("LOHNXUMQSwjgarecumtdoiblx") {
		if !seen[typ] {
			t.Errorf("no sample of type %q", typ)
		}
	}
}

func TestMalformedFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		max   int
		want  error
	}{
		{"too large", []byte{0x10, 0x00, 'N'}, MaxClientFrame, ErrFrameTooLarge},
		{"unknown type", []byte{0x00, 0x01, 'Z'}, MaxClientFrame, ErrUnknownType},
		{"short new order", append([]byte{0x00, 0x05, 'N'}, 1, 2, 3, 4), MaxClientFrame, ErrBadLength},
		{"long cancel", append([]byte{0x00, 0x0a, 'X'}, make([]byte, 9)...), MaxClientFrame, ErrBadLength},
		{"empty", []byte{0x00, 0x00}, MaxClientFrame, ErrEmptyFrame},
	} {
		if _, _, _, err := Parse(tc.frame, tc.max); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// Incomplete input is not an error.
	f := (&Cancel{OrderID: 1}).Append(nil)
	for i := 0; i < len(f); i++ {
		if _, _, n, err := Parse(f[:i], MaxClientFrame); n != 0 || err != nil {
			t.Fatalf("prefix of %d bytes: n=%d err=%v", i, n, err)
		}
	}
	var d Depth
	if _, _, err := d.Decode(append(make([]byte, 17), 0, 5, 0, 0), nil, nil); !errors.Is(err, ErrBadLength) {
		t.Fatalf("depth with a count past its end: %v", err)
	}
}

// TestReaderSplitFrames: all samples, read one byte at a time and through
// a small buffer, come out whole and in order.
func TestReaderSplitFrames(t *testing.T) {
	var stream []byte
	frames := samples()
	for _, f := range frames {
		stream = append(stream, f...)
	}
	for _, r := range []io.Reader{iotest.OneByteReader(bytes.NewReader(stream)), iotest.HalfReader(bytes.NewReader(stream))} {
		rd := NewReader(r, MaxFrame, 300)
		for i, f := range frames {
			typ, body, err := rd.Next()
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			if typ != f[2] || !bytes.Equal(body, f[3:]) {
				t.Fatalf("frame %d differs", i)
			}
		}
		if _, _, err := rd.Next(); err != io.EOF {
			t.Fatalf("after the last frame: %v", err)
		}
	}
	rd := NewReader(bytes.NewReader(frames[3][:10]), MaxFrame, 300)
	if _, _, err := rd.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut frame: %v", err)
	}
}

func TestNoAllocations(t *testing.T) {
	f := (&NewOrder{Ref: 7, Instrument: 1, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC, Price: 1, Qty: 1}).Append(nil)
	buf := make([]byte, 0, 256)
	rep := Executed{Report: Report{Seq: 1}, Trade: 1, Price: 1, Qty: 1}
	var m NewOrder
	var cmd engine.Command
	if n := testing.AllocsPerRun(1000, func() {
		_, body, _, _ := Parse(f, MaxClientFrame)
		m.Decode(body)
		cmd = m.Command(3)
		buf = rep.Append(buf[:0])
	}); n != 0 {
		t.Fatalf("%v allocations per decode+encode", n)
	}
	stream := bytes.Repeat(f, 100)
	src := bytes.NewReader(stream)
	rd := NewReader(src, MaxClientFrame, 4096)
	if n := testing.AllocsPerRun(100, func() {
		src.Reset(stream)
		for {
			if _, _, err := rd.Next(); err != nil {
				break
			}
		}
	}); n != 0 {
		t.Fatalf("%v allocations per 100 frames read", n)
	}
	_ = cmd
}

// FuzzFrames feeds arbitrary bytes, split at an arbitrary point, through
// the Reader: every frame it returns must decode, and decoding must be
// stable (decode → encode → decode gives the same value).
func FuzzFrames(f *testing.F) {
	for _, s := range samples() {
		f.Add(s, uint16(len(s)/2))
	}
	var all []byte
	for _, s := range samples() {
		all = append(all, s...)
	}
	f.Add(all, uint16(7))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		cut := int(split) % (len(data) + 1)
		rd := NewReader(io.MultiReader(bytes.NewReader(data[:cut]), bytes.NewReader(data[cut:])), MaxFrame, 1024)
		for {
			typ, body, err := rd.Next()
			if err != nil {
				return
			}
			v, err := decodeAny(typ, body)
			if err != nil {
				continue // a bad count in a variable frame: reported, not a panic
			}
			re := encodeAny(v)
			_, body2, n, err := Parse(re, MaxFrame)
			if err != nil || n != len(re) {
				t.Fatalf("re-encoded %q does not parse: %v", typ, err)
			}
			v2, err := decodeAny(typ, body2)
			if err != nil || !reflect.DeepEqual(v, v2) {
				t.Fatalf("%q: decode not stable:\n%+v\n%+v", typ, v, v2)
			}
		}
	})
}

// TestVariableFramesOverTheirLimits: counts over a frame's documented
// maximum are rejected, not decoded into something the encoder would cut.
func TestVariableFramesOverTheirLimits(t *testing.T) {
	frame := func(typ byte, body []byte) []byte { return append(appendHeader(nil, typ, len(body)), body...) }
	depth := make([]byte, depthHeadSize+levelSize*(MaxDepthLevels+1))
	be.PutUint16(depth[17:], MaxDepthLevels+1)
	orders := make([]byte, ordersHeadSize+orderSize*(MaxOrdersPerFrame+1))
	be.PutUint16(orders[13:], MaxOrdersPerFrame+1)
	snap := make([]byte, snapshotHeadSize+snapshotLevel*(MaxSnapshotLevels+1))
	be.PutUint16(snap[26:], MaxSnapshotLevels+1)
	for i := range MaxSnapshotLevels + 1 {
		snap[snapshotHeadSize+i*snapshotLevel] = byte(engine.Buy)
	}
	for _, f := range [][]byte{frame(TypeDepth, depth), frame(TypeOrders, orders), frame(TypeBookSnapshot, snap)} {
		typ, body, _, err := Parse(f, MaxFrame)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeAny(typ, body); !errors.Is(err, ErrBadLength) {
			t.Errorf("%q over its limit: %v", typ, err)
		}
	}
}

// TestInstrumentDirectorySplits: a directory larger than one frame (3,000
// instruments with long symbols) is split across frames, all but the last
// with More, each within MaxFrame, and reads back whole.
func TestInstrumentDirectorySplits(t *testing.T) {
	var list []InstrumentInfo
	for i := 1; i <= 3000; i++ {
		list = append(list, InstrumentInfo{ID: engine.InstrumentID(i),
			Symbol: fmt.Sprintf("SYMBOL-WITH-A-LONG-NAME-%06d", i), TickSize: "0.0001", LotSize: "0.00000001"})
	}
	b := (&Instruments{Request: 7}).Append(nil, list)
	var got []InstrumentInfo
	frames := 0
	for len(b) > 0 {
		typ, body, n, err := Parse(b, MaxFrame)
		if err != nil || typ != TypeInstruments {
			t.Fatalf("frame %d: %q %v", frames, typ, err)
		}
		b = b[n:]
		frames++
		var m Instruments
		if got, err = m.Decode(body, got); err != nil {
			t.Fatal(err)
		}
		if m.Request != 7 || m.More != (len(b) > 0) {
			t.Fatalf("frame %d: %+v with %d bytes after it", frames, m, len(b))
		}
	}
	if frames < 2 || !slices.Equal(got, list) {
		t.Fatalf("%d frames, %d instruments back", frames, len(got))
	}
}

// TestInstrumentsMoreRoundTrips: one frame of a split directory (More set)
// decodes and encodes back to the same bytes. The fuzzer found that Append
// dropped More on a frame whose entries all fit (CI, FuzzFrames).
func TestInstrumentsMoreRoundTrips(t *testing.T) {
	list := []InstrumentInfo{{ID: 1, Symbol: "AAPL", TickSize: "0.01", LotSize: "1"}}
	b := (&Instruments{Request: 9, More: true}).Append(nil, list)
	_, body, _, err := Parse(b, MaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	var m Instruments
	got, err := m.Decode(body, nil)
	if err != nil || !m.More || !slices.Equal(got, list) {
		t.Fatalf("%+v %v %v", m, got, err)
	}
	if again := m.Append(nil, got); !bytes.Equal(again, b) {
		t.Fatalf("re-encoded\n%x\nnot\n%x", again, b)
	}
}
