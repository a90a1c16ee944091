package engine_test

import (
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
)

type wl struct {
	cfg  engine.Config
	cmds []engine.Command
}

var (
	wlA = sync.OnceValue(func() wl { c, x := workload.A(1, 1_000_000); return wl{c, x} })
	wlB = sync.OnceValue(func() wl { c, x := workload.B(1, 500_000); return wl{c, x} })
	wlC = sync.OnceValue(func() wl { c, x := workload.C(1, 20_000, 5, 100_000); return wl{c, x} })
)

// replay times applying every command of w to a fresh engine, once per
// b.N, and reports per-command cost. Engine construction is not timed.
func replay(b *testing.B, w wl) {
	out := make([]engine.Event, 0, 4096)
	var allocs uint64
	var ms runtime.MemStats
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e, err := engine.New(w.cfg)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.Mallocs
		b.StartTimer()
		for j := range w.cmds {
			out = e.Apply(&w.cmds[j], out[:0])
		}
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		allocs += ms.Mallocs - before
		b.StartTimer()
	}
	n := float64(b.N) * float64(len(w.cmds))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/cmd")
	b.ReportMetric(n/b.Elapsed().Seconds()/1e6, "Mcmd/s")
	b.ReportMetric(float64(allocs)/n, "allocs/cmd")
}

// BenchmarkWorkloadA: 1 M commands, 60% passive / 30% cancel / 10%
// aggressive around a drifting mid (see workload.A).
func BenchmarkWorkloadA(b *testing.B) { replay(b, wlA()) }

// BenchmarkWorkloadB: 500 k non-crossing inserts over 1,000 levels, then
// cancels of all of them in random order (see workload.B).
func BenchmarkWorkloadB(b *testing.B) { replay(b, wlB()) }

// BenchmarkWorkloadC: 200 k resting orders over 20,000 levels a side,
// then 100 k sweeps of 5 to 50 levels, each swept price replenished (see
// workload.C); every command (the inserts, the sweeps, the
// replenishments) counts.
func BenchmarkWorkloadC(b *testing.B) { replay(b, wlC()) }

// BenchmarkDeepSweep: one market order consuming 10,000 resting orders of
// one lot each over 100 levels.
func BenchmarkDeepSweep(b *testing.B) {
	const levels, perLevel = 100, 100
	out := make([]engine.Event, 0, levels*perLevel+levels+16) // fills, level changes, the rest
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cfg := workload.Config(levels * perLevel)
		e, _ := engine.New(cfg)
		seq := engine.Seq(0)
		for l := 0; l < levels; l++ {
			for k := 0; k < perLevel; k++ {
				seq++
				c := engine.Command{Seq: seq, Kind: engine.CmdNewOrder, Account: engine.AccountID(2 + k%50),
					Instrument: workload.Instrument, Side: engine.Sell, Type: engine.Limit, TIF: engine.GTC,
					Price: 100_001 + engine.Price(l), Qty: 1, Ref: engine.ClientRef(seq)}
				out = e.Apply(&c, out[:0])
			}
		}
		seq++
		sweep := engine.Command{Seq: seq, Kind: engine.CmdNewOrder, Account: 1, Instrument: workload.Instrument,
			Side: engine.Buy, Type: engine.Market, TIF: engine.IOC, Qty: levels * perLevel, Ref: 1}
		b.StartTimer()
		out = e.Apply(&sweep, out[:0])
		b.StopTimer()
		fills := 0
		for j := range out {
			if out[j].Kind == engine.EvFill {
				fills++
			}
		}
		if fills != levels*perLevel {
			b.Fatalf("%d fills", fills)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*levels*perLevel), "ns/fill")
}

