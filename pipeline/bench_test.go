package pipeline_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/workload"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
)

var benchA = sync.OnceValues(func() (engine.Config, []engine.Command) { return workload.A(1, 1_000_000) })

// timedJournal times the real store's Awaits: from the moment the release
// stage asks until the Commit is durable.
type timedJournal struct {
	*persist.Store
	syncs []time.Duration
}

func (j *timedJournal) Await() error {
	start := time.Now()
	err := j.Store.Await()
	j.syncs = append(j.syncs, time.Since(start))
	return err
}

func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[int(q*float64(len(d)-1))]
}

// benchPipeline pushes workload A (1 M commands) from one producer, in
// Submit calls of submit requests, through ring → loop → Pebble journal →
// delivery, on a real on-disk store, and reports sustained commands/s (first
// submit to last delivery), the loop's batch sizes and the sync latency.
func benchPipeline(b *testing.B, noSync bool, submit int) {
	cfg, cmds := benchA()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		store, err := persist.Open(b.TempDir(), cfg, persist.Options{NoSync: noSync, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		e, _, _ := store.Recover()
		j := &timedJournal{Store: store}
		var delivered atomic.Int64
		done := make(chan struct{})
		p, _ := pipeline.New(e, j, func(bt *pipeline.Batch) {
			if delivered.Add(int64(len(bt.Results))) == int64(len(cmds)) {
				close(done)
			}
		}, pipeline.Config{})
		p.Start()
		reqs := make([]pipeline.Request, submit)
		b.StartTimer()
		start := time.Now()
		for k := 0; k < len(cmds); k += submit {
			n := min(submit, len(cmds)-k)
			for m := range n {
				reqs[m] = pipeline.Request{Cmd: cmds[k+m]}
			}
			p.Submit(reqs[:n]...)
		}
		<-done
		elapsed := time.Since(start)
		b.StopTimer()
		p.Close()
		store.Close()
		b.ReportMetric(float64(len(cmds))/elapsed.Seconds()/1e6, "Mcmd/s")
		m := p.Metrics()
		b.ReportMetric(float64(pipeline.Percentile(&m.BatchSizes, 0.5)), "batch-p50<=")
		b.ReportMetric(float64(pipeline.Percentile(&m.BatchSizes, 0.99)), "batch-p99<=")
		b.ReportMetric(float64(len(cmds))/float64(p.Metrics().Batches), "cmds/batch")
		b.ReportMetric(float64(len(cmds))/float64(len(j.syncs)), "cmds/commit")
		b.ReportMetric(float64(pct(j.syncs, 0.5).Microseconds()), "await-p50-µs")
		b.ReportMetric(float64(pct(j.syncs, 0.99).Microseconds()), "await-p99-µs")
		b.StartTimer()
	}
}

func BenchmarkPipelineFsync(b *testing.B)         { benchPipeline(b, false, 64) }
func BenchmarkPipelineNoFsync(b *testing.B)       { benchPipeline(b, true, 64) }
func BenchmarkPipelineFsyncPerItem(b *testing.B)  { benchPipeline(b, false, 1) }
func BenchmarkPipelineNoFsyncPerIte(b *testing.B) { benchPipeline(b, true, 1) }

// BenchmarkReplay measures recovery's replay rate: 1 M journaled commands
// after the initial snapshot, read back, decoded and applied.
func BenchmarkReplay(b *testing.B) {
	cfg, cmds := benchA()
	dir := b.TempDir()
	store, err := persist.Open(dir, cfg, persist.Options{NoSync: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	for k := 0; k < len(cmds); k += 4096 {
		store.Write(cmds[k:min(k+4096, len(cmds))])
		store.Sync()
	}
	store.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		store, _ := persist.Open(dir, cfg, persist.Options{Logger: quiet})
		start := time.Now()
		e, st, err := store.Recover()
		d := time.Since(start)
		if err != nil || st.Replayed != len(cmds) || e.LastSeq() != engine.Seq(len(cmds)) {
			b.Fatal(err, st)
		}
		store.Close()
		b.ReportMetric(float64(st.Replayed)/d.Seconds()/1e6, "Mcmd/s")
	}
	// The engine alone on the same commands, for comparison.
	e, _ := engine.New(cfg)
	var out []engine.Event
	start := time.Now()
	for k := range cmds {
		out = e.Apply(&cmds[k], out[:0])
	}
	b.ReportMetric(float64(len(cmds))/time.Since(start).Seconds()/1e6, "engine-only-Mcmd/s")
}

// BenchmarkRestart10M journals 10 M commands through the pipeline (without
// fsync, to build it quickly) with a snapshot every 1 M, closes, and times
// a restart: open, load the newest snapshot, replay the rest.
func BenchmarkRestart10M(b *testing.B) {
	const n = 10_000_000
	cfg, cmds := workload.A(2, n)
	dir := b.TempDir()
	store, _ := persist.Open(dir, cfg, persist.Options{NoSync: true, Logger: quiet})
	e, _, _ := store.Recover()
	var delivered atomic.Int64
	p, _ := pipeline.New(e, store, func(bt *pipeline.Batch) { delivered.Add(int64(len(bt.Results))) }, pipeline.Config{})
	sn, _ := persist.NewSnapshotter(store, e, p.Durable, persist.SnapshotterConfig{Every: 1_000_000, Poll: 10 * time.Millisecond})
	p.Start()
	sn.Start()
	reqs := make([]pipeline.Request, 256)
	for k := 0; k < n; k += 256 {
		m := min(256, n-k)
		for i := range m {
			reqs[i] = pipeline.Request{Cmd: cmds[k+i]}
		}
		p.Submit(reqs[:m]...)
	}
	p.Close()
	time.Sleep(50 * time.Millisecond)
	sn.Close()
	store.Close()
	cmds = nil
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		store, r, st, d := reopen(b, dir, cfg)
		if r.LastSeq() != n {
			b.Fatal(st)
		}
		store.Close()
		b.ReportMetric(d.Seconds(), "restart-s")
		b.ReportMetric(float64(st.Replayed), "replayed")
		b.ReportMetric(float64(st.SnapshotSeq), "from-snapshot")
	}
}

// BenchmarkSnapshot1M: an engine with 1 M resting orders. Reports how long
// encoding its snapshot takes (the pause the loop would suffer if it
// snapshotted itself; with the replica snapshotter the loop does not wait
// for it at all) and the snapshot's size.
func BenchmarkSnapshot1M(b *testing.B) {
	cfg, cmds := workload.B(1, 1_000_000)
	e, _ := engine.New(cfg)
	var out []engine.Event
	for k := range 1_000_000 { // the insert half only: 1 M resting orders
		out = e.Apply(&cmds[k], out[:0])
	}
	if e.OpenOrderCount() != 1_000_000 {
		b.Fatal(e.OpenOrderCount())
	}
	var buf []byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		buf = e.Snapshot(buf[:0])
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "encode-ms")
	}
	b.ReportMetric(float64(len(buf))/1e6, "MB")
}

