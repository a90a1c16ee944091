// Package testnet helps tests, and the benchmark tools that start
// servers of their own (cmd/matchlat), on loopback: it picks the
// addresses the servers listen on.
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// handed holds every port FreeAddr has returned in this process: free
// when checked is not enough, since the process a port was picked for
// may not have bound it yet when the next pick is made.
var handed struct {
	sync.Mutex
	ports map[int]bool
}

// TB is the part of testing.TB that FreeAddr uses (so that the package
// does not link the testing package into the tools that use PickAddr).
type TB interface {
	Helper()
	Fatal(args ...any)
}

// FreeAddr returns a 127.0.0.1 address with a port free at the time of
// the call, for a process the test starts next (see PickAddr); it fails
// the test if there is none.
func FreeAddr(t TB) string {
	t.Helper()
	addr, err := PickAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// PickAddr returns a 127.0.0.1 address with a port free at the time of
// the call, for a process started next that must know its address before
// it starts (a cluster's peers). The port is chosen below Linux's
// ephemeral range (32768–60999 by default): a port from that range, free
// when picked, can be taken by an outgoing connection (one replica
// dialling another) before the process meant to listen on it binds it,
// which failed a cluster start now and then. No port is returned twice in
// one process.
func PickAddr() (string, error) {
	handed.Lock()
	defer handed.Unlock()
	if handed.ports == nil {
		handed.ports = map[int]bool{}
	}
	for range 100 {
		port := 20000 + rand.IntN(12000)
		if handed.ports[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			handed.ports[port] = true
			return addr, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
