package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"
)

// admin serves the operator endpoints on their own port: /healthz (the
// process is alive), /readyz (recovered, the journal is writable, orders are
// accepted) and /debug/pprof/. Prometheus metrics come with the operations
// work.
type admin struct {
	ready  atomic.Bool
	reason atomic.Pointer[string]
	srv    *http.Server
}

func newAdmin() *admin {
	a := &admin{}
	starting := "starting"
	a.reason.Store(&starting)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "alive"})
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if a.ready.Load() {
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reason": *a.reason.Load()})
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return a
}

func (a *admin) setReady(ok bool, reason string) {
	a.reason.Store(&reason)
	a.ready.Store(ok)
}

func (a *admin) listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	go a.srv.Serve(ln)
	return ln.Addr(), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
