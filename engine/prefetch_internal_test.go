package engine

import (
	"testing"
	"unsafe"
)

// TestPrefetchCoversOrder: the three fields prefetchOrder fetches lie on
// every cache line an order can span. Orders are at least 8-byte aligned,
// so an order spans the lines of its bytes at offsets 0, 64, 128, ... and
// its last byte; each fetched field must share a line with one of those
// offsets wherever the order starts. If a change to order moves fields,
// this says which to fetch instead.
func TestPrefetchCoversOrder(t *testing.T) {
	var o order
	size := unsafe.Sizeof(o)
	fetched := []uintptr{unsafe.Offsetof(o.id), unsafe.Offsetof(o.next), unsafe.Offsetof(o.ext)}
	if unsafe.Alignof(o) < 8 {
		t.Fatalf("order aligned to %d bytes", unsafe.Alignof(o))
	}
	for start := uintptr(0); start < 64; start += 8 {
		covered := map[uintptr]bool{}
		for _, off := range fetched {
			covered[(start+off)/64] = true
		}
		for b := uintptr(0); b < size; b++ {
			if !covered[(start+b)/64] {
				t.Fatalf("order at line offset %d: byte %d of %d (line %d) is fetched by none of the fields at %v",
					start, b, size, (start+b)/64, fetched)
			}
		}
	}
}
