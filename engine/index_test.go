package engine

import (
	"math/rand/v2"
	"testing"
)

// TestOrderIndex checks the hash table against a map under random puts and
// deletes, with IDs both sequential (as the engine assigns them) and
// scattered (to force long probe runs and wrap-around).
func TestOrderIndex(t *testing.T) {
	for _, scattered := range []bool{false, true} {
		var x orderIndex
		x.init()
		ref := map[OrderID]*order{}
		r := rand.New(rand.NewPCG(1, 2))
		next := OrderID(0)
		for i := 0; i < 200_000; i++ {
			if r.IntN(3) != 0 || len(ref) == 0 {
				next++
				id := next
				if scattered {
					id = OrderID(r.Uint64N(1 << 40))
					if ref[id] != nil {
						continue
					}
				}
				o := &order{id: id}
				x.put(o)
				ref[id] = o
			} else {
				for id := range ref {
					x.del(id)
					delete(ref, id)
					break
				}
			}
			if i%1000 == 0 {
				if x.len() != len(ref) {
					t.Fatalf("len %d, want %d", x.len(), len(ref))
				}
				for id, o := range ref {
					if x.get(id) != o {
						t.Fatalf("get(%d) lost", id)
					}
				}
				if x.get(next+1) != nil {
					t.Fatal("found an absent id")
				}
			}
		}
		x.del(next + 12345) // absent: no effect
		if x.len() != len(ref) {
			t.Fatal("deleting an absent id changed the count")
		}
	}
}
