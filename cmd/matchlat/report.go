package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/matchd/matchd/loadtest"
)

// report is everything one matchlat invocation measured.
type report struct {
	Machine map[string]string `json:"machine"`
	Rates   []float64         `json:"rates"`
	Runs    []*runResult      `json:"runs"`
	// Figures are the medians over the runs, with their range and, where
	// the figure has one, the ratio to its floor (itself a median of the
	// per-run ratios).
	Figures []figure `json:"figures"`
	Goals   []goal   `json:"goals"`
}

type runResult struct {
	PingPong *loadtest.LatencySummary `json:"pingpong"`
	// PacedEcho is the open-loop floor: 64-byte messages to the echo
	// process at each open-loop rate (by rate, as an integer string).
	PacedEcho map[string]*loadtest.LatencySummary `json:"paced_echo"`
	Fdatasync *loadtest.LatencySummary            `json:"fdatasync"`
	Modes     map[string]*modeResult              `json:"modes"`
}

type modeResult struct {
	ClosedAccept  *loadtest.LatencySummary `json:"closed_accept"`
	ClosedCancel  *loadtest.LatencySummary `json:"closed_cancel"`
	Open          []*openResult            `json:"open"`
	Capacity      float64                  `json:"capacity_per_s"`
	CapacitySteps []loadtest.Step          `json:"capacity_steps"`
}

type openResult struct {
	Rate          float64                  `json:"offered_per_s"`
	Achieved      float64                  `json:"achieved_per_s"`
	Sent          int64                    `json:"sent"`
	Accept        *loadtest.LatencySummary `json:"accept"`
	Cancel        *loadtest.LatencySummary `json:"cancel"`
	Lateness      *loadtest.LatencySummary `json:"generator_lateness"`
	CPUPerOrderUs float64                  `json:"server_cpu_us_per_order"`
	CPUCores      float64                  `json:"server_cpu_cores"`
	Errors        []string                 `json:"errors,omitempty"`
}

// figure is one measured quantity over the runs.
type figure struct {
	Name      string  `json:"name"`
	Unit      string  `json:"unit"`
	Median    float64 `json:"median"`
	Min       float64 `json:"min"`
	Max       float64 `json:"max"`
	FloorName string  `json:"floor,omitempty"`
	Floor     float64 `json:"floor_median,omitempty"`
	Ratio     float64 `json:"ratio_median,omitempty"`
	RatioMin  float64 `json:"ratio_min,omitempty"`
	RatioMax  float64 `json:"ratio_max,omitempty"`
}

// goal is one target of the latency issue, checked per run.
type goal struct {
	Name   string  `json:"name"`
	Value  float64 `json:"median"`
	Bound  float64 `json:"bound_median"`
	Met    int     `json:"runs_met"`
	Runs   int     `json:"runs"`
	Passed bool    `json:"met_on_medians"`
}

func machine() map[string]string {
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return map[string]string{"nproc": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(),
		"date": time.Now().UTC().Format(time.RFC3339), "host": host, "kernel": strings.TrimSpace(string(kernel))}
}

