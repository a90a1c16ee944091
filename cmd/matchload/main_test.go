package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matchd/matchd/loadtest"
)

// TestBadUsage: stray arguments and nonsense settings are refused (exit
// 2) before anything runs; today's `--rate 0` ran 100 k/s and `--rate -5`
// ran at all.
func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--rate", "0"}, {"--rate", "-5"}, {"--rate", "NaN"}, {"--duration", "0s"}, {"--warmup", "-1s"},
		{"extra"}, {"--addr", "127.0.0.1:1", "--matchd", "x"}, {"--capacity", "--factor", "1"}, {"--no-such-flag"},
	} {
		if code := run(args); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code := run([]string{"--help"}); code != 0 {
		t.Errorf("--help: exit %d", code)
	}
}

// TestOwnServer: without --addr matchload starts a fresh matchd of its
// own (never the demo server's ./data), and the report and result.json
// say how the run was made; the .hgrm files are HdrHistogram's format
// and the plot's title says fsync on or off.
func TestOwnServer(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "matchd")
	if out, err := exec.Command("go", "build", "-o", bin, "../matchd").CombinedOutput(); err != nil {
		t.Fatalf("build matchd: %v\n%s", err, out)
	}
	out := t.TempDir()
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "matchload-data-*"))
	if code := run([]string{"--matchd", bin, "--config", "../../configs/demo.json", "--fsync=false", "--rate", "2000",
		"--duration", "1s", "--warmup", "200ms", "--seed", "7", "--out", out}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	b, err := os.ReadFile(filepath.Join(out, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r loadtest.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if p := r.Params; p.Server != "own" || p.Fsync != "off" || p.Rate != 2000 || p.Seed != 7 || p.Duration != "1s" ||
		p.Sessions != 2 || p.Mix != "60/30/10" || p.Commit == "" || !strings.HasPrefix(p.Addr, "127.0.0.1:") {
		t.Errorf("params %+v", p)
	}
	h, err := os.ReadFile(filepath.Join(out, loadtest.KindAccept+".hgrm"))
	if err != nil || !strings.Contains(string(h), "Value") || !strings.Contains(string(h), "Percentile") ||
		!strings.Contains(string(h), "#[Mean") {
		t.Errorf("hgrm: %v\n%.300s", err, h)
	}
	svg, _ := os.ReadFile(filepath.Join(out, "latency.svg"))
	if !strings.Contains(string(svg), "fsync off") || !strings.Contains(string(svg), "log scale") {
		t.Errorf("plot title or axis: %.400s", svg)
	}
	if after, _ := filepath.Glob(filepath.Join(os.TempDir(), "matchload-data-*")); len(after) > len(before) {
		t.Errorf("the own server's data was left behind: %v", after)
	}
}
