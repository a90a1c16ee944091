package engine

import (
	"math/rand/v2"
	"slices"
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

// TestSortTouches checks sortTouches against a plain sort on the shapes it
// special-cases (ascending, descending, a monotone run and a short tail)
// and on random records.
func TestSortTouches(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 5000; i++ {
		n := 2 + r.IntN(80)
		ls := make([]levelTouch, n)
		shape := r.IntN(4)
		for j := range ls {
			p := Price(r.IntN(40))
			switch shape {
			case 0:
				p = Price(j)
			case 1:
				p = Price(n - j)
			case 2:
				if j < n-r.IntN(6) {
					p = Price(3 * (n - j))
				}
			}
			ls[j] = levelTouch{inst: InstrumentID(1 + r.IntN(2)*shape/3), side: Side(1 + r.IntN(2)*(shape/3)), price: p, order: int32(j)}
		}
		want := slices.Clone(ls)
		slices.SortFunc(want, func(a, b levelTouch) int {
			if a.less(&b) {
				return -1
			}
			return 1
		})
		sortTouches(ls)
		if !slices.Equal(ls, want) {
			t.Fatalf("shape %d, %d records: got %v, want %v", shape, n, ls, want)
		}
	}
}

// TestLevelHash checks the by-price hash of levels against a map under
// random puts and deletes, with prices clustered (as near a mid) and
// scattered.
func TestLevelHash(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var h levelHash
	ref := map[Price]int32{}
	for i := 0; i < 100_000; i++ {
		p := Price(100_000 + r.IntN(300))
		if i%3 == 0 {
			p = Price(r.Int64N(int64(MaxPrice)))
		}
		if id, ok := ref[p]; ok {
			if got := h.find(p); got != id+1 {
				t.Fatalf("find(%d) = %d, want %d", p, got, id+1)
			}
			h.del(p)
			delete(ref, p)
		} else {
			ref[p] = int32(i)
			h.put(p, int32(i))
		}
		if i%997 == 0 {
			if h.n != len(ref) {
				t.Fatalf("n %d, want %d", h.n, len(ref))
			}
			for p, id := range ref {
				if h.find(p) != id+1 {
					t.Fatalf("lost price %d", p)
				}
			}
			if h.find(MaxPrice+1) != 0 {
				t.Fatal("found an absent price")
			}
		}
	}
}
