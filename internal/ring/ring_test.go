package ring

import (
	"sync"
	"testing"
	"time"
)

type item struct {
	producer int
	n        int
}

// TestStress: several producers claim batches of random size into a small
// ring; the consumer must see every item exactly once and each producer's
// items in order.
func TestStress(t *testing.T) {
	const producers, perProducer = 4, 50_000
	r := New[item](64)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perProducer; {
				k := min(1+(n*7+p)%5, perProducer-n)
				lo, err := r.Claim(k)
				if err != nil {
					t.Error(err)
					return
				}
				for i := 0; i < k; i++ {
					*r.Slot(lo + int64(i)) = item{p, n + i}
				}
				r.Publish(lo, k)
				n += k
			}
		}()
	}
	go func() { wg.Wait(); r.Close() }()
	next := make([]int, producers)
	total, batches := 0, 0
	for {
		lo, hi, ok := r.Next(1 << 20)
		if !ok {
			break
		}
		batches++
		for s := lo; s < hi; s++ {
			it := *r.Slot(s)
			if it.n != next[it.producer] {
				t.Fatalf("producer %d: got item %d, want %d", it.producer, it.n, next[it.producer])
			}
			next[it.producer]++
			total++
		}
		r.Release(hi)
	}
	if total != producers*perProducer {
		t.Fatalf("got %d items, want %d", total, producers*perProducer)
	}
	t.Logf("%d items in %d batches", total, batches)
}

// TestNextStopsAtBatchBoundaries: a consumer that takes at most a few
// slots at a time must still see every item of batches larger than that,
// and never split one.
func TestNextStopsAtBatchBoundaries(t *testing.T) {
	r := New[item](16)
	const n = 20_000
	go func() {
		for sent := 0; sent < n; {
			k := min(1+sent%7, n-sent)
			lo, _ := r.Claim(k)
			for i := 0; i < k; i++ {
				*r.Slot(lo + int64(i)) = item{0, sent + i}
			}
			r.Publish(lo, k)
			sent += k
		}
		r.Close()
	}()
	want := 0
	for {
		lo, hi, ok := r.Next(3)
		if !ok {
			break
		}
		for s := lo; s < hi; s++ {
			if it := r.Slot(s); it.n != want {
				t.Fatalf("got %d want %d", it.n, want)
			}
			want++
		}
		r.Release(hi)
	}
	if want != n {
		t.Fatalf("got %d items, want %d", want, n)
	}
}

// TestParkAndWake: an idle consumer parks and is woken by a later publish;
// a producer blocked on a full ring is woken by a release.
func TestParkAndWake(t *testing.T) {
	r := New[int](2)
	got := make(chan int)
	go func() {
		for {
			lo, hi, ok := r.Next(1 << 20)
			if !ok {
				close(got)
				return
			}
			for s := lo; s < hi; s++ {
				got <- *r.Slot(s)
			}
			r.Release(hi)
		}
	}()
	time.Sleep(20 * time.Millisecond) // long enough for the consumer to park
	for i := 0; i < 10; i++ {         // more than the ring holds: producers park too
		lo, _ := r.Claim(1)
		*r.Slot(lo) = i
		r.Publish(lo, 1)
		if v := <-got; v != i {
			t.Fatalf("got %d want %d", v, i)
		}
	}
	r.Close()
	if _, ok := <-got; ok {
		t.Fatal("consumer did not stop after Close")
	}
	if _, err := r.Claim(1); err != ErrClosed {
		t.Fatalf("Claim after Close: %v", err)
	}
}

func TestNewPanicsOnBadSize(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New(3) did not panic")
		}
	}()
	New[int](3)
}

func benchRing(b *testing.B, producers, batch int) {
	r := New[item](1 << 14)
	done := make(chan struct{})
	go func() {
		for {
			lo, hi, ok := r.Next(1 << 20)
			if !ok {
				close(done)
				return
			}
			r.Release(hi)
			_ = lo
		}
	}()
	per := b.N / producers
	b.ResetTimer()
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < per; n += batch {
				k := min(batch, per-n)
				lo, _ := r.Claim(k)
				for i := 0; i < k; i++ {
					*r.Slot(lo + int64(i)) = item{p, n + i}
				}
				r.Publish(lo, k)
			}
		}()
	}
	wg.Wait()
	r.Close()
	<-done
}

func benchChan(b *testing.B, producers int) {
	ch := make(chan item, 1<<14)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	per := b.N / producers
	b.ResetTimer()
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < per; n++ {
				ch <- item{p, n}
			}
		}()
	}
	wg.Wait()
	close(ch)
	<-done
}

// ns/op is per item in all of these.
func BenchmarkRing1ProducerPerItem(b *testing.B)  { benchRing(b, 1, 1) }
func BenchmarkRing1ProducerBatch64(b *testing.B)  { benchRing(b, 1, 64) }
func BenchmarkRing4ProducersPerItem(b *testing.B) { benchRing(b, 4, 1) }
func BenchmarkRing4ProducersBatch64(b *testing.B) { benchRing(b, 4, 64) }
func BenchmarkChan1Producer(b *testing.B)         { benchChan(b, 1) }
func BenchmarkChan4Producers(b *testing.B)        { benchChan(b, 4) }
