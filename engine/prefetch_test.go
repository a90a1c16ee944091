package engine_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
)

// TestPrefetchChangesNothing: an engine told about the commands queued
// behind each one (and about junk: every distance, unknown and reused
// order IDs, every command kind) gives the same events, command by
// command, and ends in the same state as one that is told nothing. The
// flows are the benchmark workloads and the differential test's, which
// covers replaces, rejects, stops, icebergs, auctions and snapshots'
// worth of state.
func TestPrefetchChangesNothing(t *testing.T) {
	n := 30_000
	if testing.Short() {
		n = 5_000
	}
	diff := func() (engine.Config, []engine.Command) {
		cfg := diffConfig()
		m := newRefModel(cfg)
		g := newGen(11)
		cmds := make([]engine.Command, 0, n)
		for range n {
			c := g.next(m)
			m.Apply(&c)
			cmds = append(cmds, c)
		}
		return cfg, cmds
	}
	for _, w := range []struct {
		name string
		gen  func() (engine.Config, []engine.Command)
	}{
		{"A", func() (engine.Config, []engine.Command) { return workload.A(3, n) }},
		{"B", func() (engine.Config, []engine.Command) { return workload.B(3, n/2) }},
		{"differential", diff},
	} {
		t.Run(w.name, func(t *testing.T) {
			cfg, cmds := w.gen()
			plain, err := engine.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			told, _ := engine.New(cfg)
			r := rand.New(rand.NewPCG(1, 2))
			junk := engine.Command{}
			var a, b []engine.Event
			for i := range cmds {
				for k := 1; k <= 16; k++ {
					if i+k < len(cmds) {
						told.Prefetch(&cmds[i+k], k)
					}
				}
				junk.Kind = engine.CommandKind(r.IntN(8))
				junk.OrderID = engine.OrderID(r.Uint64N(uint64(2*len(cmds) + 2)))
				junk.Instrument = engine.InstrumentID(r.IntN(300))
				told.Prefetch(&junk, engine.PrefetchDistances()[r.IntN(3)])
				told.PrefetchAhead(cmds, i)
				told.PrefetchAhead(cmds, i-r.IntN(4)) // behind, and before the start
				told.PrefetchAhead(cmds, len(cmds)-r.IntN(8))
				a = plain.Apply(&cmds[i], a[:0])
				b = told.Apply(&cmds[i], b[:0])
				if !slices.Equal(a, b) {
					t.Fatalf("command %d (%s): %d events without prefetching, %d with", i, cmds[i].Describe(), len(a), len(b))
				}
			}
			if plain.StateHash() != told.StateHash() {
				t.Fatal("state hashes differ")
			}
			if err := told.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPrefetchDoesNotAllocate: the prefetching the matching loop and
// recovery do before every command allocates nothing.
func TestPrefetchDoesNotAllocate(t *testing.T) {
	cfg, cmds := workload.B(5, 2_000)
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []engine.Event
	half := len(cmds) / 2
	for i := range cmds[:half] {
		out = e.Apply(&cmds[i], out[:0])
	}
	i := half
	allocs := testing.AllocsPerRun(500, func() {
		for _, k := range engine.PrefetchDistances() {
			e.Prefetch(&cmds[i+k], k)
		}
		e.PrefetchAhead(cmds, i)
		i++
	})
	if allocs != 0 {
		t.Fatalf("Prefetch allocates %.1f times a call", allocs)
	}
}
