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
