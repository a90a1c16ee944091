package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/engine"
)

// The high-water mark: the highest sequence number known to have been
// durable (and so possibly acknowledged), kept in its own small file
// beside Pebble's, outside the write-ahead log. Pebble replays the newest
// WAL up to its first bad or missing byte and treats the rest as a torn
// write, so a WAL that lost its tail after a crash opens without
// complaint; the mark is how recovery notices that acknowledged commands
// are missing.
//
// The file holds two slots of highWaterSlot bytes; each write goes to the
// slot the last write did not use, so a torn write leaves the other slot
// intact. Each slot, big-endian:
//
//	magic "MHW1" (4) | generation (8) | seq (8) | crc32c of bytes 0..20 (4)
//
// The valid slot with the higher generation wins.
const (
	highWaterFile  = "MATCHD-HIGHWATER"
	highWaterSlot  = 24
	highWaterMagic = "MHW1"
)

// ErrLost reports acknowledged commands missing from the journal.
var ErrLost = errors.New("persist: acknowledged commands are missing")

type highWater struct {
	mu   sync.Mutex // the Store's loop and TruncateJournal
	f    vfs.File
	gen  uint64
	seq  engine.Seq
	sync bool
}

func encodeHighWaterSlot(gen uint64, seq engine.Seq) []byte {
	b := make([]byte, 0, highWaterSlot)
	b = append(b, highWaterMagic...)
	b = binary.BigEndian.AppendUint64(b, gen)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeHighWaterSlot(b []byte) (gen uint64, seq engine.Seq, ok bool) {
	if len(b) < highWaterSlot || string(b[:4]) != highWaterMagic ||
		crc32.Checksum(b[:20], castagnoli) != binary.BigEndian.Uint32(b[20:]) {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[4:]), engine.Seq(binary.BigEndian.Uint64(b[12:])), true
}

// readHighWater returns the mark stored in dir. exists is false if there
// is no file; a file with no valid slot is an error.
func readHighWater(fs vfs.FS, dir string) (seq engine.Seq, gen uint64, exists bool, err error) {
	f, err := fs.Open(fs.PathJoin(dir, highWaterFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("persist: high-water mark: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 2*highWaterSlot)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, 0, true, fmt.Errorf("persist: high-water mark: %w", err)
	}
	buf = buf[:n]
	found := false
	for off := 0; off+highWaterSlot <= len(buf); off += highWaterSlot {
		if g, s, ok := decodeHighWaterSlot(buf[off:]); ok && (!found || g > gen) {
			gen, seq, found = g, s, true
		}
	}
	if !found {
		return 0, 0, true, fmt.Errorf("%w: high-water mark file %s has no valid slot", ErrCorrupt, highWaterFile)
	}
	return seq, gen, true, nil
}

// openHighWater opens (creating if needed) the mark's file for writing.
func openHighWater(fs vfs.FS, dir string, seq engine.Seq, gen uint64, sync bool) (*highWater, error) {
	path := fs.PathJoin(dir, highWaterFile)
	f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("persist: high-water mark: %w", err)
	}
	h := &highWater{f: f, gen: gen, seq: seq, sync: sync}
	if gen == 0 {
		// A new file: write its first slot, and make the file's name durable.
		if err := h.write(seq, true); err != nil {
			f.Close()
			return nil, err
		}
		if d, err := fs.OpenDir(dir); err == nil {
			err = d.Sync()
			d.Close()
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("persist: high-water mark: sync directory: %w", err)
			}
		}
	}
	return h, nil
}

// write stores seq as the new mark; with sync (and unless the store's
// syncs are off) durably.
func (h *highWater) write(seq engine.Seq, sync bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen++
	if _, err := h.f.WriteAt(encodeHighWaterSlot(h.gen, seq), int64(h.gen%2)*highWaterSlot); err != nil {
		return fmt.Errorf("persist: high-water mark: %w", err)
	}
	if h.sync && sync {
		if err := h.f.SyncData(); err != nil {
			return fmt.Errorf("persist: high-water mark: %w", err)
		}
	}
	h.seq = seq
	return nil
}

// current returns the mark last written.
func (h *highWater) current() engine.Seq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}
