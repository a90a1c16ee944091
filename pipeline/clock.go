package pipeline

import (
	"math"
	"time"

	"github.com/matchd/matchd/engine"
)

// The clock stage. Time reaches the engine only inside commands, so
// expiries, the end of a volatility interruption and scheduled phase
// changes happen at the first command at or after their time. When no
// command comes, this goroutine sends one: a CmdClock, journaled and
// replayed like any other, as soon as the wall clock passes the engine's
// NextWake. It sends one at a time and waits for the loop to apply it.

// clockToken marks the clock's own requests (no client waits for them;
// the release stage routes their events like any other's).
const clockToken = 0

// maxClockSleep bounds how long the clock sleeps without looking again,
// in case the wall clock jumps.
const maxClockSleep = time.Second

func (p *Pipeline) runClock() {
	defer close(p.clockDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := maxClockSleep
		if w := p.wake.Load(); w != math.MaxInt64 && !p.clockSent.Load() && p.sequencing.Load() {
			if d := time.Duration(w - p.cfg.Clock()); d > 0 {
				wait = min(d, maxClockSleep)
			} else {
				p.clockSent.Store(true)
				if err := p.Submit(Request{Token: clockToken, Cmd: engine.Command{Kind: engine.CmdClock}}); err != nil {
					return // closed or failed: nothing more will be matched
				}
				continue
			}
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-p.wakeCh:
		case <-p.clockStop:
			return
		}
	}
}
