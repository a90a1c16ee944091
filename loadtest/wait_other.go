//go:build !linux

package loadtest

import (
	"runtime"
	"time"
)

func precise() (undo func()) {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}

const spinWindow = 100 * time.Microsecond

func waitUntil(t time.Time) {
	if d := time.Until(t) - spinWindow; d > 0 {
		time.Sleep(d)
	}
	for time.Now().Before(t) {
	}
}
