package persist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/matchd/matchd/engine"
)

// setRecord replaces the journal record of seq, inside whichever group
// holds it, with rec (which need not decode), or deletes it (rec nil),
// splitting its group in two. Tests use it to damage the journal.
func (s *Store) setRecord(seq engine.Seq, rec []byte) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: key(prefixJournal, seq), UpperBound: []byte{prefixJournal + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	if !it.First() {
		return fmt.Errorf("no group holds seq %d", seq)
	}
	k := seqOfKey(it.Key())
	v := append([]byte(nil), it.Value()...)
	first, _, ok := groupFirst(k, v)
	if !ok || first > seq {
		return fmt.Errorf("no group holds seq %d", seq)
	}
	off := 0
	for range seq - first {
		off += recordLen(v[off])
	}
	before, after := v[:off], v[off+recordLen(v[off]):]
	b := s.db.NewBatch()
	defer b.Close()
	if rec != nil {
		b.Set(it.Key(), append(append(append([]byte(nil), before...), rec...), after...), nil)
	} else {
		b.Delete(it.Key(), nil)
		if len(before) > 0 {
			b.Set(key(prefixJournal, seq-1), before, nil)
		}
		if len(after) > 0 {
			b.Set(it.Key(), after, nil)
		}
	}
	return b.Commit(pebble.Sync)
}

func groupCommands(n int) []engine.Command {
	cmds := make([]engine.Command, n)
	for i := range cmds {
		cmds[i] = engine.Command{Seq: engine.Seq(i + 1), Time: int64(i), Kind: engine.CmdNewOrder, Account: 1,
			Instrument: 1, Side: engine.Side(i % 2), Price: engine.Price(100 + i%7), Qty: 1, Ref: engine.ClientRef(i + 1)}
		if i%5 == 0 {
			cmds[i].Expire = int64(1e12) // a version 3 record among version 2 ones
			cmds[i].TIF = engine.GTD
		}
	}
	return cmds
}

