package persist

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/matchd/matchd/engine"
)

// FuzzDecodeRecord: any bytes either fail to decode or decode to a command
// that encodes back to exactly those bytes. The checksum is fixed up half
// of the time so the fuzzer gets past it.
func FuzzDecodeRecord(f *testing.F) {
	c := engine.Command{Seq: 7, Time: 99, Kind: engine.CmdNewOrder, Side: engine.Buy, Type: engine.Limit,
		TIF: engine.GTC, Account: 3, Instrument: 1, Price: 100, Qty: 5, Ref: 11}
	f.Add(AppendRecord(nil, &c), false)
	f.Add(make([]byte, recordSize), true)
	f.Add(make([]byte, recordV1Size), true)
	x := engine.Command{Seq: 8, Time: 99, Kind: engine.CmdNewOrder, Side: engine.Sell, Type: engine.StopLimit,
		TIF: engine.GTD, Account: 3, Instrument: 1, Price: 100, StopPrice: 95, Display: 2, Expire: 1000, Qty: 5, Ref: 12}
	f.Add(AppendRecord(nil, &x), false)
	f.Add(AppendRecord(nil, &engine.Command{Seq: 9, Kind: engine.CmdPhase, Account: 9, Instrument: 1, Action: engine.ActHalt}), true)
	f.Add([]byte{}, false) // an empty value: once a panic (the fuzzer's find)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix && (len(b) == recordSize || len(b) == recordV1Size || len(b) == recordV3Size) {
			b = bytes.Clone(b)
			binary.BigEndian.PutUint32(b[1:], crc32.Checksum(b[5:], castagnoli))
		}
		var got engine.Command
		if err := DecodeRecord(b, &got); err != nil {
			return
		}
		again := AppendRecord(nil, &got)
		if b[0] == 1 { // version 1 is read, never written: it reads back the same
			var back engine.Command
			if err := DecodeRecord(again, &back); err != nil || back != got || !bytes.Equal(again[5:66], b[5:66]) {
				t.Fatalf("version 1 record %x read as %+v, written as %x", b, got, again)
			}
			return
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode/encode changed the record:\n%x\n%x", b, again)
		}
	})
}

// TestDecodeEmptyRecord: an empty journal value is corrupt, not a panic
// (the first version 3 decoder indexed its version byte to say so).
func TestDecodeEmptyRecord(t *testing.T) {
	var c engine.Command
	if err := DecodeRecord(nil, &c); err == nil {
		t.Fatal("an empty record decoded")
	}
}

// TestRecordVersions: a version 2 record keeps the session and its flag;
// a version 1 record (written before sessions) reads as session 0.
func TestRecordVersions(t *testing.T) {
	c := engine.Command{Seq: 7, Time: 99, Kind: engine.CmdMassCancel, Account: 3, Session: 0x414c474f2d310000, SessionOnly: true}
	var got engine.Command
	if err := DecodeRecord(AppendRecord(nil, &c), &got); err != nil || got != c {
		t.Fatalf("%+v %v", got, err)
	}
	v1 := AppendRecord(nil, &c)[:recordV1Size]
	v1[0] = 1
	binary.BigEndian.PutUint32(v1[1:], crc32.Checksum(v1[5:], castagnoli))
	want := c
	want.Session, want.SessionOnly = 0, false
	if err := DecodeRecord(v1, &got); err != nil || got != want {
		t.Fatalf("version 1: %+v %v", got, err)
	}
	v1[0] = 4
	if err := DecodeRecord(v1, &got); err == nil {
		t.Fatal("version 4 accepted")
	}
	// Version 3 carries the fields of stops, icebergs, expiry and phases,
	// and only a command that uses one is written so.
	x := engine.Command{Seq: 8, Time: 99, Kind: engine.CmdNewOrder, Side: engine.Sell, Type: engine.StopLimit,
		TIF: engine.GTD, Account: 3, Instrument: 1, Price: 100, StopPrice: 95, Display: 2, Expire: 1000, Qty: 5, Ref: 12}
	v3 := AppendRecord(nil, &x)
	if len(v3) != recordV3Size || v3[0] != 3 {
		t.Fatalf("extended command written as %d bytes, version %d", len(v3), v3[0])
	}
	if err := DecodeRecord(v3, &got); err != nil || got != x {
		t.Fatalf("version 3: %+v %v", got, err)
	}
	if n := len(AppendRecord(nil, &c)); n != recordSize {
		t.Fatalf("plain command written as %d bytes", n)
	}
	for i := 75; i < recordV3Size; i++ {
		v3[i] = 0
	}
	binary.BigEndian.PutUint32(v3[1:], crc32.Checksum(v3[5:], castagnoli))
	if err := DecodeRecord(v3, &got); err == nil {
		t.Fatal("version 3 record without its fields accepted")
	}
}

// FuzzSnapshotHeader: the same round trip for snapshot headers.
func FuzzSnapshotHeader(f *testing.F) {
	f.Add(snapshotHeader{seq: 5, length: 100, chunks: 1, crc: 42}.append(nil), false)
	f.Add(make([]byte, snapshotHeaderSize), true)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix && len(b) == snapshotHeaderSize {
			b = bytes.Clone(b)
			binary.BigEndian.PutUint32(b[1:], crc32.Checksum(b[5:], castagnoli))
		}
		h, err := decodeSnapshotHeader(b)
		if err != nil {
			return
		}
		if again := h.append(nil); !bytes.Equal(again, b) {
			t.Fatalf("decode/encode changed the header:\n%x\n%x", b, again)
		}
	})
}