// BenchmarkLoopDuringSnapshot runs a steady flow through the pipeline over
// a book of 1 M resting orders while the replica snapshotter snapshots it,
// and reports the longest gap between consecutive deliveries with and
// without a snapshot in progress.
func BenchmarkLoopDuringSnapshot(b *testing.B) {
	cfg, cmds := workload.B(1, 1_000_000)
	for i := 0; i < b.N; i++ {
		store, _ := persist.Open(b.TempDir(), cfg, persist.Options{Logger: quiet})
		e, _, _ := store.Recover()
		var mu sync.Mutex
		var last time.Time
		var maxGap time.Duration
		p, _ := pipeline.New(e, store, func(bt *pipeline.Batch) {
			mu.Lock()
			now := time.Now()
			if !last.IsZero() && now.Sub(last) > maxGap {
				maxGap = now.Sub(last)
			}
			last = now
			mu.Unlock()
		}, pipeline.Config{})
		sn, _ := persist.NewSnapshotter(store, e, p.Durable, persist.SnapshotterConfig{Every: 1 << 40})
		p.Start()
		reqs := make([]pipeline.Request, 1000)
		for k := 0; k < 1_000_000; k += 1000 {
			for m := range 1000 {
				reqs[m] = pipeline.Request{Cmd: cmds[k+m]}
			}
			p.Submit(reqs...)
		}
		for p.Durable() < 1_000_000 {
			time.Sleep(time.Millisecond)
		}
		// A steady trickle: one command every 100 µs, cancels of the book.
		trickle := func(from, n int) {
			for k := from; k < from+n; k++ {
				p.Submit(pipeline.Request{Cmd: cmds[k]})
				time.Sleep(100 * time.Microsecond)
			}
		}
		mu.Lock()
		maxGap, last = 0, time.Time{}
		mu.Unlock()
		trickle(1_000_000, 2000)
		mu.Lock()
		quiet := maxGap
		maxGap, last = 0, time.Time{}
		mu.Unlock()
		snapDone := make(chan time.Duration)
		go func() {
			start := time.Now()
			if _, err := sn.Snapshot(); err != nil {
				b.Error(err)
			}
			snapDone <- time.Since(start)
		}()
		k := 1_002_000
		var snapTook time.Duration
	loop:
		for {
			select {
			case snapTook = <-snapDone:
				break loop
			default:
				trickle(k, 10)
				k += 10
			}
		}
		mu.Lock()
		during := maxGap
		mu.Unlock()
		p.Close()
		sn.Close()
		store.Close()
		b.ReportMetric(float64(quiet.Microseconds()), "max-gap-quiet-µs")
		b.ReportMetric(float64(during.Microseconds()), "max-gap-snapshot-µs")
		b.ReportMetric(float64(snapTook.Milliseconds()), "snapshot-ms")
	}
	_ = context.Background
}

