package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/loadtest"
)

const (
	window        = 20_000 // orders in flight per connection
	newOrderFrame = 35     // bytes
)

const benchConfig = `{
  "accounts": [%s],
  "instruments": [{"id": 1, "symbol": "BENCH", "tick_size": "0.01", "lot_size": "1",
    "start_price": "1000.00", "band_bps": 1000, "max_open_per_account": 10000000}]
}`

// benchTCP starts matchd as its own process and pushes orders at it over
// conns connections, each pipelining perConn orders as fast as the socket
// takes them, and measures orders/s from the first byte sent to the last
// answer received. Orders are limits around a mid price, a quarter of them
// crossing, so there are fills. subs market data subscribers (of the
// first account) read the instrument's feed throughout.
func benchTCP(b *testing.B, fsync bool, conns, perConn, subs int) {
	benchTCPOn(b, fsync, conns, perConn, subs, false)
}

// benchTCPOn is benchTCP against one node or, with cluster, against the
// leader of a three-node cluster on loopback (each node its own process,
// fsync as given): the cost of replication.
func benchTCPOn(b *testing.B, fsync bool, conns, perConn, subs int, cluster bool) {
	if k, err := strconv.Atoi(os.Getenv("MATCHD_BENCH_SCALE")); err == nil && k > 0 {
		perConn *= k // longer runs, for profiles with enough samples
	}
	dir := b.TempDir()
	if d := os.Getenv("MATCHD_BENCH_DIR"); d != "" {
		dir = d // kept after the run, to look into the data directory
	}
	var accts string
	for i := 1; i <= conns; i++ {
		if i > 1 {
			accts += ","
		}
		accts += fmt.Sprintf(`{"id": %d, "name": "a%d", "token": "bench-token-%d"}`, i, i, i)
	}
	cfgPath := filepath.Join(dir, "bench.json")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(benchConfig, accts)), 0o644)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		args := []string{"--config", cfgPath, "--data", filepath.Join(dir, fmt.Sprint("data", i)),
			fmt.Sprintf("--fsync=%v", fsync), "--web", ""} // the order path alone, as before the web view
		args = append(args, strings.Fields(os.Getenv("MATCHD_BENCH_FLAGS"))...) // e.g. --session-credit 256
		profile := os.Getenv("MATCHD_BENCH_CPUPROFILE")                         // profile the server under this load
		if profile != "" {
			args = append(args, "--cpuprofile", profile)
		}
		var srv *server
		var cl *testCluster
		if cluster {
			cl = &testCluster{t: b}
			if profile != "" { // one profile per node: PROFILE.n1, .n2, .n3
				cl.env = func(i int) []string { return []string{fmt.Sprintf("MATCHD_CPUPROFILE=%s.n%d", profile, i+1)} }
			}
			cl = newTestClusterWith(cl, 3, "--config", cfgPath, fmt.Sprintf("--fsync=%v", fsync))
			srv = cl.servers[cl.leader(10*time.Second)]
		} else {
			srv = startWith(b, args...)
		}
		a := srv.addr
		// Log in and prepare every connection's orders before timing.
		type conn struct {
			c      net.Conn
			frames []byte
		}
		cs := make([]conn, conns)
		for k := range cs {
			c, err := net.Dial("tcp", a)
			if err != nil {
				b.Fatal(err)
			}
			// A named session, as a real client would use: every
			// report is numbered and retained in its stream.
			login := wire.Login{Version: wire.Version, Account: engine.AccountID(k + 1)}
			if os.Getenv("MATCHD_BENCH_UNNAMED") == "" {
				login.Session, _ = wire.ParseSessionName(fmt.Sprintf("bench%d", k))
			}
			copy(login.Token[:], fmt.Sprintf("bench-token-%d", k+1))
			c.Write(login.Append(nil))
			rd := wire.NewReader(c, wire.MaxFrame, 1<<16)
			if typ, _, err := rd.Next(); err != nil || typ != wire.TypeLoginAccepted {
				b.Fatalf("login: %q %v", typ, err)
			}
			rng := rand.New(rand.NewPCG(uint64(k), 1))
			var f []byte
			for n := 1; n <= perConn; n++ {
				side := engine.Side(1 + rng.IntN(2))
				off := engine.Price(1 + rng.IntN(50))
				if rng.IntN(4) == 0 {
					off = -off
				}
				price := 100_000 - off
				if side == engine.Sell {
					price = 100_000 + off
				}
				f = (&wire.NewOrder{Ref: engine.ClientRef(n), Instrument: 1, Side: side, Type: engine.Limit,
					TIF: engine.GTC, Price: price, Qty: engine.Qty(1 + rng.IntN(100))}).Append(f)
			}
			cs[k] = conn{c, f}
		}
		var subWG sync.WaitGroup
		var feedMsgs atomic.Int64
		var subConns []net.Conn
		for range subs {
			c, err := net.Dial("tcp", a)
			if err != nil {
				b.Fatal(err)
			}
			login := wire.Login{Version: wire.Version, Account: 1}
			copy(login.Token[:], "bench-token-1")
			c.Write(append(login.Append(nil), (&wire.Subscribe{Request: 1, Instrument: 1, Action: wire.SubscribeOn}).Append(nil)...))
			subConns = append(subConns, c)
			subWG.Add(1)
			go func() { // read the feed until the benchmark closes the connection
				defer subWG.Done()
				rd := wire.NewReader(c, wire.MaxFrame, 1<<20)
				for {
					typ, _, err := rd.Next()
					if err != nil {
						return
					}
					if typ == wire.TypeLevelUpdate || typ == wire.TypeTrade {
						feedMsgs.Add(1)
					}
				}
			}()
		}
		var wg sync.WaitGroup
		b.StartTimer()
		start, cpu0 := time.Now(), procCPU(srv.cmd.Process.Pid)
		var all0 time.Duration // every node's, for a cluster
		if cl != nil {
			for _, s := range cl.servers {
				all0 += procCPU(s.cmd.Process.Pid)
			}
		}
		for _, cn := range cs {
			wg.Add(2)
			var answered atomic.Int64
			go func() {
				// At most window orders unanswered: a client that pipelines
				// without limit is (rightly) cut off as a slow consumer once
				// 4 MiB of its responses are waiting.
				defer wg.Done()
				const chunk = 1024
				sent := 0
				for f := cn.frames; len(f) > 0; {
					for int64(sent)-answered.Load() > window {
						time.Sleep(20 * time.Microsecond)
					}
					n := min(len(f), chunk*newOrderFrame)
					if _, err := cn.c.Write(f[:n]); err != nil {
						b.Error(err)
						return
					}
					f = f[n:]
					sent += n / newOrderFrame
				}
			}()
			go func() {
				defer wg.Done()
				rd := wire.NewReader(cn.c, wire.MaxFrame, 1<<20)
				for answered.Load() < int64(perConn) {
					typ, _, err := rd.Next()
					if err != nil {
						b.Error(err)
						return
					}
					if typ == wire.TypeAccepted || typ == wire.TypeRejected {
						answered.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		elapsed, cpu := time.Since(start), procCPU(srv.cmd.Process.Pid)-cpu0
		if cl != nil {
			var all time.Duration
			for _, s := range cl.servers {
				all += procCPU(s.cmd.Process.Pid)
			}
			b.ReportMetric((all-all0).Seconds()*1e6/float64(conns*perConn), "cluster-µs/order")
		}
		b.StopTimer()
		for _, c := range subConns {
			c.Close()
		}
		subWG.Wait()
		if subs > 0 {
			b.ReportMetric(float64(feedMsgs.Load())/float64(subs)/elapsed.Seconds()/1e6, "Mfeed-msgs/s/sub")
		}
		switch {
		case cl != nil:
			for i, s := range cl.servers {
				if profile != "" {
					s.stop(b) // SIGTERM: let it write the profile
					b.Logf("node %d: %s", i+1, s.logLine("matchd: pipeline"))
				} else {
					cl.kill(i)
				}
			}
		case profile != "":
			srv.stop(b) // SIGTERM: let it write the profile
		default:
			srv.cmd.Process.Kill()
			<-srv.exit
		}
		b.ReportMetric(float64(conns*perConn)/elapsed.Seconds()/1e6, "Morders/s")
		if cpu > 0 {
			b.ReportMetric(cpu.Seconds()*1e6/float64(conns*perConn), "server-µs/order")
		}
		b.StartTimer()
	}
}

// The same against a three-node cluster's leader (replica/).
func BenchmarkTCPClusterFsync1Conn(b *testing.B) { benchTCPOn(b, true, 1, 500_000, 0, true) }
func BenchmarkTCPClusterFsync4Conn(b *testing.B) { benchTCPOn(b, true, 4, 250_000, 0, true) }

// BenchmarkOneInFlight measures order → Accepted with one order in flight
// (raw frames, closed loop, fsync on), against one node and against a
// three-node cluster's leader, beside the floors measured in the same run:
// fdatasync of an appended 4 KiB block in the data directory's filesystem
// and a loopback TCP round trip (in process). Replication's added latency
// should stay within one fsync and two round trips.
func BenchmarkOneInFlight(b *testing.B) {
	const n = 3000
	dir := b.TempDir()
	fd, err := loadtest.Fdatasync(dir, 2000)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go loadtest.Echo(ln)
	pp, err := loadtest.PingPong(ln.Addr().String(), 5000)
	if err != nil {
		b.Fatal(err)
	}
	us := func(v int64) float64 { return float64(v) / 1e3 }
	run := func(b *testing.B, cluster bool) {
		b.ReportMetric(us(fd.ValueAtQuantile(50)), "fdatasync-p50-µs")
		b.ReportMetric(us(pp.ValueAtQuantile(50)), "pingpong-p50-µs")
		for range b.N {
			var addr string
			if cluster {
				cl := newTestCluster(b, 3)
				addr = cl.servers[cl.leader(10*time.Second)].addr
				defer func() {
					for i := range cl.servers {
						cl.kill(i)
					}
				}()
			} else {
				addr = startWith(b, "--config", "../../configs/demo.json", "--data", filepath.Join(b.TempDir(), "d"), "--web", "").addr
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			login := wire.Login{Version: wire.Version, Account: 1}
			copy(login.Token[:], "alice-demo")
			c.Write(login.Append(nil))
			rd := wire.NewReader(c, wire.MaxFrame, 1<<16)
			if typ, _, err := rd.Next(); err != nil || typ != wire.TypeLoginAccepted {
				b.Fatalf("login: %q %v", typ, err)
			}
			lat := make([]time.Duration, 0, n)
			for k := 1; k <= n; k++ {
				f := (&wire.NewOrder{Ref: engine.ClientRef(k), Instrument: 1, Side: engine.Buy, Type: engine.Limit,
					TIF: engine.GTC, Price: engine.Price(9000 + k%100), Qty: 1}).Append(nil)
				t0 := time.Now()
				c.Write(f)
				for {
					typ, _, err := rd.Next()
					if err != nil {
						b.Fatal(err)
					}
					if typ == wire.TypeAccepted || typ == wire.TypeRejected {
						break
					}
				}
				if k > n/10 { // warm up first
					lat = append(lat, time.Since(t0))
				}
			}
			c.Close()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
			b.ReportMetric(q(0.5), "accept-p50-µs")
			b.ReportMetric(q(0.99), "accept-p99-µs")
			b.ReportMetric(q(0.999), "accept-p99.9-µs")
		}
	}
	b.Run("single", func(b *testing.B) { run(b, false) })
	b.Run("cluster", func(b *testing.B) { run(b, true) })
}

func BenchmarkTCPFsync1Conn(b *testing.B)   { benchTCP(b, true, 1, 500_000, 0) }
func BenchmarkTCPFsync4Conn(b *testing.B)   { benchTCP(b, true, 4, 250_000, 0) }
func BenchmarkTCPNoFsync1Conn(b *testing.B) { benchTCP(b, false, 1, 500_000, 0) }
func BenchmarkTCPNoFsync4Conn(b *testing.B) { benchTCP(b, false, 4, 250_000, 0) }

// With market data subscribers reading the feed of every order.
func BenchmarkTCPNoFsync1Conn4Subs(b *testing.B) { benchTCP(b, false, 1, 500_000, 4) }
func BenchmarkTCPFsync1Conn4Subs(b *testing.B)   { benchTCP(b, true, 1, 500_000, 4) }

// procCPU is a process's user+system CPU time so far, from /proc (0 if it
// cannot be read). The granularity is USER_HZ, 10 ms.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:])) // after the command's name
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
