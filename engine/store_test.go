package engine

import (
	"math/rand/v2"
	"testing"
)

// TestOrderStore checks the store against a map under random puts and
// deletes, with IDs both sequential (as the engine assigns them) and
// scattered (to force long probe runs, wrap-around and equal low 32 bits).
func TestOrderStore(t *testing.T) {
	for _, scattered := range []bool{false, true} {
		var s orderStore
		s.init()
		ref := map[OrderID]*order{}
		r := rand.New(rand.NewPCG(1, 2))
		next := OrderID(0)
		for i := 0; i < 200_000; i++ {
			if r.IntN(3) != 0 || len(ref) == 0 {
				next++
				id := next
				if scattered {
					id = OrderID(r.Uint64N(1<<36)) | OrderID(r.IntN(4))<<32
					if ref[id] != nil {
						continue
					}
				}
				o := s.alloc()
				o.id = id
				s.put(o)
				ref[id] = o
			} else {
				for id, o := range ref {
					s.del(o)
					s.release(o)
					delete(ref, id)
					break
				}
			}
			if i%1000 == 0 {
				if s.len() != len(ref) {
					t.Fatalf("len %d, want %d", s.len(), len(ref))
				}
				for id, o := range ref {
					if s.get(id) != o {
						t.Fatalf("get(%d) lost", id)
					}
				}
				if s.get(next+1<<40) != nil {
					t.Fatal("found an absent id")
				}
				if got := len(s.free) + len(ref); got != len(s.chunks)*chunkSize {
					t.Fatalf("%d free + %d used != %d allocated", len(s.free), len(ref), len(s.chunks)*chunkSize)
				}
			}
		}
	}
}
