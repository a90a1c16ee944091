package persist

import (
	"fmt"

	"github.com/matchd/matchd/engine"
)

// A journal value is a group: the records of consecutive commands, one
// after the other, stored under the key of the last one's sequence number
// (see the package comment). A record's version byte gives its length, so
// a group needs no header, and a value written before groups (one record)
// reads as a group of one.

// maxGroup bounds the records of one group (100 KiB at most), however many
// commands one Write is given.
const maxGroup = 1024

// recordLen returns the length of the record whose version byte is v, or
// 0 for a version no record has.
func recordLen(v byte) int {
	switch v {
	case recordVersion:
		return recordSize
	case recordV3:
		return recordV3Size
	case 1:
		return recordV1Size
	}
	return 0
}

// groupShape walks a group's records by their version bytes: n is how
// many whole records it holds from the front, and err, if the value does
// not split into whole records, says what follows the n-th (a version no
// record has, a record cut short, or nothing at all).
func groupShape(v []byte) (n int, err error) {
	for len(v) > 0 {
		l := recordLen(v[0])
		switch {
		case l == 0:
			return n, fmt.Errorf("%w: version %d", ErrCorrupt, v[0])
		case l > len(v):
			return n, fmt.Errorf("%w: length %d for version %d", ErrCorrupt, len(v), v[0])
		}
		v = v[l:]
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: empty", ErrCorrupt)
	}
	return n, nil
}

// groupFirst returns the sequence number of a group's first record, from
// its key and shape: the records are consecutive and the last is the key's.
// ok is false when the value does not split into whole records.
func groupFirst(key engine.Seq, v []byte) (first engine.Seq, n int, ok bool) {
	n, err := groupShape(v)
	if err != nil || engine.Seq(n) > key {
		return 0, n, false
	}
	return key - engine.Seq(n) + 1, n, true
}
