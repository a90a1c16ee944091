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

// TestWireImports: the codec depends on nothing but the standard library
// and the engine's types.
func TestWireImports(t *testing.T) {
	for _, line := range strings.Split(strings.TrimSpace(string(goList(t, "-deps", "-f", "{{.ImportPath}} {{.Standard}}", "./api/wire"))), "\n") {
		path, std, _ := strings.Cut(line, " ")
		if std != "true" && path != "github.com/matchd/matchd/api/wire" && path != "github.com/matchd/matchd/engine" &&
			path != "github.com/tidwall/btree" {
			t.Errorf("api/wire depends on %s: only the standard library and engine are allowed", path)
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
