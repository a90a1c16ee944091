package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/matchd/matchd/engine"
)

// Format constants. They are part of the on-disk format.
const (
	recordVersion   = 2
	recordSize      = 75
	recordV3        = 3   // with the fields of stops, icebergs, expiry and phases
	recordV3Size    = 100 // version 3: version 2 and those fields
	recordV1Size    = 66  // version 1: no session
	snapshotVersion = 1
	prefixJournal   = 'j'
	prefixSnapshot  = 's'
	keySize         = 9
)

// Errors. ErrCorrupt is wrapped with the position it was found at.
var (
	ErrCorrupt = errors.New("persist: corrupt record")
	ErrClosed  = errors.New("persist: store closed")
	ErrFailed  = errors.New("persist: the store failed; refusing further writes")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func key(prefix byte, seq engine.Seq) []byte {
	return appendKey(nil, prefix, seq)
}

func appendKey(b []byte, prefix byte, seq engine.Seq) []byte {
	b = append(b, prefix)
	return binary.BigEndian.AppendUint64(b, uint64(seq))
}

func seqOfKey(k []byte) engine.Seq {
	if len(k) != keySize {
		return 0
	}
	return engine.Seq(binary.BigEndian.Uint64(k[1:]))
}

// extended reports whether c needs a version 3 record.
func extended(c *engine.Command) bool {
	return c.StopPrice != 0 || c.Display != 0 || c.Expire != 0 || c.Action != 0
}

// AppendRecord appends the journal record of c to b: version 2, or
// version 3 when c uses a field version 2 lacks.
func AppendRecord(b []byte, c *engine.Command) []byte {
	be := binary.BigEndian
	start := len(b)
	version := byte(recordVersion)
	if extended(c) {
		version = recordV3
	}
	b = append(b, version, 0, 0, 0, 0)
	b = be.AppendUint64(b, uint64(c.Seq))
	b = be.AppendUint64(b, uint64(c.Time))
	b = append(b, byte(c.Kind), byte(c.Side), byte(c.Type), byte(c.TIF), byte(c.STP))
	b = be.AppendUint32(b, uint32(c.Account))
	b = be.AppendUint32(b, uint32(c.Instrument))
	b = be.AppendUint64(b, uint64(c.Price))
	b = be.AppendUint64(b, uint64(c.Qty))
	b = be.AppendUint64(b, uint64(c.OrderID))
	b = be.AppendUint64(b, uint64(c.Ref))
	b = be.AppendUint64(b, uint64(c.Session))
	var flags byte
	if c.SessionOnly {
		flags |= recordSessionOnly
	}
	b = append(b, flags)
	if version == recordV3 {
		b = be.AppendUint64(b, uint64(c.StopPrice))
		b = be.AppendUint64(b, uint64(c.Display))
		b = be.AppendUint64(b, uint64(c.Expire))
		b = append(b, byte(c.Action))
	}
	be.PutUint32(b[start+1:], crc32.Checksum(b[start+5:], castagnoli))
	return b
}

// recordSessionOnly is the flags bit of Command.SessionOnly.
const recordSessionOnly = 1 << 0

// DecodeRecord decodes a journal record into c.
func DecodeRecord(b []byte, c *engine.Command) error {
	switch {
	case len(b) == recordSize && b[0] == recordVersion, len(b) == recordV1Size && b[0] == 1,
		len(b) == recordV3Size && b[0] == recordV3:
	case len(b) == 0:
		return fmt.Errorf("%w: empty", ErrCorrupt)
	case b[0] != recordVersion && b[0] != 1 && b[0] != recordV3:
		return fmt.Errorf("%w: version %d", ErrCorrupt, b[0])
	default:
		return fmt.Errorf("%w: length %d for version %d", ErrCorrupt, len(b), b[0])
	}
	be := binary.BigEndian
	if crc32.Checksum(b[5:], castagnoli) != be.Uint32(b[1:]) {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	*c = engine.Command{
		Seq:        engine.Seq(be.Uint64(b[5:])),
		Time:       int64(be.Uint64(b[13:])),
		Kind:       engine.CommandKind(b[21]),
		Side:       engine.Side(b[22]),
		Type:       engine.OrderType(b[23]),
		TIF:        engine.TimeInForce(b[24]),
		STP:        engine.STPMode(b[25]),
		Account:    engine.AccountID(be.Uint32(b[26:])),
		Instrument: engine.InstrumentID(be.Uint32(b[30:])),
		Price:      engine.Price(be.Uint64(b[34:])),
		Qty:        engine.Qty(be.Uint64(b[42:])),
		OrderID:    engine.OrderID(be.Uint64(b[50:])),
		Ref:        engine.ClientRef(be.Uint64(b[58:])),
	}
	if b[0] != 1 {
		if b[74]&^recordSessionOnly != 0 {
			return fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, b[74])
		}
		c.Session = engine.SessionID(be.Uint64(b[66:]))
		c.SessionOnly = b[74]&recordSessionOnly != 0
	}
	if b[0] == recordV3 {
		c.StopPrice = engine.Price(be.Uint64(b[75:]))
		c.Display = engine.Qty(be.Uint64(b[83:]))
		c.Expire = int64(be.Uint64(b[91:]))
		c.Action = engine.PhaseAction(b[99])
		if !extended(c) {
			// Only a command that needs them is written as version 3.
			return fmt.Errorf("%w: version 3 record without its fields", ErrCorrupt)
		}
	}
	return nil
}

// Snapshot header value (under 's' seq), version 1, big-endian:
//
//	ver=1 (1) | crc32c of bytes 5..29 (4) | seq (8) | length (8) |
//	chunks (4) | crc32c of the whole engine snapshot (4)
//
// The engine snapshot itself is stored in chunks of at most snapshotChunk
// bytes under 'c' seq index(4), written before the header.
const (
	snapshotHeaderSize = 29
	snapshotChunk      = 1 << 20
	prefixChunk        = 'c'
)

type snapshotHeader struct {
	seq    engine.Seq
	length uint64
	chunks uint32
	crc    uint32
}

func (h snapshotHeader) append(b []byte) []byte {
	start := len(b)
	b = append(b, snapshotVersion, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(h.seq))
	b = binary.BigEndian.AppendUint64(b, h.length)
	b = binary.BigEndian.AppendUint32(b, h.chunks)
	b = binary.BigEndian.AppendUint32(b, h.crc)
	binary.BigEndian.PutUint32(b[start+1:], crc32.Checksum(b[start+5:], castagnoli))
	return b
}

func decodeSnapshotHeader(v []byte) (snapshotHeader, error) {
	if len(v) != snapshotHeaderSize || v[0] != snapshotVersion {
		return snapshotHeader{}, fmt.Errorf("%w: snapshot header", ErrCorrupt)
	}
	be := binary.BigEndian
	if crc32.Checksum(v[5:], castagnoli) != be.Uint32(v[1:]) {
		return snapshotHeader{}, fmt.Errorf("%w: snapshot header checksum mismatch", ErrCorrupt)
	}
	return snapshotHeader{seq: engine.Seq(be.Uint64(v[5:])), length: be.Uint64(v[13:]),
		chunks: be.Uint32(v[21:]), crc: be.Uint32(v[25:])}, nil
}

func chunkKey(seq engine.Seq, i uint32) []byte {
	return binary.BigEndian.AppendUint32(key(prefixChunk, seq), i)
}
