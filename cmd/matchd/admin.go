package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/replica"
	"github.com/matchd/matchd/units"
)

// admin serves the operator endpoints on their own port: /healthz (the
// process is alive), /readyz (recovered, the journal is writable, orders are
// accepted), /metrics (Prometheus), /api/book/SYMBOL (depth as JSON),
// /api/cluster (a replica's status and the members; POST
// /api/cluster/members and DELETE /api/cluster/members/ID change them on
// the leader, POST /api/cluster/leader hands the leadership over) and /debug/pprof/. /metrics and /api/book/ answer 503 until
// the server is running.
//
// Every request's Host header must name an allowed host (a loopback name,
// the admin address's own host, or one of --admin-hosts; "*" allows any):
// that stops DNS rebinding from a browser on the operator's machine. With
// --admin-token, every endpoint but /healthz and /readyz needs
// "Authorization: Bearer TOKEN".
type admin struct {
	token   []byte          // empty: no token needed
	hosts   map[string]bool // allowed Host names; nil: any
	ready   atomic.Bool
	reason  atomic.Pointer[string]
	metrics atomic.Pointer[http.Handler]
	book    atomic.Pointer[http.Handler]
	cluster atomic.Pointer[replica.Replica] // nil: a single node
	srv     *http.Server
}

func newAdmin(token string, hosts []string) *admin {
	a := &admin{token: []byte(token)}
	if !slices.Contains(hosts, "*") {
		a.hosts = map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
		for _, h := range hosts {
			a.hosts[strings.ToLower(h)] = true
		}
	}
	starting := "starting"
	a.reason.Store(&starting)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "alive"})
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ans := map[string]any{"status": "ready"}
		code := http.StatusOK
		if !a.ready.Load() {
			ans, code = map[string]any{"status": "not ready", "reason": *a.reason.Load()}, http.StatusServiceUnavailable
		}
		if rep := a.cluster.Load(); rep != nil {
			// Every replica that serves is ready (followers serve market
			// data); "leader" says which takes orders.
			st := rep.Status()
			ans["role"], ans["leads"], ans["leader"], ans["term"], ans["commit"], ans["applied"] =
				st.Role.String(), st.Ready, st.Leader, st.Term, st.Commit, st.Applied
		}
		writeJSON(w, code, ans)
	})
	mux.HandleFunc("/api/cluster", func(w http.ResponseWriter, r *http.Request) {
		rep := a.cluster.Load()
		if rep == nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "not a cluster: this matchd runs alone (see --cluster)"})
			return
		}
		ans := clusterJSON(rep.Status())
		ans["members"] = membersJSON(rep.Members())
		writeJSON(w, http.StatusOK, ans)
	})
	mux.HandleFunc("POST /api/cluster/members", func(w http.ResponseWriter, r *http.Request) {
		var p replica.Peer
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": `want {"id": N, "peer": "HOST:PORT", "client": "HOST:PORT"}: ` + err.Error()})
			return
		}
		a.changeMember(w, func(rep *replica.Replica) error { return rep.AddMember(p, memberChangeWait) })
	})
	mux.HandleFunc("POST /api/cluster/leader", func(w http.ResponseWriter, r *http.Request) {
		var to struct {
			ID uint64 `json:"id"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&to); err != nil || to.ID == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": `want {"id": N}, the member to lead`})
			return
		}
		a.changeMember(w, func(rep *replica.Replica) error { return rep.TransferLeader(to.ID, memberChangeWait) })
	})
	mux.HandleFunc("DELETE /api/cluster/members/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		if err != nil || id == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "the member id is a number from 1"})
			return
		}
		a.changeMember(w, func(rep *replica.Replica) error { return rep.RemoveMember(id, memberChangeWait) })
	})
	late := func(h *atomic.Pointer[http.Handler]) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if p := h.Load(); p != nil {
				(*p).ServeHTTP(w, r)
				return
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "starting"})
		}
	}
	mux.Handle("/metrics", late(&a.metrics))
	mux.Handle("/api/book/", late(&a.book))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.srv = &http.Server{Handler: a.guard(mux), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	return a
}

// guard checks the Host header and the bearer token before mux.
func (a *admin) guard(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.hosts != nil {
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			host = strings.ToLower(strings.Trim(host, "[]"))
			if !a.hosts[host] {
				writeJSON(w, http.StatusForbidden, map[string]any{"error": fmt.Sprintf("host %q is not allowed (see --admin-hosts)", r.Host)})
				return
			}
		}
		if len(a.token) > 0 && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), a.token) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="matchd admin"`)
				writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "this endpoint needs Authorization: Bearer <admin token>"})
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// serve installs the handlers that need the running server.
func (a *admin) serve(metrics, book http.Handler) {
	a.metrics.Store(&metrics)
	a.book.Store(&book)
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
	if h, _, err := net.SplitHostPort(addr); err == nil && a.hosts != nil && h != "" {
		a.hosts[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	go a.srv.Serve(ln)
	return ln.Addr(), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// bookHandler serves GET /api/book/SYMBOL[?levels=N]: up to N levels
// (default 10, at most 1000) of each side, best first, prices and
// quantities as decimal strings, read through the matching loop.
func bookHandler(srv *api.Server, insts []engine.Instrument) http.Handler {
	type inst struct {
		id    engine.InstrumentID
		scale units.Scale
	}
	bySymbol := map[string]inst{}
	for _, in := range insts {
		sc, err := units.ScaleOf(in)
		if err == nil {
			bySymbol[in.Symbol] = inst{in.ID, sc}
		}
	}
	type level struct {
		Price  string `json:"price"`
		Qty    string `json:"qty"`
		Orders int32  `json:"orders"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "use GET"})
			return
		}
		sym := strings.TrimPrefix(r.URL.Path, "/api/book/")
		in, ok := bySymbol[sym]
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": fmt.Sprintf("no instrument %q", sym)})
			return
		}
		levels := 10
		if v := r.URL.Query().Get("levels"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "levels must be a whole number from 1 to 1000"})
				return
			}
			levels = n
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		ans, err := srv.Depth(ctx, in.id, levels)
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error()})
			return
		}
		conv := func(ls []engine.LevelInfo) []level {
			out := make([]level, len(ls))
			for i, l := range ls {
				out[i] = level{in.scale.FormatPrice(l.Price), in.scale.FormatQty(l.Qty), l.Orders}
			}
			return out
		}
		writeJSON(w, http.StatusOK, map[string]any{"symbol": sym, "seq": ans.Seq, "bids": conv(ans.Bids), "asks": conv(ans.Asks)})
	})
}

// memberChangeWait is how long a membership change may take to apply.
const memberChangeWait = 10 * time.Second

// changeMember runs a membership change or a leadership transfer and
// answers with the members, or why it was refused (409: not the leader, a change under way, a bad id;
// 504: proposed but not applied in time).
func (a *admin) changeMember(w http.ResponseWriter, change func(*replica.Replica) error) {
	rep := a.cluster.Load()
	if rep == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "not a cluster: this matchd runs alone (see --cluster)"})
		return
	}
	if err := change(rep); err != nil {
		code := http.StatusGatewayTimeout
		if errors.Is(err, replica.ErrMembership) || (errors.Is(err, replica.ErrTransfer) && strings.Contains(err.Error(), "refused")) {
			code = http.StatusConflict
		}
		ans := map[string]any{"error": err.Error()}
		if id, addr := rep.LeaderClient(); id != 0 {
			ans["leader"], ans["leader_addr"] = id, addr
		}
		writeJSON(w, code, ans)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": membersJSON(rep.Members())})
}

// membersJSON is the member list as the admin API shows it.
func membersJSON(ms []replica.Member) []map[string]any {
	out := []map[string]any{}
	for _, m := range ms {
		out = append(out, map[string]any{"node": m.ID, "peer": m.Addr, "client": m.Client, "voter": m.Voter})
	}
	return out
}

// clusterJSON is a replica's status as /api/cluster answers it.
func clusterJSON(st replica.Status) map[string]any {
	ans := map[string]any{"node": st.ID, "role": st.Role.String(), "leads": st.Ready, "leader": st.Leader,
		"term": st.Term, "commit": st.Commit, "applied": st.Applied, "committed_seq": st.CommittedSeq}
	if st.Match != nil {
		var fs []map[string]any
		ids := make([]uint64, 0, len(st.Match))
		for id := range st.Match {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			lag := uint64(0)
			if st.Commit > st.Match[id] {
				lag = st.Commit - st.Match[id]
			}
			fs = append(fs, map[string]any{"node": id, "match": st.Match[id], "lag": lag})
		}
		ans["followers"] = fs
	}
	return ans
}
