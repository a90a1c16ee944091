package testnet

import "testing"

// TestFreeAddrNeverRepeats: a test process is never handed the same
// address twice. Picking at random alone repeated one now and then (a
// cluster's node got another's client port as its admin port and failed
// to start); 2,000 picks from 12,000 ports repeat ~160 times on average.
func TestFreeAddrNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		a := FreeAddr(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
}
