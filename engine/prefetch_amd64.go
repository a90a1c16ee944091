package engine

// The prefetch stubs ask the CPU to bring the cache line holding their
// argument closer. PREFETCHT0 never faults, whatever the address (nil
// included), and changes nothing the program can see. One stub per pointer
// type keeps the engine free of unsafe.

//go:noescape
func prefetchInt32(p *int32)

//go:noescape
func prefetchLink(p **order)

//go:noescape
func prefetchOrderHead(o *order)

//go:noescape
func prefetchLevel(l *level)