// BenchmarkRestartBigBook: the time from opening a data directory to
// being ready to serve (the store opened and recovered, the snapshotter
// made: what node.Open does before it listens) over a book of 1 M resting
// orders held in the newest snapshot.
func BenchmarkRestartBigBook(b *testing.B) {
	cfg, cmds := workload.B(1, 1_000_000)
	dir := b.TempDir()
	store, _ := persist.Open(dir, cfg, persist.Options{NoSync: true, Logger: quiet})
	e, _, _ := store.Recover()
	var out []engine.Event
	for k := 0; k < 1_000_000; k += 4096 {
		batch := cmds[k:min(k+4096, 1_000_000)]
		for i := range batch {
			out = e.Apply(&batch[i], out[:0])
		}
		if err := store.Write(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := store.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := store.SnapshotEngine(e); err != nil {
		b.Fatal(err)
	}
	store.Close()
	cmds, e = nil, nil
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		store, r, _, _ := reopen(b, dir, cfg)
		if r.OpenOrderCount() != 1_000_000 {
			b.Fatal(r.OpenOrderCount())
		}
		sn, err := persist.NewSnapshotter(store, r, func() engine.Seq { return r.LastSeq() }, persist.SnapshotterConfig{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "ready-s")
		sn.Close()
		store.Close()
	}
}

// reopen opens the store in dir and recovers it, and says how long that
// took.
func reopen(b *testing.B, dir string, cfg engine.Config) (*persist.Store, *engine.Engine, persist.RecoveryStats, time.Duration) {
	start := time.Now()
	store, err := persist.Open(dir, cfg, persist.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	r, st, err := store.Recover()
	if err != nil {
		b.Fatal(err, st)
	}
	return store, r, st, time.Since(start)
}
