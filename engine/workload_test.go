package engine_test

import (
	"fmt"
	"testing"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
)

// TestWorkloadsMatchReference: the benchmark workloads, scaled down, give
// the same events from the engine and from the naive reference model, so
// a benchmark measures an engine that is right on exactly that flow (the
// state hash at the end is printed as the workload's checksum).
func TestWorkloadsMatchReference(t *testing.T) {
	n := 1
	if testing.Short() {
		n = 4 // the race run: a quarter of the size
	}
	for _, w := range []struct {
		name   string
		trades bool
		gen    func() (engine.Config, []engine.Command)
	}{
		{"A", true, func() (engine.Config, []engine.Command) { return workload.A(7, 5_000/n) }},
		{"B", false, func() (engine.Config, []engine.Command) { return workload.B(7, 2_000/n) }},
		{"C", true, func() (engine.Config, []engine.Command) { return workload.C(7, 150/n, 3, 200/n) }},
	} {
		t.Run(w.name, func(t *testing.T) {
			cfg, cmds := w.gen()
			e, err := engine.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m := newRefModel(cfg)
			var out []engine.Event
			fills := 0
			for i := range cmds {
				out = e.Apply(&cmds[i], out[:0])
				want := m.Apply(&cmds[i])
				if !eventsEqual(out, want) {
					t.Fatalf("command %d (%s): engine %d events, model %d", i, cmds[i].Describe(), len(out), len(want))
				}
				for _, ev := range out {
					if ev.Kind == engine.EvFill {
						fills++
					}
				}
			}
			if err := e.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
			if w.trades && fills == 0 {
				t.Fatal("no trades: the workload exercises nothing")
			}
			h := e.StateHash()
			t.Logf("workload %s: %d commands, %d fills, %d open at the end, state %s", w.name, len(cmds), fills,
				e.OpenOrderCount(), fmt.Sprintf("%x", h[:8]))
		})
	}
}