func median(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

// quantile is one percentile of a LatencySummary; quantiles are the ones
// every figure is given at.
type quantile struct {
	n string
	f func(*loadtest.LatencySummary) float64
}

var quantiles = []quantile{{"p50", func(l *loadtest.LatencySummary) float64 { return l.P50 }},
	{"p99", func(l *loadtest.LatencySummary) float64 { return l.P99 }},
	{"p99.9", func(l *loadtest.LatencySummary) float64 { return l.P999 }}}

// pick extracts one figure from a run (ok false: not measured in it).
type pick func(*runResult) (float64, bool)

func mode(name string, f func(*modeResult) float64) pick {
	return func(r *runResult) (float64, bool) {
		m := r.Modes[name]
		if m == nil || m.ClosedAccept == nil {
			return 0, false
		}
		return f(m), true
	}
}

func open(name string, rate float64, f func(*openResult) float64) pick {
	return func(r *runResult) (float64, bool) {
		m := r.Modes[name]
		if m == nil {
			return 0, false
		}
		for _, o := range m.Open {
			if o.Rate == rate {
				return f(o), true
			}
		}
		return 0, false
	}
}

// pacedPick is the paced echo floor at rate.
func pacedPick(rate float64, f func(*loadtest.LatencySummary) float64) pick {
	return func(r *runResult) (float64, bool) {
		e := r.PacedEcho[rateKey(rate)]
		if e == nil {
			return 0, false
		}
		return f(e), true
	}
}

func floorPick(f func(*runResult) float64) pick {
	return func(r *runResult) (float64, bool) { return f(r), true }
}

var (
	ppP50  = floorPick(func(r *runResult) float64 { return r.PingPong.P50 })
	ppP99  = floorPick(func(r *runResult) float64 { return r.PingPong.P99 })
	ppP999 = floorPick(func(r *runResult) float64 { return r.PingPong.P999 })
	fsP50  = floorPick(func(r *runResult) float64 { return r.Fdatasync.P50 })
	fsP99  = floorPick(func(r *runResult) float64 { return r.Fdatasync.P99 })
	fsP999 = floorPick(func(r *runResult) float64 { return r.Fdatasync.P999 })
)

func (rep *report) figure(name, unit, floorName string, v, floor pick) figure {
	var vals, floors, ratios []float64
	for _, r := range rep.Runs {
		x, ok := v(r)
		if !ok {
			continue
		}
		vals = append(vals, x)
		if floor != nil {
			f, _ := floor(r)
			floors = append(floors, f)
			if f > 0 {
				ratios = append(ratios, x/f)
			}
		}
	}
	fg := figure{Name: name, Unit: unit}
	fg.Median, fg.Min, fg.Max = median(vals)
	if floor != nil && len(ratios) > 0 {
		fg.FloorName = floorName
		fg.Floor, _, _ = median(floors)
		fg.Ratio, fg.RatioMin, fg.RatioMax = median(ratios)
	}
	return fg
}

func (rep *report) goal(name string, v pick, bound func(*runResult) float64, atLeast bool) goal {
	var vals, bounds []float64
	g := goal{Name: name}
	for _, r := range rep.Runs {
		x, ok := v(r)
		if !ok {
			continue
		}
		b := bound(r)
		vals, bounds = append(vals, x), append(bounds, b)
		g.Runs++
		if (atLeast && x >= b) || (!atLeast && x <= b) {
			g.Met++
		}
	}
	g.Value, _, _ = median(vals)
	g.Bound, _, _ = median(bounds)
	g.Passed = g.Runs > 0 && ((atLeast && g.Value >= g.Bound) || (!atLeast && g.Value <= g.Bound))
	return g
}

func (rep *report) summarize(o *options) {
	add := func(f figure) {
		if !math.IsNaN(f.Median) {
			rep.Figures = append(rep.Figures, f)
		}
	}
	add(rep.figure("floor: loopback ping-pong p50", "µs", "", ppP50, nil))
	add(rep.figure("floor: loopback ping-pong p99", "µs", "", ppP99, nil))
	add(rep.figure("floor: loopback ping-pong p99.9", "µs", "", ppP999, nil))
	for _, rate := range rep.Rates {
		for _, qq := range quantiles {
			add(rep.figure(fmt.Sprintf("floor: paced loopback echo at %.0fk/s %s", rate/1000, qq.n), "µs", "",
				pacedPick(rate, qq.f), nil))
		}
	}
	add(rep.figure("floor: 4 KiB append + fdatasync p50", "µs", "", fsP50, nil))
	add(rep.figure("floor: 4 KiB append + fdatasync p99", "µs", "", fsP99, nil))
	add(rep.figure("floor: 4 KiB append + fdatasync p99.9", "µs", "", fsP999, nil))
	for _, md := range []struct {
		name string
		on   bool
	}{{modeName(true), true}, {modeName(false), false}, {clusterMode, true}} {
		name, on := md.name, md.on
		floors := []pick{ppP50, ppP99, ppP999}
		fname := "ping-pong"
		if on {
			floors, fname = []pick{fsP50, fsP99, fsP999}, "fdatasync"
		}
		for i, qq := range quantiles {
			add(rep.figure(fmt.Sprintf("%s, one in flight, order → Accepted %s", name, qq.n), "µs",
				fname+" "+qq.n, mode(name, func(m *modeResult) float64 { return qq.f(m.ClosedAccept) }), floors[i]))
		}
		for i, qq := range quantiles {
			add(rep.figure(fmt.Sprintf("%s, one in flight, cancel → Canceled %s", name, qq.n), "µs",
				fname+" "+qq.n, mode(name, func(m *modeResult) float64 { return qq.f(m.ClosedCancel) }), floors[i]))
		}
		for _, rate := range rep.Rates {
			for i, qq := range quantiles {
				fl, fn := floors[i], fname+" "+qq.n
				if !on { // the open loop's own floor: the paced echo at this rate
					fl, fn = pacedPick(rate, qq.f), "paced echo "+qq.n
				}
				add(rep.figure(fmt.Sprintf("%s, open loop %.0fk/s, order → Accepted %s", name, rate/1000, qq.n), "µs",
					fn, open(name, rate, func(o *openResult) float64 { return qq.f(o.Accept) }), fl))
			}
			add(rep.figure(fmt.Sprintf("%s, open loop %.0fk/s, achieved", name, rate/1000), "orders/s", "",
				open(name, rate, func(o *openResult) float64 { return o.Achieved }), nil))
			add(rep.figure(fmt.Sprintf("%s, open loop %.0fk/s, generator send lateness p99", name, rate/1000), "µs", "",
				open(name, rate, func(o *openResult) float64 { return o.Lateness.P99 }), nil))
			add(rep.figure(fmt.Sprintf("%s, open loop %.0fk/s, server CPU per order", name, rate/1000), "µs", "",
				open(name, rate, func(o *openResult) float64 { return o.CPUPerOrderUs }), nil))
		}
		if o.capFrom > 0 {
			add(rep.figure(fmt.Sprintf("%s, capacity at accept p99 ≤ 2 ms, ≥ 99%% achieved", name), "orders/s", "",
				mode(name, func(m *modeResult) float64 { return m.Capacity }), nil))
		}
	}
	on, off := modeName(true), modeName(false)
	acc := func(n string, f func(*loadtest.LatencySummary) float64) pick {
		return mode(n, func(m *modeResult) float64 { return f(m.ClosedAccept) })
	}
	at100 := func(n string, f func(*openResult) float64) pick { return open(n, 100_000, f) }
	p50, p99, p999 := quantiles[0].f, quantiles[1].f, quantiles[2].f
	fixed := func(v float64) func(*runResult) float64 { return func(*runResult) float64 { return v } }
	rep.Goals = []goal{
		rep.goal("fsync on, one in flight: p50 ≤ fdatasync p50 + 3 × ping-pong p50", acc(on, p50),
			func(r *runResult) float64 { return r.Fdatasync.P50 + 3*r.PingPong.P50 }, false),
		rep.goal("fsync on, one in flight: p99 ≤ 2 × fdatasync p99", acc(on, p99),
			func(r *runResult) float64 { return 2 * r.Fdatasync.P99 }, false),
		rep.goal("fsync on, one in flight: p99.9 ≤ 3 × fdatasync p99.9", acc(on, p999),
			func(r *runResult) float64 { return 3 * r.Fdatasync.P999 }, false),
		rep.goal("fsync off, one in flight: p50 ≤ 3 × ping-pong p50", acc(off, p50),
			func(r *runResult) float64 { return 3 * r.PingPong.P50 }, false),
		rep.goal("fsync off, one in flight: p99 ≤ 5 × ping-pong p99", acc(off, p99),
			func(r *runResult) float64 { return 5 * r.PingPong.P99 }, false),
		rep.goal("fsync on, 100k/s: p50 ≤ 2 × fdatasync p50", at100(on, func(o *openResult) float64 { return o.Accept.P50 }),
			func(r *runResult) float64 { return 2 * r.Fdatasync.P50 }, false),
		rep.goal("fsync on, 100k/s: p99 ≤ 2 ms", at100(on, func(o *openResult) float64 { return o.Accept.P99 }), fixed(2000), false),
		rep.goal("fsync on, 100k/s: p99.9 ≤ 5 ms", at100(on, func(o *openResult) float64 { return o.Accept.P999 }), fixed(5000), false),
		rep.goal("fsync off, 100k/s: p50 ≤ 50 µs", at100(off, func(o *openResult) float64 { return o.Accept.P50 }), fixed(50), false),
		rep.goal("fsync off, 100k/s: p99 ≤ 500 µs", at100(off, func(o *openResult) float64 { return o.Accept.P99 }), fixed(500), false),
		rep.goal("generator send lateness at 100k/s: p99 < 20 µs", at100(on, func(o *openResult) float64 { return o.Lateness.P99 }), fixed(20), false),
	}
	if o.capFrom > 0 {
		rep.Goals = append(rep.Goals, rep.goal("fsync on, capacity at accept p99 ≤ 2 ms: ≥ 300k/s",
			mode(on, func(m *modeResult) float64 { return m.Capacity }), fixed(300_000), true))
	}
	// What replication adds (issue 16): the cluster's one-in-flight p50
	// less the single node's, in the same run.
	added := func(r *runResult) (float64, bool) {
		c, s := r.Modes[clusterMode], r.Modes[on]
		if c == nil || s == nil || c.ClosedAccept == nil || s.ClosedAccept == nil {
			return 0, false
		}
		return c.ClosedAccept.P50 - s.ClosedAccept.P50, true
	}
	add(rep.figure("cluster, one in flight, order → Accepted p50, added to the single node's", "µs", "", added, nil))
	rep.Goals = append(rep.Goals, rep.goal("cluster, one in flight: added p50 ≤ fdatasync p50 + 2 × ping-pong p50", added,
		func(r *runResult) float64 { return r.Fdatasync.P50 + 2*r.PingPong.P50 }, false))
	var kept []goal
	for _, g := range rep.Goals {
		if g.Runs > 0 {
			kept = append(kept, g)
		}
	}
	rep.Goals = kept
}

func (rep *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nmatchlat: %d runs; nproc %s, %s, %s\n", len(rep.Runs), rep.Machine["nproc"], rep.Machine["go"], rep.Machine["date"])
	fmt.Fprintf(w, "%-66s %10s %21s %26s\n", "figure (median of the runs)", "median", "range", "× floor (range)")
	for _, f := range rep.Figures {
		ratio := ""
		if f.FloorName != "" {
			ratio = fmt.Sprintf("%.2f× %s (%.2f–%.2f)", f.Ratio, f.FloorName, f.RatioMin, f.RatioMax)
		}
		fmt.Fprintf(w, "%-66s %10.1f %10.1f–%-10.1f %s\n", f.Name+" ("+f.Unit+")", f.Median, f.Min, f.Max, ratio)
	}
	fmt.Fprintln(w, "\ngoals (on the medians; runs met):")
	for _, g := range rep.Goals {
		mark := "MISSED"
		if g.Passed {
			mark = "met"
		}
		fmt.Fprintf(w, "  %-6s %-64s %10.1f vs %10.1f  (%d of %d runs)\n", mark, g.Name, g.Value, g.Bound, g.Met, g.Runs)
	}
}

func (rep *report) verifyFailed() bool {
	for _, r := range rep.Runs {
		for _, m := range r.Modes {
			for _, o := range m.Open {
				if len(o.Errors) > 0 {
					return true
				}
			}
		}
	}
	return false
}

func (rep *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writePlot draws accept latency (p50, p99, p99.9, log scale) against the
// offered rate for each mode, with the floors as dashed lines.
func (rep *report) writePlot(path string) error {
	const w, h, left, right, top, bottom = 860.0, 520.0, 70.0, 230.0, 40.0, 50.0
	if len(rep.Rates) == 0 || len(rep.Runs) == 0 {
		return os.WriteFile(path, []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), 0o644)
	}
	lo, hi := 1.0, 100_000.0 // µs, log axis
	x := func(i int) float64 {
		if len(rep.Rates) == 1 {
			return left
		}
		return left + float64(i)/float64(len(rep.Rates)-1)*(w-left-right)
	}
	y := func(us float64) float64 {
		us = math.Min(math.Max(us, lo), hi)
		return h - bottom - math.Log10(us/lo)/math.Log10(hi/lo)*(h-top-bottom)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="24" font-size="15">matchd order → Accepted latency vs offered rate (medians of %d runs, %s cores, %s)</text>`+"\n",
		left, len(rep.Runs), rep.Machine["nproc"], rep.Machine["go"])
	for v := lo; v <= hi; v *= 10 {
		fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%g µs</text>`+"\n",
			left, y(v), w-right, y(v), left-6, y(v)+4, v)
	}
	for i, r := range rep.Rates {
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#eee"/><text x="%.1f" y="%.0f" text-anchor="middle">%.0fk/s</text>`+"\n",
			x(i), top, x(i), h-bottom, x(i), h-bottom+18, r/1000)
	}
	legend := 0
	label := func(color, dash, text string) {
		ly := top + 10 + float64(legend)*18
		fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2" stroke-dasharray="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			w-right+10, ly, w-right+34, ly, color, dash, w-right+40, ly+4, text)
		legend++
	}
	for _, fl := range []struct {
		name  string
		p     pick
		color string
	}{{"fdatasync p50", fsP50, "#888"}, {"ping-pong p50", ppP50, "#bbb"}} {
		var v []float64
		for _, r := range rep.Runs {
			f, _ := fl.p(r)
			v = append(v, f)
		}
		m, _, _ := median(v)
		fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="%s" stroke-dasharray="6,4"/>`+"\n", left, y(m), w-right, y(m), fl.color)
		label(fl.color, "6,4", fmt.Sprintf("floor: %s %.0f µs", fl.name, m))
	}
	colors := map[string][3]string{"fsync-on": {"#1f77b4", "#2ca02c", "#d62728"}, "fsync-off": {"#9ecae1", "#a1d99b", "#fc9272"},
		clusterMode: {"#9467bd", "#8c564b", "#e377c2"}}
	for _, name := range []string{"fsync-on", "fsync-off", clusterMode} {
		for qi, q := range quantiles {
			var pts []string
			for i, rate := range rep.Rates {
				var v []float64
				for _, r := range rep.Runs {
					if f, ok := open(name, rate, func(o *openResult) float64 { return q.f(o.Accept) })(r); ok {
						v = append(v, f)
					}
				}
				if len(v) == 0 {
					continue
				}
				m, _, _ := median(v)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(m)))
			}
			if len(pts) == 0 {
				continue
			}
			dash := "none"
			switch name {
			case "fsync-off":
				dash = "3,3"
			case clusterMode:
				dash = "8,3"
			}
			c := colors[name][qi]
			fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="%s"/>`+"\n", c, dash, strings.Join(pts, " "))
			label(c, dash, name+" "+q.n)
		}
	}
	sb.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}
