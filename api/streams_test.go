package api

import (
	"bytes"
	"fmt"
	"testing"
)

// TestStreamRetention: a stream keeps at least its newest keep messages,
// returns them byte for byte from any retained number, and trims whole
// chunks; a message that does not follow starts afresh.
func TestStreamRetention(t *testing.T) {
	ss := newStreams(5000, 1<<30)
	k := streamKey{1, 2}
	frame := func(i uint64) []byte { return []byte(fmt.Sprintf("<%d:%s>", i, bytes.Repeat([]byte{'x'}, int(i%50)))) }
	var st *stream
	for i := uint64(1); i <= 20_000; i++ {
		st = ss.add(k, i, frame(i))
	}
	if st.retained() < 5000 || st.retained() > 5000+chunkBytes/32+chunkBytes/8 || st.last != 20_000 || st.first != 20_001-uint64(st.retained()) {
		t.Fatalf("retained %d from %d to %d", st.retained(), st.first, st.last)
	}
	if ss.bytes != int64(st.size()) {
		t.Fatalf("accounted %d bytes, holds %d", ss.bytes, st.size())
	}
	var got []byte
	for next := st.first; next <= st.last; {
		var f []byte
		f, next = st.frames(next, 1000)
		got = append(got, f...)
	}
	var want []byte
	for i := st.first; i <= st.last; i++ {
		want = append(want, frame(i)...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the retained frames differ from those added")
	}
	if n := st.bytesFrom(st.last); n != len(frame(st.last)) {
		t.Fatalf("bytesFrom(last) = %d", n)
	}
	ss.add(k, 30_000, frame(30_000)) // a gap: afresh
	if st.retained() != 1 || st.first != 30_000 || ss.bytes != int64(len(frame(30_000))) {
		t.Fatalf("after a gap: %d from %d, %d bytes", st.retained(), st.first, ss.bytes)
	}
}

// TestStreamsBudget: past the byte budget the largest stream gives up
// its older half, and the total stays near the budget.
func TestStreamsBudget(t *testing.T) {
	ss := newStreams(1_000_000, 1<<20)
	for i := uint64(1); i <= 100_000; i++ {
		ss.add(streamKey{1, 1}, i, bytes.Repeat([]byte{'y'}, 40))
		if i%4 == 0 {
			ss.add(streamKey{1, 2}, i/4, bytes.Repeat([]byte{'z'}, 40))
		}
	}
	if ss.bytes > 1<<20 {
		t.Fatalf("%d bytes retained, budget %d", ss.bytes, 1<<20)
	}
	if a := ss.get(streamKey{1, 1}, false); a.last != 100_000 || a.retained() == 0 {
		t.Fatalf("stream 1: last %d, %d retained", a.last, a.retained())
	}
}
