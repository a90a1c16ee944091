//go:build !amd64

package engine

// prefetch is a no-op where the engine has no prefetch instruction.
func prefetch(addr uintptr) {}
