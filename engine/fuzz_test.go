package engine_test

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"

	"github.com/matchd/matchd/engine"
)

// commandsFromBytes turns arbitrary bytes into commands, 9 bytes each, with
// small value ranges so that commands interact.
func commandsFromBytes(data []byte) []engine.Command {
	var cmds []engine.Command
	for i := 0; len(data) >= 9; i++ {
		b := data[:9]
		data = data[9:]
		c := engine.Command{
			Seq:        engine.Seq(i + 1),
			Time:       int64(i+1) * 7,
			Kind:       engine.CommandKind(b[0]%5 + 1),
			Side:       engine.Side(b[1]%3 + 1),
			Type:       engine.OrderType(b[1]/3%3 + 1),
			TIF:        engine.TimeInForce(b[1]/9%5 + 1),
			STP:        engine.STPMode(b[2] % 5),
			Account:    engine.AccountID(b[2]/5%4 + 1),
			Instrument: engine.InstrumentID(b[3]%3 + 1),
			Price:      engine.Price(990 + int(b[4]%21)),
			Qty:        engine.Qty(int(b[5]%30) - 2),
			OrderID:    engine.OrderID(b[6] % 64),
			Ref:        engine.ClientRef(binary.BigEndian.Uint16(b[7:])),
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// FuzzCommands applies fuzzed command sequences to the engine and the
// reference model; events must agree and invariants hold after every
// command, and a snapshot must restore to the same state.
func FuzzCommands(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x00\x05\x05\x00\x00\x01\x00\x01\x05\x00\x05\x05\x00\x00\x02"))
	f.Add(make([]byte, 90))
	f.Add([]byte("new order flow, cancels, replaces, and some mass cancels in here!!"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := engine.Config{
			Instruments: []engine.Instrument{
				{ID: 1, Symbol: "A", BandBps: 50, StartPrice: 1000, MaxQty: 25, MaxOpenPerAccount: 6},
				{ID: 2, Symbol: "B"},
			},
			Accounts: []engine.AccountDefaults{{ID: 2, STP: engine.STPCancelBoth}},
		}
		e, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m := newRefModel(cfg)
		var out []engine.Event
		for _, c := range commandsFromBytes(data) {
			out = e.Apply(&c, out[:0])
			want := m.Apply(&c)
			if !eventsEqual(out, want) {
				t.Fatalf("%s:\nengine %+v\nmodel  %+v", c.Describe(), out, want)
			}
			if err := e.CheckInvariants(); err != nil {
				t.Fatalf("after %s: %v", c.Describe(), err)
			}
		}
		snap := e.Snapshot(nil)
		r, err := engine.Restore(snap)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Snapshot(nil)) != string(snap) {
			t.Fatal("snapshot does not round-trip")
		}
	})
}

// FuzzRestore feeds arbitrary bytes to Restore, with the checksum fixed up
// so the fuzzer reaches the parser: it must never panic, and whatever it
// accepts must be a consistent state that snapshots back to the same bytes
// (a version 1 or 2 snapshot: to version 3 bytes that do).
func FuzzRestore(f *testing.F) {
	cfg := engine.Config{Instruments: []engine.Instrument{{ID: 1, Symbol: "A"}, {ID: 3, Symbol: "C"}}}
	e, _ := engine.New(cfg)
	f.Add(body(e.Snapshot(nil)))
	var out []engine.Event
	for i, c := range commandsFromBytes([]byte("some orders to have a book with levels in it, and more orders, and more, and more")) {
		c.Instrument = engine.InstrumentID(1 + 2*(i%2))
		out = e.Apply(&c, out[:0])
	}
	f.Add(body(e.Snapshot(nil)))
	if v2, err := os.ReadFile("testdata/snapshot-v2.bin"); err == nil {
		f.Add(body(v2))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		snap := binary.BigEndian.AppendUint32(append([]byte(nil), data...),
			crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
		r, err := engine.Restore(snap)
		if err != nil {
			return
		}
		if err := r.CheckInvariants(); err != nil {
			t.Fatalf("restored an inconsistent state: %v", err)
		}
		again := r.Snapshot(nil)
		if binary.BigEndian.Uint16(snap[6:]) < 3 {
			// Versions 1 and 2 are read, never written: what they become
			// must round-trip as version 3.
			r2, err := engine.Restore(again)
			if err != nil || string(r2.Snapshot(nil)) != string(again) {
				t.Fatalf("a version %d snapshot, written as version 3, does not round-trip: %v", binary.BigEndian.Uint16(snap[6:]), err)
			}
			return
		}
		if string(again) != string(snap) {
			t.Fatal("accepted snapshot does not round-trip")
		}
	})
}

func body(snap []byte) []byte { return snap[:len(snap)-4] }

// TestRestoreVersion2: a snapshot written before stops, icebergs, expiry
// and phases (testdata/snapshot-v2.bin, by commit fc9d551) restores with
// its orders, sessions and feed numbers, every instrument continuous, and
// trades on.
func TestRestoreVersion2(t *testing.T) {
	v2, err := os.ReadFile("testdata/snapshot-v2.bin")
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.Restore(v2)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	in, _ := e.Instrument(1)
	if e.OpenOrderCount() != 3 || e.LastSeq() != 4 || in.Phase != engine.PhaseContinuous || e.FeedSeq(1) == 0 {
		t.Fatalf("%d open orders, seq %d, phase %s, feed %d", e.OpenOrderCount(), e.LastSeq(), in.Phase, e.FeedSeq(1))
	}
	o, ok := e.Order(1)
	if !ok || o.Leaves != 3 || o.Session != engine.ParseSessionID("S1") || o.Type != engine.Limit {
		t.Fatalf("order 1: %+v %v", o, ok)
	}
	c := engine.Command{Seq: 5, Time: 5000, Kind: engine.CmdNewOrder, Account: 4, Instrument: 1, Side: engine.Sell,
		Type: engine.Limit, TIF: engine.IOC, Price: 99, Qty: 3, Ref: 1}
	evs := e.Apply(&c, nil)
	if len(evs) < 2 || evs[1].Kind != engine.EvFill || evs[1].MakerOrder != 1 || evs[1].Qty != 3 {
		t.Fatalf("trading on: %+v", evs)
	}
}
