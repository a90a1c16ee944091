package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// Table writes the percentile table and the verification summary.
func (r *Result) Table(w io.Writer) {
	if p := r.Params; p.Addr != "" {
		fmt.Fprintf(w, "run: %s server at %s, fsync %s, rate %.0f/s, duration %s (warm-up %s), seed %d, %d sessions, mix %s, commit %s, %s\n",
			p.Server, p.Addr, p.Fsync, p.Rate, p.Duration, p.Warmup, p.Seed, p.Sessions, p.Mix, p.Commit, p.Started)
	}
	fmt.Fprintf(w, "offered %.0f/s, achieved %.0f/s; %d sent, %d answered, %d trades\n",
		r.Offered, r.Achieved, r.Sent, r.Answered, r.Trades)
	fmt.Fprintf(w, "%-20s %10s %10s %10s %10s %10s %10s %10s\n", "latency (µs)", "p50", "p90", "p99", "p99.9", "p99.99", "max", "count")
	for _, k := range []string{KindAccept, KindFill, KindCancel, KindLateness} {
		l := r.Latency[k]
		fmt.Fprintf(w, "%-20s %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f %10d\n", k, l.P50, l.P90, l.P99, l.P999, l.P9999, l.Max, l.Count)
	}
	if len(r.Rejects) > 0 {
		var parts []string
		for k, v := range r.Rejects {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "rejects: %s\n", strings.Join(parts, " "))
	}
	if r.OK() {
		fmt.Fprintln(w, "verification: every order answered, every trade reported to both sides with equal quantities")
	} else {
		for _, e := range r.Errors {
			fmt.Fprintln(w, "VERIFICATION FAILED:", e)
		}
	}
}

// WriteJSON writes the result as JSON.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WriteHgrm writes the histogram of one latency kind in HdrHistogram's
// standard percentile format (.hgrm, values in microseconds), which the
// HdrHistogram plotter and other tools read.
func (r *Result) WriteHgrm(path, kind string) error {
	h := r.Hists[kind]
	if h == nil {
		return fmt.Errorf("loadtest: no %s histogram", kind)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := h.PercentilesPrint(f, 5, 1000); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WritePlot writes an SVG of latency by percentile, one line per kind, on
// the log-scaled percentile axis of HdrHistogram plots (50%, 90%, 99%, ...
// equally spaced) and a log-scaled latency axis (decades from the
// smallest to the largest value plotted), so the median and the tail are
// both readable.
func (r *Result) WritePlot(path, title string) error {
	const w, h, left, bottom, top, right = 800.0, 480.0, 70.0, 50.0, 40.0, 45.0
	const maxNines = 5.0           // up to 99.999%
	x := func(q float64) float64 { // q in [0, 1)
		n := math.Min(math.Log10(1/(1-q)), maxNines)
		return left + n/maxNines*(w-left-right)
	}
	maxUs, minUs := 1.0, math.Inf(1)
	for k, l := range r.Latency {
		if l.Count == 0 || r.Hists[k] == nil {
			continue
		}
		maxUs = math.Max(maxUs, l.Max)
		minUs = math.Min(minUs, math.Max(float64(r.Hists[k].Min())/1e3, 0.1))
	}
	if math.IsInf(minUs, 1) {
		minUs = 1
	}
	lo, hi := math.Floor(math.Log10(minUs)), math.Ceil(math.Log10(maxUs))
	if hi <= lo {
		hi = lo + 1
	}
	y := func(us float64) float64 {
		f := (math.Log10(math.Max(us, math.Pow(10, lo))) - lo) / (hi - lo)
		return h - bottom - math.Min(f, 1)*(h-top-bottom)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="24" font-size="15">%s</text>`+"\n", left, escape(title))
	for i := 0.0; i <= maxNines; i++ { // vertical grid: 0%, 90%, 99%, ...
		q := 1 - math.Pow(10, -i)
		label := fmt.Sprintf("%g%%", math.Round(q*1e5)/1e3)
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ddd"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n",
			x(q), top, x(q), h-bottom, x(q), h-bottom+18, label)
	}
	for d := lo; d <= hi; d++ { // horizontal grid: one line a decade
		v := math.Pow(10, d)
		fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			left, y(v), w-right, y(v), left-6, y(v)+4, usLabel(v))
	}
	fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle">percentile</text>`+"\n", (left+w-right)/2, h-12)
	fmt.Fprintf(&sb, `<text x="16" y="%.0f" transform="rotate(-90 16 %.0f)" text-anchor="middle">latency (log scale)</text>`+"\n", (top+h-bottom)/2, (top+h-bottom)/2)
	colors := map[string]string{KindAccept: "#1f77b4", KindFill: "#d62728", KindCancel: "#2ca02c", KindLateness: "#999999"}
	for i, k := range []string{KindAccept, KindFill, KindCancel, KindLateness} {
		hist := r.Hists[k]
		if hist == nil || hist.TotalCount() == 0 {
			continue
		}
		var pts []string
		for s := 0; s <= 200; s++ {
			q := 1 - math.Pow(10, -maxNines*float64(s)/200)
			us := float64(hist.ValueAtQuantile(q*100)) / 1e3
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(q), y(us)))
		}
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", colors[k], strings.Join(pts, " "))
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" fill="%s">%s (n=%d)</text>`+"\n", left+10, top+16+float64(i)*16, colors[k], k, hist.TotalCount())
	}
	sb.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// usLabel says a power of ten of microseconds in the unit that reads best.
func usLabel(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%g s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%g ms", us/1e3)
	}
	return fmt.Sprintf("%g µs", us)
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Step is one rate tried by a capacity search.
type Step struct {
	Offered  float64 `json:"offered_per_s"`
	Achieved float64 `json:"achieved_per_s"`
	P99us    float64 `json:"accept_p99_us"`
	OK       bool    `json:"sustained"`
}

// Capacity steps the offered rate up by factor from cfg.Rate until the
// accept p99 passes p99Bound, the achieved rate falls below minAchieved of the
// offered one, or verification fails, and returns the highest rate that
// held. If cfg.Rate itself does not hold, it steps down instead, by
// factor squared, and returns the first rate that holds: the capacity is
// then below where the search began, and a figure of 0 would say nothing
// about where. 0 means no rate held in maxSteps steps.
func Capacity(ctx context.Context, cfg Config, factor float64, p99Bound time.Duration, minAchieved float64, maxSteps int) (float64, []Step, error) {
	cfg.EnsureDefaults()
	var best float64
	var steps []Step
	down := false
	for i := 0; i < maxSteps; i++ {
		r, err := Run(ctx, cfg)
		if err != nil {
			return best, steps, err
		}
		p99 := r.Latency[KindAccept].P99
		ok := r.OK() && p99 <= float64(p99Bound.Microseconds()) && r.Achieved >= minAchieved*cfg.Rate
		steps = append(steps, Step{Offered: cfg.Rate, Achieved: r.Achieved, P99us: p99, OK: ok})
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "capacity: offered %.0f/s achieved %.0f/s p99 %.1f µs: %v\n", cfg.Rate, r.Achieved, p99, ok)
		}
		switch {
		case ok && down:
			return cfg.Rate, steps, nil
		case ok:
			best = cfg.Rate
			cfg.Rate *= factor
		case i == 0:
			down = true
			cfg.Rate /= factor * factor
		case down:
			cfg.Rate /= factor * factor
		default:
			return best, steps, nil
		}
	}
	return best, steps, nil
}
