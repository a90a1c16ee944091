package engine

// prefetch asks the CPU to bring the cache line holding addr closer. It
// never faults, whatever addr is, and changes nothing the program can see.
//
//go:noescape
func prefetch(addr uintptr)
