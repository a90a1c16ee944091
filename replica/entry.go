package replica

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/persist"
)

// An entry's data is one group commit of the leader's pipeline: a version
// byte (1), the number of commands (uint32), then each command as a
// 2-byte big-endian length and its journal record (persist.AppendRecord).
// The commands' sequence numbers are consecutive.

const entryVersion = 1

// appendEntry encodes cmds as an entry's data.
func appendEntry(b []byte, cmds []engine.Command) []byte {
	b = append(b, entryVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(cmds)))
	for i := range cmds {
		at := len(b)
		b = append(b, 0, 0)
		b = persist.AppendRecord(b, &cmds[i])
		binary.BigEndian.PutUint16(b[at:], uint16(len(b)-at-2))
	}
	return b
}

var errBadEntry = errors.New("replica: undecodable raft entry")

// decodeEntry appends the commands of an entry's data to cmds.
func decodeEntry(data []byte, cmds []engine.Command) ([]engine.Command, error) {
	if len(data) < 5 || data[0] != entryVersion {
		return cmds, fmt.Errorf("%w: version or length", errBadEntry)
	}
	n := binary.BigEndian.Uint32(data[1:])
	data = data[5:]
	for i := uint32(0); i < n; i++ {
		if len(data) < 2 {
			return cmds, fmt.Errorf("%w: command %d of %d cut short", errBadEntry, i, n)
		}
		l := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+l {
			return cmds, fmt.Errorf("%w: command %d of %d cut short", errBadEntry, i, n)
		}
		var c engine.Command
		if err := persist.DecodeRecord(data[2:2+l], &c); err != nil {
			return cmds, fmt.Errorf("%w: command %d: %w", errBadEntry, i, err)
		}
		if k := len(cmds); k > 0 && c.Seq != cmds[k-1].Seq+1 {
			return cmds, fmt.Errorf("%w: sequence %d after %d", errBadEntry, c.Seq, cmds[k-1].Seq)
		}
		cmds = append(cmds, c)
		data = data[2+l:]
	}
	if len(data) != 0 {
		return cmds, fmt.Errorf("%w: %d bytes after the last command", errBadEntry, len(data))
	}
	return cmds, nil
}