// BenchmarkRestingOrderMemory reports the heap held per resting order with
// 1 M orders resting over 1,000 levels, index included.
func BenchmarkRestingOrderMemory(b *testing.B) {
	const n = 1_000_000
	w := wlB()
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		cfg := w.cfg
		cfg.ReserveOrders = 0 // grow on demand, as in production without a reservation
		e, _ := engine.New(cfg)
		out := make([]engine.Event, 0, 16)
		for j := 0; j < n; j++ {
			c := engine.Command{Seq: engine.Seq(j + 1), Kind: engine.CmdNewOrder, Account: engine.AccountID(1 + j%100),
				Instrument: workload.Instrument, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC,
				Price: 99_000 + engine.Price(j%1000), Qty: 1, Ref: engine.ClientRef(j + 1)}
			out = e.Apply(&c, out[:0])
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if e.OpenOrderCount() != n {
			b.Fatal("orders did not rest")
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/order")
		runtime.KeepAlive(e)
	}
}

// BenchmarkLatencyAt1M replays workload A paced open loop at 1 M commands/s
// (one every microsecond, on a schedule fixed in advance) and reports
// percentiles of the time from each command's scheduled start to the end of
// its Apply, so a slow command also charges the ones queued behind it.
func BenchmarkLatencyAt1M(b *testing.B) {
	w := wlA()
	lat := make([]time.Duration, len(w.cmds))
	svc := make([]time.Duration, len(w.cmds))
	out := make([]engine.Event, 0, 4096)
	for i := 0; i < b.N; i++ {
		e, _ := engine.New(w.cfg)
		runtime.GC()
		start := time.Now()
		for j := range w.cmds {
			due := time.Duration(j) * time.Microsecond
			now := time.Since(start)
			for now < due {
				now = time.Since(start)
			}
			out = e.Apply(&w.cmds[j], out[:0])
			end := time.Since(start)
			lat[j] = end - due
			svc[j] = end - now
		}
	}
	pct := func(d []time.Duration, p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Nanoseconds()) }
	slices.Sort(lat)
	slices.Sort(svc)
	b.ReportMetric(pct(lat, 0.50), "p50-ns")
	b.ReportMetric(pct(lat, 0.99), "p99-ns")
	b.ReportMetric(pct(lat, 0.999), "p99.9-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	// Service time: from the moment Apply could start to its end, so
	// queueing behind an earlier stall is excluded.
	b.ReportMetric(pct(svc, 0.50), "svc-p50-ns")
	b.ReportMetric(pct(svc, 0.99), "svc-p99-ns")
	b.ReportMetric(pct(svc, 0.9999), "svc-p99.99-ns")
}

// BenchmarkLatencyA: every command of workload A timed on its own (the
// monotonic clock read around each Apply), reported as percentiles in
// nanoseconds, with the cost of the two clock reads themselves
// (timer_ns, measured here on an empty interval) stated beside them:
// each percentile includes it once.
func BenchmarkLatencyA(b *testing.B) {
	w := wlA()
	out := make([]engine.Event, 0, 4096)
	lat := make([]int64, 0, len(w.cmds))
	var timer int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e, err := engine.New(w.cfg)
		if err != nil {
			b.Fatal(err)
		}
		lat = lat[:0]
		const probes = 100_000
		t0 := time.Now()
		for range probes {
			a := time.Now()
			lat = append(lat, int64(time.Since(a)))
		}
		timer = int64(time.Since(t0)) / probes
		slices.Sort(lat)
		timer = min(timer, lat[len(lat)/2])
		lat = lat[:0]
		runtime.GC()
		b.StartTimer()
		for j := range w.cmds {
			a := time.Now()
			out = e.Apply(&w.cmds[j], out[:0])
			lat = append(lat, int64(time.Since(a)))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) }
	b.ReportMetric(q(0.5), "p50_ns")
	b.ReportMetric(q(0.99), "p99_ns")
	b.ReportMetric(q(0.999), "p99.9_ns")
	b.ReportMetric(q(0.9999), "p99.99_ns")
	b.ReportMetric(float64(timer), "timer_ns")
}
