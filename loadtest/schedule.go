package loadtest

import "time"

// Schedule is an open-loop send schedule: item k is due at start + k *
// interval, computed from k each time (never accumulated), so a long run
// does not drift. Latency is measured from an item's due time, not from
// when it was actually sent: a stalled server, or a stalled sender, cannot
// hide its own delay (no coordinated omission).
type Schedule struct {
	start    time.Time
	interval time.Duration
	next     int64
}

// NewSchedule returns a schedule of rate items per second from start.
func NewSchedule(start time.Time, rate float64) *Schedule {
	return &Schedule{start: start, interval: time.Duration(float64(time.Second) / rate)}
}

// Due returns the due time of item k.
func (s *Schedule) Due(k int64) time.Time { return s.start.Add(time.Duration(k) * s.interval) }

// Take returns the items due by now, [first, first+n), and advances past
// them.
func (s *Schedule) Take(now time.Time) (first, n int64) {
	first = s.next
	if d := now.Sub(s.start); d >= 0 {
		s.next = max(s.next, int64(d/s.interval)+1)
	}
	return first, s.next - first
}

// Next returns the due time of the next item not yet taken.
func (s *Schedule) Next() time.Time { return s.Due(s.next) }

// Pace runs an open-loop sender: each time items fall due it calls emit
// with them, [first, first+n), until end or until emit returns false.
// Between calls it waits for the next due time in the kernel and then
// spins (waitUntil), waking at most once per quantum: at high rates the
// items due within one quantum go out together. It runs on a thread of
// its own with a 1 ns timer slack (precise).
func (s *Schedule) Pace(end time.Time, quantum time.Duration, emit func(now time.Time, first, n int64) bool) {
	defer precise()()
	for {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		if first, n := s.Take(now); n > 0 && !emit(now, first, n) {
			return
		}
		next := s.Next()
		if q := now.Add(quantum); q.After(next) {
			next = q
		}
		waitUntil(next)
	}
}