// groupStore returns a store in memory whose journal holds cmds, written
// in writes of the given sizes (the rest in one more), and synced.
func groupStore(t *testing.T, cmds []engine.Command, writes ...int) *Store {
	t.Helper()
	s, err := Open("db", replayConfig(), Options{FS: vfs.NewMem(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	next := 0
	for _, n := range append(writes, len(cmds)-sum(writes)) {
		if n == 0 {
			continue
		}
		if err := s.Write(cmds[next : next+n]); err != nil {
			t.Fatal(err)
		}
		next += n
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	return s
}

func sum(ns []int) int {
	t := 0
	for _, n := range ns {
		t += n
	}
	return t
}

// TestGroupsReplayFromAnywhere writes commands in writes of many sizes
// (each its groups of at most maxGroup) and replays every [from, to]
// window that starts or ends at a group's edge or inside one.
func TestGroupsReplayFromAnywhere(t *testing.T) {
	writes := []int{1, 2, 1, maxGroup + 3, 7, 2 * maxGroup, 1}
	next := sum(writes)
	cmds := groupCommands(next)
	s := groupStore(t, cmds, writes...)
	if first, err := s.FirstSeq(); err != nil || first != 1 {
		t.Fatalf("FirstSeq = %d, %v", first, err)
	}
	if last, err := s.LastSeq(); err != nil || last != engine.Seq(next) {
		t.Fatalf("LastSeq = %d, %v; want %d", last, err, next)
	}
	edges := []engine.Seq{1, 2, 3, 4, 5, 500, maxGroup + 3, maxGroup + 4, maxGroup + 5, 1030, 1031, 1032, 2000, 3057, 3058, engine.Seq(next)}
	for _, from := range edges {
		for _, to := range append([]engine.Seq{0}, edges...) {
			if to != 0 && to < from {
				continue
			}
			want := from
			err := s.Replay(context.Background(), from, to, func(c *engine.Command) error {
				if *c != cmds[want-1] {
					return fmt.Errorf("seq %d: got %+v", want, *c)
				}
				want++
				return nil
			})
			end := to
			if end == 0 {
				end = engine.Seq(next)
			}
			if err != nil || want != end+1 {
				t.Fatalf("replay [%d, %d]: stopped before %d: %v", from, to, want, err)
			}
		}
	}
}

// TestGroupsRefuseSeqGaps: one write is one run of consecutive commands;
// a write that is not stages nothing, not even its first whole group.
func TestGroupsRefuseSeqGaps(t *testing.T) {
	s, err := Open("db", replayConfig(), Options{FS: vfs.NewMem(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmds := groupCommands(maxGroup + 3)
	cmds[maxGroup+2].Seq++
	if err := s.Write(cmds); err == nil {
		t.Fatal("a write with a gap in its sequence numbers was taken")
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if last, err := s.LastSeq(); err != nil || last != 0 {
		t.Fatalf("the refused write staged records: last seq %d, %v", last, err)
	}
}

// TestTruncateInsideGroup cuts a group in the middle: what is before the
// cut stays, readable, and the high-water mark follows.
func TestTruncateInsideGroup(t *testing.T) {
	cmds := groupCommands(300)
	s := groupStore(t, cmds, 100)
	removed, err := s.TruncateJournal(51)
	if err != nil || removed != 250 {
		t.Fatalf("TruncateJournal(51) = %d, %v; want 250 removed", removed, err)
	}
	if last, err := s.LastSeq(); err != nil || last != 50 {
		t.Fatalf("LastSeq = %d, %v; want 50", last, err)
	}
	n := 0
	if err := s.Replay(context.Background(), 1, 0, func(c *engine.Command) error { n++; return nil }); err != nil || n != 50 {
		t.Fatalf("replayed %d, %v; want 50", n, err)
	}
}

// FuzzGroupShape: any bytes either split into whole records, which then
// concatenate back to them, or say where they stop.
func FuzzGroupShape(f *testing.F) {
	cmds := groupCommands(6)
	var g []byte
	for i := range cmds {
		g = AppendRecord(g, &cmds[i])
	}
	f.Add(g)
	f.Add(g[:len(g)-1])
	f.Add([]byte{2})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := groupShape(b)
		var back []byte
		rest := b
		for range n {
			l := recordLen(rest[0])
			back = append(back, rest[:l]...)
			rest = rest[l:]
		}
		if err == nil && !bytes.Equal(back, b) {
			t.Fatalf("%d whole records do not make the value", n)
		}
		if err != nil && len(rest) == 0 && n > 0 {
			t.Fatalf("an error with nothing left: %v", err)
		}
		if first, m, ok := groupFirst(engine.Seq(n+5), b); ok != (err == nil) || m != n || (ok && first != 6) {
			t.Fatalf("groupFirst = %d, %d, %v for %d records, %v", first, m, ok, n, err)
		}
	})
}

// TestGroupThatDoesNotSplit: a record whose version byte is damaged stops
// its group from splitting; replay names that record, in the middle of the
// journal, and truncating from it leaves the records before it.
func TestGroupThatDoesNotSplit(t *testing.T) {
	cmds := groupCommands(100)
	s := groupStore(t, cmds, 10)
	rec := AppendRecord(nil, &cmds[59])
	rec[0] = 9
	if err := s.setRecord(60, rec); err != nil {
		t.Fatal(err)
	}
	for _, from := range []engine.Seq{1, 11, 59} {
		err := s.Replay(context.Background(), from, 0, func(*engine.Command) error { return nil })
		var re *RecordError
		if !errors.As(err, &re) || re.Seq != 60 || re.Last {
			t.Fatalf("replay from %d: %v; want record 60 in the middle", from, err)
		}
	}
	if _, err := s.TruncateJournal(61); err == nil {
		t.Fatal("truncated inside the records a group no longer splits into")
	}
	if removed, err := s.TruncateJournal(60); err != nil || removed != 1 {
		t.Fatalf("TruncateJournal(60) = %d, %v; want the unsplittable rest counted as 1", removed, err)
	}
	n := 0
	if err := s.Replay(context.Background(), 1, 0, func(*engine.Command) error { n++; return nil }); err != nil || n != 59 {
		t.Fatalf("after truncating: replayed %d, %v; want 59", n, err)
	}
}
