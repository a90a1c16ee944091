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
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix && len(b) == recordSize {
			b = bytes.Clone(b)
			binary.BigEndian.PutUint32(b[1:], crc32.Checksum(b[5:], castagnoli))
		}
		var got engine.Command
		if err := DecodeRecord(b, &got); err != nil {
			return
		}
		if again := AppendRecord(nil, &got); !bytes.Equal(again, b) {
			t.Fatalf("decode/encode changed the record:\n%x\n%x", b, again)
		}
	})
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
