package main

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/units"
)

// TestWatchFrame: a frame fits the terminal's width and height, says the
// spread and the last trade, and redraws in place (home, each line
// cleared to its end) instead of clearing the screen first, which is what
// flickered.
func TestWatchFrame(t *testing.T) {
	sc, _ := units.NewScale("0.01", "1")
	v := watchView{sym: "AAPL", sc: sc, phase: engine.PhaseContinuous, now: time.Unix(0, 0),
		bids: []engine.LevelInfo{{Price: 10010, Qty: 3}, {Price: 9990, Qty: 5}},
		asks: []engine.LevelInfo{{Price: 10060, Qty: 3}, {Price: 10100, Qty: 7}},
		tape: []wire.Trade{{Trade: 1, Price: 10050, Qty: 10, Aggressor: engine.Buy}, {Trade: 2, Price: 10060, Qty: 2, Aggressor: engine.Buy}}}
	for _, size := range [][2]int{{80, 24}, {40, 12}, {20, 6}} {
		f := watchFrame(v, size[0], size[1])
		if strings.Contains(f, "\x1b[2J") || !strings.HasPrefix(f, "\x1b[H") {
			t.Errorf("%v: clears the screen instead of redrawing in place", size)
		}
		lines := strings.Split(strings.TrimSuffix(f, "\x1b[J"), "\x1b[K\r\n")
		lines = lines[:len(lines)-1]
		if len(lines) > size[1]-1 {
			t.Errorf("%v: %d lines", size, len(lines))
		}
		for _, l := range lines {
			if n := utf8.RuneCountInString(strings.TrimPrefix(l, "\x1b[H")); n > size[0] {
				t.Errorf("%v: a line of %d columns: %q", size, n, l)
			}
		}
	}
	f := watchFrame(v, 80, 24)
	for _, want := range []string{"CONTINUOUS", "spread 0.50", "last 100.60 x 2 (buy)", "101.00", "99.90", "#1"} {
		if !strings.Contains(f, want) {
			t.Errorf("the frame lacks %q:\n%s", want, f)
		}
	}
	ladder := f[strings.Index(f, "bid qty"):]
	if strings.Index(ladder, "101.00") > strings.Index(ladder, "100.60") || strings.Index(ladder, "100.60") > strings.Index(ladder, "100.10") ||
		strings.Index(ladder, "100.10") > strings.Index(ladder, "99.90") {
		t.Errorf("the ladder is out of order:\n%s", f)
	}
}
