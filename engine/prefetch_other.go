//go:build !amd64

package engine

// The prefetch stubs are no-ops where the engine has no prefetch
// instruction.

func prefetchInt32(p *int32)     {}
func prefetchLink(p **order)     {}
func prefetchOrderHead(o *order) {}
func prefetchLevel(l *level)     {}
