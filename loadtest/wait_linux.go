package loadtest

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// precise prepares the calling goroutine for waitUntil: it locks it to its
// thread and sets that thread's timer slack to 1 ns, so that a nanosleep
// wakes within microseconds of its deadline instead of the default 50 µs
// later. Call the returned function when done.
func precise() (undo func()) {
	runtime.LockOSThread()
	old, _ := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	return func() {
		if old > 0 {
			unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
		}
		runtime.UnlockOSThread()
	}
}

// spinWindow is how close to its deadline waitUntil stops sleeping and
// spins: about the wake-up jitter of a nanosleep on a busy 2-core VM.
const spinWindow = 25 * time.Microsecond

// waitUntil returns at t or just after it: it sleeps in the kernel (not on
// a Go timer, which can wake a millisecond late) until spinWindow before t,
// then spins. The goroutine must have called precise.
func waitUntil(t time.Time) {
	if d := time.Until(t) - spinWindow; d > 0 {
		ts := unix.NsecToTimespec(int64(d))
		unix.Nanosleep(&ts, nil)
	}
	for time.Now().Before(t) {
		// Offer the CPU to any other runnable thread (the server's, on
		// this 2-core machine) instead of holding it for a whole
		// scheduler slice; returns at once when there is none.
		unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}
