package matchd_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportGraph is the project's import policy, enforced. The engine is
// pure: the standard library (minus anything that does I/O, reads the clock,
// synchronises or makes randomness) and the btree. Rules for other packages
// are added here as they appear.
func TestImportGraph(t *testing.T) {
	out := goList(t, "-deps", "-f", "{{.ImportPath}} {{.Standard}}", "./engine")
	forbidden := []string{"os", "net", "time", "sync", "sync/atomic", "math/rand", "math/rand/v2",
		"crypto/rand", "io/fs", "log", "log/slog", "runtime", "unsafe", "reflect", "syscall"}
	allowedThirdParty := map[string]bool{
		"github.com/matchd/matchd/engine": true,
		"github.com/tidwall/btree":        true,
	}
	direct := goList(t, "-f", "{{join .Imports \" \"}}", "./engine")
	for _, imp := range strings.Fields(string(direct)) {
		for _, f := range forbidden {
			if imp == f {
				t.Errorf("engine imports %s: the engine does no I/O, reads no clock and starts no goroutines", imp)
			}
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, std, _ := strings.Cut(line, " ")
		if std != "true" && !allowedThirdParty[path] {
			t.Errorf("engine depends on %s: only the standard library and tidwall/btree are allowed", path)
		}
	}
}

func goList(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list %v: %v\n%s", args, err, stderr)
	}
	return out
}

// policy is the import graph, package by package (module-relative paths):
// the project's packages and the third-party ones each may import
// directly. The standard library is allowed everywhere but in the engine
// (see TestImportGraph). A package missing from this list fails the test:
// adding one is a decision, written down here. Test files are not checked.
var policy = map[string][]string{
	// The layers, bottom up.
	"engine":             {"github.com/tidwall/btree"},
	"units":              {"engine", "github.com/shopspring/decimal"},
	"internal/ring":      {},
	"internal/workload":  {"engine"},
	"pipeline":           {"engine", "internal/ring"},
	"persist":            {"engine", "github.com/cockroachdb/pebble/v2", "github.com/cockroachdb/pebble/v2/vfs"},
	"api/wire":           {"engine"},
	"api":                {"engine", "api/wire", "pipeline"},
	"api/client":         {"engine", "api/wire", "units"},
	"api/web":            {"engine", "api", "api/wire", "units", "github.com/coder/websocket", "github.com/shopspring/decimal", "github.com/tidwall/btree"},
	"internal/buildinfo": {},
	"internal/testnet":   {}, // loopback addresses for tests and cmd/matchlat
	"replica": {"engine", "persist", "github.com/cockroachdb/pebble/v2", "github.com/cockroachdb/pebble/v2/vfs",
		"go.etcd.io/raft/v3", "go.etcd.io/raft/v3/raftpb", "go.etcd.io/raft/v3/tracker", "google.golang.org/protobuf/proto"},
	"node":        {"engine", "api", "persist", "pipeline", "replica", "github.com/cockroachdb/pebble/v2/vfs"},
	"api/apitest": {"engine", "api", "api/wire", "node", "github.com/cockroachdb/pebble/v2/vfs"},
	"loadtest":    {"engine", "api/wire", "github.com/HdrHistogram/hdrhistogram-go", "golang.org/x/sys/unix"},
	// The binaries.
	"cmd/matchd": {"engine", "units", "api", "api/web", "api/wire", "pipeline", "persist", "node", "replica", "internal/buildinfo",
		"github.com/prometheus/client_golang/prometheus", "github.com/prometheus/client_golang/prometheus/collectors",
		"github.com/prometheus/client_golang/prometheus/promhttp"},
	"cmd/matchctl":  {"engine", "units", "api/client", "api/wire", "persist", "internal/buildinfo"},
	"cmd/matchload": {"engine", "loadtest", "internal/buildinfo"},
	"cmd/matchlat":  {"loadtest", "internal/buildinfo", "internal/testnet"},
	"":              {}, // the module root: this test only
}

// TestImportPolicy checks every package's direct imports against policy.
func TestImportPolicy(t *testing.T) {
	const module = "github.com/matchd/matchd"
	out := goList(t, "-f", "{{.ImportPath}}|{{.Standard}}|{{join .Imports \" \"}}", "./...")
	std := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(goList(t, "-f", "{{.ImportPath}}", "std"))), "\n") {
		std[line] = true
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		pkg := strings.TrimPrefix(strings.TrimPrefix(parts[0], module), "/")
		allowed, ok := policy[pkg]
		if !ok {
			t.Errorf("package %q is not in the import policy (deps_test.go): add it with what it may import", pkg)
			continue
		}
		may := map[string]bool{}
		for _, a := range allowed {
			may[a] = true
		}
		for _, imp := range strings.Fields(parts[2]) {
			if std[imp] {
				continue
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if !may[rel] && !may[imp] {
				t.Errorf("%s imports %s, which the policy does not allow", parts[0], imp)
			}
		}
	}
}

// TestEngineStartsNoGoroutines rejects any go statement in the engine.
func TestEngineStartsNoGoroutines(t *testing.T) {
	files, err := filepath.Glob("engine/*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if g, ok := n.(*ast.GoStmt); ok {
				t.Errorf("%s: the engine starts no goroutines", fset.Position(g.Pos()))
			}
			return true
		})
	}
}
