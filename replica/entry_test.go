package replica

import (
	"bytes"
	"testing"

	"github.com/matchd/matchd/engine"
)

func sampleCmds() []engine.Command {
	return []engine.Command{
		{Seq: 7, Time: 99, Kind: engine.CmdNewOrder, Account: 1, Instrument: 1, Side: engine.Buy, Type: engine.Limit,
			TIF: engine.GTC, Price: 100, Qty: 5, Ref: 3, Session: 0x414c474f2d310000},
		{Seq: 8, Time: 99, Kind: engine.CmdCancel, Account: 1, OrderID: 4},
		{Seq: 9, Time: 100, Kind: engine.CmdNewOrder, Account: 2, Instrument: 1, Side: engine.Sell, Type: engine.StopLimit,
			TIF: engine.GTD, Price: 101, StopPrice: 102, Display: 2, Expire: 1000, Qty: 9, Ref: 1},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	cmds := sampleCmds()
	got, err := decodeEntry(appendEntry(nil, cmds), nil)
	if err != nil || len(got) != len(cmds) {
		t.Fatalf("%v %v", got, err)
	}
	for i := range cmds {
		if got[i] != cmds[i] {
			t.Errorf("command %d: %+v, want %+v", i, got[i], cmds[i])
		}
	}
	gap := append(append([]engine.Command(nil), cmds[0]), cmds[2])
	if _, err := decodeEntry(appendEntry(nil, gap), nil); err == nil {
		t.Error("an entry with a gap in its sequence numbers decoded")
	}
}

// FuzzDecodeEntry: any bytes either fail to decode or decode to commands
// that encode back to the same bytes.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(appendEntry(nil, sampleCmds()))
	f.Add(appendEntry(nil, nil))
	f.Add([]byte{1, 0, 0, 0, 1, 0, 3, 2, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds, err := decodeEntry(data, nil)
		if err != nil {
			return
		}
		if again := appendEntry(nil, cmds); !bytes.Equal(again, data) {
			// Version 1 records are read, never written: those may differ.
			if len(cmds) > 0 && bytes.Contains(data, []byte{0, 66, 1}) {
				return
			}
			t.Fatalf("%x decoded to %+v, which encodes to %x", data, cmds, again)
		}
	})
}
