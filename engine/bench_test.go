package engine_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
)

type wl struct {
	cfg  engine.Config
	cmds []engine.Command
}

var (
	wlA = sync.OnceValue(func() wl {
		return cachedWorkload("A", func() (engine.Config, []engine.Command) { return workload.A(1, 1_000_000) })
	})
	wlB = sync.OnceValue(func() wl {
		return cachedWorkload("B", func() (engine.Config, []engine.Command) { return workload.B(1, 500_000) })
	})
	wlC = sync.OnceValue(func() wl {
		return cachedWorkload("C", func() (engine.Config, []engine.Command) { return workload.C(1, 20_000, 5, 100_000) })
	})
)

// cachedWorkload generates a workload, or with MATCHD_WORKLOAD_CACHE set to
// a directory reads it from there (writing it the first time). Generating
// a workload runs it through an engine, which under callgrind takes longer
// than the run being measured; the cache is for such runs, and for
// comparing builds on the same commands.
func cachedWorkload(name string, gen func() (engine.Config, []engine.Command)) wl {
	dir := os.Getenv("MATCHD_WORKLOAD_CACHE")
	if dir == "" {
		c, x := gen()
		return wl{c, x}
	}
	cfgPath, cmdPath := filepath.Join(dir, name+".json"), filepath.Join(dir, name+".cmds")
	if cj, err := os.ReadFile(cfgPath); err == nil {
		raw, err := os.ReadFile(cmdPath)
		var w wl
		if err == nil {
			err = json.Unmarshal(cj, &w.cfg)
		}
		if err != nil {
			panic(err)
		}
		size := int(unsafe.Sizeof(engine.Command{}))
		w.cmds = make([]engine.Command, len(raw)/size)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w.cmds))), len(w.cmds)*size), raw)
		return w
	}
	c, x := gen()
	cj, err := json.Marshal(c)
	if err == nil {
		err = os.WriteFile(cfgPath, cj, 0o644)
	}
	if err == nil {
		err = os.WriteFile(cmdPath, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), len(x)*int(unsafe.Sizeof(engine.Command{}))), 0o644)
	}
	if err != nil {
		panic(err)
	}
	return wl{c, x}
}

// replay times applying every command of w to a fresh engine, once per
// b.N, and reports per-command cost. Engine construction is not timed.
// noPrefetch (MATCHD_BENCH_NOPREFETCH=1) replays without Engine.Prefetch,
// to measure what it gains.
var noPrefetch = os.Getenv("MATCHD_BENCH_NOPREFETCH") != ""

// prefetchQueued tells e that the commands after cmds[j] are queued, as
// the matching loop does with the rest of its batch.
func prefetchQueued(e *engine.Engine, cmds []engine.Command, j int) {
	if noPrefetch {
		return
	}
	e.PrefetchAhead(cmds, j)
}

// growStack grows the goroutine's stack by about n KiB, so that the
// replay never grows it inside Apply: a stack growth there moves the stack
// under valgrind's callgrind, which then loses track of which function it
// is in and counts instructions outside Apply as inside (run callgrind
// with GODEBUG=gcshrinkstackoff=1 too, or the benchmark's runtime.GC
// calls shrink it again).
//
//go:noinline
func growStack(n int) byte {
	var pad [1024]byte
	if n <= 1 {
		return pad[n]
	}
	return growStack(n-1) + pad[n%len(pad)]
}

func replay(b *testing.B, w wl) {
	growStack(256)
	out := make([]engine.Event, 0, 4096)
	var allocs, late uint64
	var lateTime time.Duration
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
		half := len(w.cmds) / 2
		for j := range w.cmds[:half] {
			prefetchQueued(e, w.cmds, j)
			out = e.Apply(&w.cmds[j], out[:0])
		}
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		mid := ms.Mallocs
		b.StartTimer()
		t0 := time.Now()
		for j := half; j < len(w.cmds); j++ {
			prefetchQueued(e, w.cmds, j)
			out = e.Apply(&w.cmds[j], out[:0])
		}
		lateTime += time.Since(t0)
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		allocs += ms.Mallocs - before
		late += ms.Mallocs - mid
		b.StartTimer()
	}
	n := float64(b.N) * float64(len(w.cmds))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/cmd")
	b.ReportMetric(n/b.Elapsed().Seconds()/1e6, "Mcmd/s")
	b.ReportMetric(float64(allocs)/n, "allocs/cmd")
	// The second half of the commands, once the book has grown to its
	// size: the structures' warm-up is over.
	lateN := n - float64(b.N)*float64(len(w.cmds)/2)
	b.ReportMetric(float64(late)/lateN, "late-allocs/cmd")
	// And their time alone (workload B's second half is its cancels).
	b.ReportMetric(float64(lateTime.Nanoseconds())/lateN, "late-ns/cmd")
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
