package persist

import (
	"slices"
	"testing"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
)

// BenchmarkSyncOneRecord: one journal record per commit, with fsync, on a
// real directory: the floor under any acknowledgment latency.
func BenchmarkSyncOneRecord(b *testing.B) {
	st, err := Open(b.TempDir(), workload.Config(0), Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	lat := make([]time.Duration, 0, b.N)
	c := []engine.Command{{Kind: engine.CmdCancel, Account: 1, OrderID: 1}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c[0].Seq = engine.Seq(i + 1)
		start := time.Now()
		st.Write(c)
		if err := st.Sync(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkSnapshotterCatchUp: the snapshotter's replica caught up over a
// journal of workload A or B (1 M commands) and snapshotted: the
// background work a snapshot costs the server, in commands replayed per
// second of the whole Snapshot call.
func BenchmarkSnapshotterCatchUp(b *testing.B) {
	for _, w := range []struct {
		name string
		make func(uint64, int) (engine.Config, []engine.Command)
		n    int
	}{{"A", workload.A, 1_000_000}, {"B", workload.B, 500_000}} {
		b.Run(w.name, func(b *testing.B) {
			cfg, cmds := w.make(1, w.n)
			st, err := Open(b.TempDir(), cfg, Options{NoSync: true, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			e, _, err := st.Recover()
			if err != nil {
				b.Fatal(err)
			}
			for k := 0; k < len(cmds); k += 4096 {
				if err := st.Write(cmds[k:min(k+4096, len(cmds))]); err != nil {
					b.Fatal(err)
				}
			}
			if err := st.Sync(); err != nil {
				b.Fatal(err)
			}
			last := cmds[len(cmds)-1].Seq
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sn, _ := NewSnapshotter(st, e, func() engine.Seq { return last }, SnapshotterConfig{})
				start := time.Now()
				if seq, err := sn.Snapshot(); err != nil || seq != last {
					b.Fatal(seq, err)
				}
				b.ReportMetric(float64(len(cmds))/time.Since(start).Seconds()/1e6, "Mcmd/s")
				sn.Close()
			}
		})
	}
}
