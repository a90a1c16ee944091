// Package buildinfo says which build of matchd is running: the module
// version, the VCS revision and time the Go toolchain stamped into the
// binary, and the Go version. The three binaries print it for --version
// and matchd's /metrics exports it (matchd_build_info).
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Info is a build's identity; fields the toolchain did not stamp are
// "unknown".
type Info struct {
	Version, Revision, Time string
	Modified                bool
	Go                      string
}

// Read returns the running binary's build information.
func Read() Info {
	in := Info{Version: "unknown", Revision: "unknown", Time: "unknown", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return in
	}
	if bi.Main.Version != "" {
		in.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is the --version line of the binary called name.
func (in Info) String(name string) string {
	mod := ""
	if in.Modified {
		mod = " (modified)"
	}
	return fmt.Sprintf("%s %s, revision %s%s of %s, %s %s/%s", name, in.Version, in.Revision, mod, in.Time,
		in.Go, runtime.GOOS, runtime.GOARCH)
}
