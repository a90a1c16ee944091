package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/persist"
)

// A cluster of three matchd processes on loopback (--cluster), for the
// replication tests.
type testCluster struct {
	t       testing.TB
	extra   []string                             // more flags for every node
	wrap    func(i int, args []string) *exec.Cmd // how to run node i (nil: matchd itself)
	env     func(i int) []string                 // more environment for node i (nil: none)
	dirs    []string
	orders  []string
	admins  []string
	peers   string
	servers []*server // nil: not running
}

func newTestCluster(t testing.TB, size int, extra ...string) *testCluster {
	return newTestClusterWith(&testCluster{t: t}, size, extra...)
}

// newTestClusterWith is newTestCluster from a partly set up c (its t and
// env, say).
func newTestClusterWith(c *testCluster, size int, extra ...string) *testCluster {
	t := c.t
	c.servers, c.extra = make([]*server, size), extra
	var peers []string
	for i := range size {
		c.dirs = append(c.dirs, filepath.Join(t.TempDir(), fmt.Sprint("n", i+1)))
		c.orders = append(c.orders, freeAddr(t))
		c.admins = append(c.admins, freeAddr(t))
		peers = append(peers, fmt.Sprintf("%d=%s/%s", i+1, freeAddr(t), c.orders[i]))
	}
	c.peers = strings.Join(peers, ",")
	for i := range size {
		c.start(i)
	}
	return c
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	// Snapshots only at the end: each journal then holds everything, for
	// the truth the test compares with.
	args := []string{"--config", "../../configs/demo.json", "--data", c.dirs[i],
		"--cluster", c.peers, "--node-id", strconv.Itoa(i + 1), "--listen", c.orders[i], "--admin", c.admins[i], "--web", "",
		"--snapshot-every", "100000000", "--snapshot-interval", "1h"}
	args = append(args, c.extra...)
	cmd := exec.Command(matchdBin, args...)
	if c.wrap != nil {
		cmd = c.wrap(i, args)
	}
	if c.env != nil {
		cmd.Env = append(os.Environ(), c.env(i)...)
	}
	c.servers[i] = startCmd(c.t, cmd)
}

func (c *testCluster) kill(i int) {
	c.servers[i].cmd.Process.Signal(syscall.SIGKILL)
	<-c.servers[i].exit
	c.servers[i] = nil
}

// status is a node's /api/cluster answer (nil if it does not answer).
func (c *testCluster) status(i int) map[string]any {
	if c.servers[i] == nil {
		return nil
	}
	cl := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := cl.Get("http://" + c.admins[i] + "/api/cluster")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st map[string]any
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nil
	}
	return st
}

// leader waits until a running node leads and takes orders.
func (c *testCluster) leader(within time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for i := range c.servers {
			if st := c.status(i); st != nil && st["leads"] == true {
				return i
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	c.t.Fatalf("no node leads after %v; the nodes' replica lines:\n%s", within, c.replicaLines())
	return -1
}

// replicaLines is what the running nodes logged about replication.
func (c *testCluster) replicaLines() string {
	var lines []string
	for k, s := range c.servers {
		if s == nil {
			continue
		}
		s.mu.Lock()
		for _, l := range s.log {
			if strings.Contains(l, "replica:") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "matchd: ready") {
				lines = append(lines, fmt.Sprintf("node %d: %s", k+1, l))
			}
		}
		s.mu.Unlock()
	}
	return strings.Join(lines, "\n")
}

// converged waits until every node has applied the same committed log.
func (c *testCluster) converged() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var seqs []float64
		var silent []int
		for i := range c.servers {
			if st := c.status(i); st != nil {
				seqs = append(seqs, st["committed_seq"].(float64), st["applied"].(float64))
			} else {
				silent = append(silent, i+1)
			}
		}
		if len(seqs) == 2*len(c.servers) {
			same := true
			for k := 2; k < len(seqs); k += 2 {
				same = same && seqs[k] == seqs[0] && seqs[k+1] == seqs[1]
			}
			if same {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the replicas did not converge: (committed seq, applied index) %v; not answering: nodes %v; "+
				"the nodes' replica lines:\n%s", seqs, silent, c.replicaLines())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// caughtUp waits until node i has applied everything the leader had
// committed when it was called.
func (c *testCluster) caughtUp(i int) {
	c.t.Helper()
	lead := c.leader(15 * time.Second)
	st := c.status(lead)
	if st == nil {
		return
	}
	want := st["committed_seq"].(float64)
	// From the whole log (the soak keeps the journals whole, so there is
	// no snapshot to send): a million commands, under load, take a while.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if st := c.status(i); st != nil && st["committed_seq"].(float64) >= want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d did not catch up to seq %v; the nodes' replica lines:\n%s", i+1, want, c.replicaLines())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stateOf recovers a stopped node's engine from its data directory.
func stateOf(t testing.TB, dir string) (engine.Seq, [32]byte) {
	t.Helper()
	store, err := persist.Open(dir, engine.Config{}, persist.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, _, err := store.Recover()
	if err != nil {
		t.Fatal(err)
	}
	return e.LastSeq(), e.StateHash()
}

// TestClusterLeaderKill: three replicas, fsync on, four sessions of two
// accounts trading with each other (pipelining up to 200 commands each,
// through every node's address: the client follows the leader). The
// leader is SIGKILLed again and again and restarted as a follower. Each
// time a new leader must serve (the first answer to a command stamped
// after the kill, seen by a client); at the end every session's stream
// as its client saw it equals the one each replica's journal derives
// (nothing acknowledged lost, nothing twice, one order), and the
// replicas' states are equal. CLUSTER=long: 30 kills (make cluster-chaos).
func TestClusterLeaderKill(t *testing.T) {
	kills := 3
	if os.Getenv("CLUSTER") == "long" {
		kills = 30
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 3))
	t.Logf("seed %d, %d leader kills", seed, kills)
	watchdog := time.AfterFunc(time.Duration(kills)*10*time.Second+2*time.Minute, func() { panic("cluster test: no end in sight") })
	defer watchdog.Stop()
	c := newTestCluster(t, 3)
	c.leader(10 * time.Second)
	addrs := strings.Join(c.orders, ",")

	// Every answer's command timestamp: one stamped after a kill was
	// sequenced by a new leader.
	var killAt atomic.Int64
	served := make(chan time.Duration, 1)
	traders, stopTrading := startTraders(t, addrs, seed, func(r report, at time.Time) {
		if k := killAt.Load(); k != 0 && r.time > k && killAt.CompareAndSwap(k, 0) {
			served <- at.Sub(time.Unix(0, k))
		}
	})

	var failovers []time.Duration
	for k := range kills {
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		lead := c.leader(10 * time.Second)
		now := time.Now()
		killAt.Store(now.UnixNano())
		c.kill(lead)
		select {
		case d := <-served:
			failovers = append(failovers, d)
		case <-time.After(10 * time.Second):
			t.Fatalf("kill %d (node %d): no command answered within 10 s", k+1, lead+1)
		}
		c.start(lead) // back as a follower, from its own data directory
	}
	stopTrading()
	slices.Sort(failovers)
	t.Logf("%d leader kills: from the kill to the first answer of a new leader: min %v, median %v, max %v (all: %v)", kills,
		failovers[0], failovers[len(failovers)/2], failovers[len(failovers)-1], failovers)

	c.finish(traders)
}

// TestClusterRejoinEmpty: the raft log is compacted behind the nodes'
// snapshots (every 2,000 commands here), so a replica whose data
// directory is wiped cannot catch up from the log: it rejoins by the
// leader's snapshot (received, kept, the node restarts from it) and then
// follows the log; at the end its state equals the others'.
func TestClusterRejoinEmpty(t *testing.T) {
	watchdog := time.AfterFunc(3*time.Minute, func() { panic("cluster test: no end in sight") })
	defer watchdog.Stop()
	c := newTestCluster(t, 3, "--snapshot-every", "2000")
	lead := c.leader(10 * time.Second)
	wiped := (lead + 1) % 3
	traders := []*chaosTrader{{acct: 1, token: "alice-demo", name: "ALICE-A"}, {acct: 2, token: "bob-demo", name: "BOB-A"}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, tr := range traders {
		tr.addr, tr.caught = strings.Join(c.orders, ","), make(chan struct{}, 1)
		tr.start(t)
		wg.Add(1)
		go func() { defer wg.Done(); tr.trade(stop, uint64(i)) }()
	}
	applied := func(i int) float64 {
		if st := c.status(i); st != nil {
			return st["committed_seq"].(float64)
		}
		return 0
	}
	waitSeq := func(i int, seq float64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for applied(i) < seq {
			if time.Now().After(deadline) {
				t.Fatalf("node %d at seq %v, want %v; the nodes' replica lines:\n%s", i+1, applied(i), seq, c.replicaLines())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitSeq(lead, 3000)
	c.kill(wiped)
	os.RemoveAll(c.dirs[wiped])
	at := applied(lead)
	waitSeq(lead, at+6000) // three snapshots later: the log no longer reaches back
	c.start(wiped)
	waitSeq(wiped, applied(lead))
	close(stop)
	wg.Wait()
	for _, tr := range traders {
		tr.mu.Lock()
		tr.c.Close()
		tr.mu.Unlock()
	}
	c.converged()
	if s := c.servers[wiped]; s.logLine("received the leader's snapshot") == "" || s.logLine("reset to a snapshot") == "" {
		s.mu.Lock()
		t.Errorf("the wiped node did not rejoin by a snapshot; its log:\n%s", strings.Join(s.log, "\n"))
		s.mu.Unlock()
	}
	for i, s := range c.servers {
		if code := s.stop(t); code != 0 {
			t.Fatalf("node %d: exit status %d", i+1, code)
		}
	}
	var states []string
	for _, dir := range c.dirs {
		seq, hash := stateOf(t, dir)
		states = append(states, fmt.Sprintf("seq %d %x", seq, hash[:8]))
	}
	if states[0] != states[1] || states[1] != states[2] {
		t.Fatalf("the replicas' states differ: %v", states)
	}
	t.Logf("node %d rejoined from an empty directory; states equal (%s)", wiped+1, states[0])
}

// netnsCluster puts each node of a cluster in a network namespace of its
// own, its veth linked to a bridge in the test's namespace, so that a
// node's link can be cut (ip link set … down) as a network partition
// would. It needs root and iproute2; the test is skipped without them.
type netnsCluster struct {
	t      *testing.T
	tag    string
	hosts  []string // each node's IP
	bridge string
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func newNetnsCluster(t *testing.T, size int) *netnsCluster {
	if os.Geteuid() != 0 {
		t.Skip("partition test skipped: needs root, for network namespaces (ip netns)")
	}
	n, err := makeNetns(t, size)
	if err != nil {
		t.Skipf("partition test skipped: cannot make network namespaces here: %v", err)
	}
	return n
}

// tryNetnsCluster is newNetnsCluster, or nil where namespaces cannot be made.
func tryNetnsCluster(t *testing.T, size int) *netnsCluster {
	n, err := makeNetns(t, size)
	if err != nil {
		t.Logf("no network namespaces: %v", err)
		return nil
	}
	return n
}

func makeNetns(t *testing.T, size int) (*netnsCluster, error) {
	tag := fmt.Sprintf("%x", os.Getpid()&0xffff)
	n := &netnsCluster{t: t, tag: tag, bridge: "mbr" + tag}
	if err := sh("ip", "link", "add", n.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	t.Cleanup(n.remove)
	subnet := fmt.Sprintf("10.%d.%d", 100+os.Getpid()%100, os.Getpid()/100%250)
	steps := [][]string{{"ip", "addr", "add", subnet + ".254/24", "dev", n.bridge}, {"ip", "link", "set", n.bridge, "up"}}
	for i := 1; i <= size; i++ {
		ns, host, peer := n.ns(i), n.veth(i), fmt.Sprintf("mvn%s%d", tag, i)
		ip := fmt.Sprintf("%s.%d", subnet, i)
		n.hosts = append(n.hosts, ip)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", host, "type", "veth", "peer", "name", peer},
			[]string{"ip", "link", "set", peer, "netns", ns},
			[]string{"ip", "link", "set", host, "master", n.bridge, "up"},
			[]string{"ip", "netns", "exec", ns, "ip", "addr", "add", ip + "/24", "dev", peer},
			[]string{"ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"},
			[]string{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"})
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (n *netnsCluster) ns(i int) string   { return fmt.Sprintf("mdn%s%d", n.tag, i) }
func (n *netnsCluster) veth(i int) string { return fmt.Sprintf("mvh%s%d", n.tag, i) }

// cut takes node i (from 0) off the network; heal puts it back.
func (n *netnsCluster) cut(i int)  { sh("ip", "link", "set", n.veth(i+1), "down") }
func (n *netnsCluster) heal(i int) { sh("ip", "link", "set", n.veth(i+1), "up") }

func (n *netnsCluster) remove() {
	for i := 1; i <= len(n.hosts); i++ {
		sh("ip", "netns", "del", n.ns(i))
		sh("ip", "link", "del", n.veth(i))
	}
	sh("ip", "link", "del", n.bridge)
}

// TestClusterPartition: three nodes in network namespaces, four sessions
// trading through them. The leader's link is cut: it must stop
// acknowledging and step down (it restarts itself as a follower from what
// is committed), the two others elect a leader and serve; healed, the old
// leader catches up. Then links flap: a random node is cut and healed
// several times in quick succession. Then asymmetric partitions: the
// leader stops hearing its peers (they still hear it), and then the other
// way round. At the end every session's stream
// equals each replica's journal (nothing acknowledged lost or doubled)
// and the states are equal.
func TestClusterPartition(t *testing.T) {
	nc := newNetnsCluster(t, 3)
	watchdog := time.AfterFunc(3*time.Minute, func() { panic("cluster test: no end in sight") })
	defer watchdog.Stop()
	c := nc.cluster(t)
	for i := range 3 {
		c.start(i)
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 5))
	t.Logf("seed %d", seed)
	lead := c.leader(10 * time.Second)
	traders, stopTrading := startTraders(t, strings.Join(c.orders, ","), seed, nil)
	answers := func() int64 {
		var n int64
		for _, tr := range traders {
			n += tr.answers.Load()
		}
		return n
	}
	time.Sleep(time.Second)

	// The leader alone: it steps down, the majority serves.
	nc.cut(lead)
	t0 := time.Now()
	var lead2 int
	for {
		lead2 = -1
		for i := range c.servers {
			if st := c.status(i); i != lead && st != nil && st["leads"] == true {
				lead2 = i
			}
		}
		if lead2 >= 0 {
			break
		}
		if time.Since(t0) > 10*time.Second {
			t.Fatal("the majority elected no leader within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := answers()
	for answers() < before+100 {
		if time.Since(t0) > 20*time.Second {
			t.Fatal("the majority's leader answers nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("leader node %d cut off: node %d leads and answers after %v", lead+1, lead2+1, time.Since(t0).Round(time.Millisecond))
	if s := c.servers[lead]; s.logLine("restarts from what the cluster committed") == "" {
		// It may not have noticed yet: raft's check-quorum gives it an
		// election timeout.
		deadline := time.Now().Add(5 * time.Second)
		for s.logLine("restarts from what the cluster committed") == "" && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if s.logLine("restarts from what the cluster committed") == "" {
			t.Errorf("the cut-off leader did not step down")
		}
	}
	time.Sleep(time.Second)
	nc.heal(lead)

	// Flapping links.
	for range 8 {
		i := rng.IntN(3)
		nc.cut(i)
		time.Sleep(time.Duration(100+rng.IntN(600)) * time.Millisecond)
		nc.heal(i)
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
	}
	time.Sleep(time.Second)

	// Asymmetric partitions (iptables in the leader's namespace): the
	// leader hears nothing from its peers while they still hear it, then
	// the other way round. Either way the leader cannot commit and steps
	// down, and the two others serve.
	if !nc.canDrop() {
		t.Log("asymmetric partitions skipped: no iptables in the namespaces (apt-get install iptables)")
	} else {
		for _, dir := range []string{"INPUT", "OUTPUT"} {
			lead := c.leader(15 * time.Second)
			nc.drop(lead, dir)
			t0 := time.Now()
			before := answers()
			for {
				lead2 := -1
				for i := range c.servers {
					if st := c.status(i); i != lead && st != nil && st["leads"] == true {
						lead2 = i
					}
				}
				if lead2 >= 0 && answers() > before+100 {
					t.Logf("leader node %d drops %s from its peers: node %d leads and answers after %v", lead+1, dir, lead2+1,
						time.Since(t0).Round(time.Millisecond))
					break
				}
				if time.Since(t0) > 20*time.Second {
					t.Fatalf("leader node %d drops %s from its peers: no other node leads and answers within 20 s; the nodes' replica lines:\n%s",
						lead+1, dir, c.replicaLines())
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(time.Second)
			nc.undrop(lead)
			time.Sleep(500 * time.Millisecond)
		}
	}
	stopTrading()
	c.finish(traders)
}

// canDrop reports whether iptables works in the namespaces.
func (n *netnsCluster) canDrop() bool {
	return sh("ip", "netns", "exec", n.ns(1), "iptables", "-L", "-n") == nil
}

// drop makes node i (from 0) drop what comes from (INPUT) or goes to
// (OUTPUT) its peers, not its clients: one direction of a partition.
func (n *netnsCluster) drop(i int, dir string) {
	flag := "-s"
	if dir == "OUTPUT" {
		flag = "-d"
	}
	for j, h := range n.hosts {
		if j != i {
			sh("ip", "netns", "exec", n.ns(i+1), "iptables", "-A", dir, flag, h, "-j", "DROP")
		}
	}
}

// undrop removes node i's drop rules.
func (n *netnsCluster) undrop(i int) {
	sh("ip", "netns", "exec", n.ns(i+1), "iptables", "-F", "INPUT")
	sh("ip", "netns", "exec", n.ns(i+1), "iptables", "-F", "OUTPUT")
}

// finish lets every trader catch up, waits until the replicas agree,
// stops them (each must exit 0) and checks them (check).
func (c *testCluster) finish(traders []*chaosTrader) {
	t := c.t
	t.Helper()
	catchUp(t, traders)
	c.converged()
	for i, s := range c.servers {
		if code := s.stop(t); code != 0 {
			t.Fatalf("node %d: exit status %d", i+1, code)
		}
	}
	c.check(traders)
}

// check compares, once every node has stopped, each session's stream as
// its client saw it with the one each replica's journal derives, and the
// replicas' states.
func (c *testCluster) check(traders []*chaosTrader) {
	t := c.t
	t.Helper()
	var states []string
	total := 0
	for i, dir := range c.dirs {
		seq, hash := stateOf(t, dir)
		states = append(states, fmt.Sprintf("seq %d %x", seq, hash[:8]))
		truth := streamsFromJournal(t, dir)
		for _, tr := range traders {
			want, got := truth[streamOf{tr.acct, sessionID(tr.name)}], tr.seen
			if len(want) == 0 {
				t.Fatalf("%s traded nothing", tr.name)
			}
			for j := 0; j < max(len(got), len(want)); j++ {
				switch {
				case j >= len(got):
					t.Fatalf("node %d: %s missed messages from %d on (of %d); first missed %+v", i+1, tr.name, j+1, len(want), want[j])
				case j >= len(want):
					t.Fatalf("node %d: %s has %d messages more than the journal's %d: %+v", i+1, tr.name, len(got)-len(want), len(want), got[j])
				case got[j] != want[j]:
					t.Fatalf("node %d: %s: message %d differs:\n got  %+v\n want %+v", i+1, tr.name, j+1, got[j], want[j])
				}
			}
			if i == 0 {
				total += len(got)
			}
		}
	}
	if states[0] != states[1] || states[1] != states[2] {
		t.Fatalf("the replicas' states differ: %v", states)
	}
	t.Logf("every session's %d messages equal each replica's journal, in order, once; states equal (%s)", total, states[0])
}

// TestClusterSoak: random faults under load for CLUSTER_SOAK (default
// 15 s; make cluster-chaos runs 10 minutes): the leader or a follower
// SIGKILLed and restarted, a node's link cut and healed or cut one way
// (in network namespaces, where the machine allows them), a follower's data
// directory wiped (it rejoins), and nodes restarted on a slow disk
// (every raft log sync 20 ms longer, injected). At the end every
// session's stream equals each replica's journal and the states are
// equal.
func TestClusterSoak(t *testing.T) {
	duration := 15 * time.Second
	if d, err := time.ParseDuration(os.Getenv("CLUSTER_SOAK")); err == nil {
		duration = d
	} else if os.Getenv("CLUSTER") == "long" {
		duration = 10 * time.Minute
	}
	watchdog := time.AfterFunc(duration+3*time.Minute, func() { panic("cluster soak: no end in sight") })
	defer watchdog.Stop()
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("CLUSTER_SEED"), 10, 64); err == nil {
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, 9))
	slow := make([]atomic.Bool, 3)
	var c *testCluster
	var nc *netnsCluster
	if os.Geteuid() == 0 && exec.Command("ip", "netns", "list").Run() == nil {
		nc = tryNetnsCluster(t, 3)
	}
	if nc != nil {
		c = nc.cluster(t)
	} else {
		t.Log("no network namespaces here: the soak runs without partitions")
		c = &testCluster{t: t, servers: make([]*server, 3)}
		var peers []string
		for i := range 3 {
			c.dirs = append(c.dirs, filepath.Join(t.TempDir(), fmt.Sprint("n", i+1)))
			c.orders = append(c.orders, freeAddr(t))
			c.admins = append(c.admins, freeAddr(t))
			peers = append(peers, fmt.Sprintf("%d=%s/%s", i+1, freeAddr(t), c.orders[i]))
		}
		c.peers = strings.Join(peers, ",")
	}
	c.env = func(i int) []string {
		if slow[i].Load() {
			return []string{"MATCHD_FAULT_SLOW_RAFT_SYNC=20ms"}
		}
		return nil
	}
	for i := range 3 {
		c.start(i)
	}
	drops := nc != nil && nc.canDrop()
	t.Logf("seed %d (CLUSTER_SEED to repeat), %v, partitions %v, one-way partitions %v", seed, duration, nc != nil, drops)
	c.leader(10 * time.Second)
	traders, stopTrading := startTraders(t, strings.Join(c.orders, ","), seed, nil)
	// The faults. At most one node is down or cut at a time, so a
	// quorum is always there to serve.
	counts := map[string]int{}
	begin := time.Now()
	for time.Since(begin) < duration {
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		lead := c.leader(15 * time.Second)
		i := rng.IntN(3)
		switch k := rng.IntN(11); {
		case k < 3: // the leader dies
			c.kill(lead)
			time.Sleep(time.Duration(100+rng.IntN(800)) * time.Millisecond)
			c.start(lead)
			counts["leader killed"]++
		case k < 5 && i != lead: // a follower dies
			c.kill(i)
			time.Sleep(time.Duration(100+rng.IntN(1500)) * time.Millisecond)
			c.start(i)
			counts["follower killed"]++
		case k < 7 && nc != nil: // a node is cut off
			nc.cut(i)
			time.Sleep(time.Duration(200+rng.IntN(2000)) * time.Millisecond)
			nc.heal(i)
			counts["node cut off"]++
		case k < 8 && i != lead: // a follower loses its disk
			// Raft survives the loss of a minority's disks only: the next
			// fault waits until this node holds the log again (two wiped
			// nodes could elect each other with empty logs).
			c.kill(i)
			os.RemoveAll(c.dirs[i])
			c.start(i)
			c.caughtUp(i)
			counts["follower wiped"]++
		case k < 9: // a node on a slow disk from its next start
			slow[i].Store(!slow[i].Load())
			c.kill(i)
			c.start(i)
			counts["slow disk toggled"]++
		case k == 10 && drops: // one direction of a node's links
			dir := []string{"INPUT", "OUTPUT"}[rng.IntN(2)]
			nc.drop(i, dir)
			time.Sleep(time.Duration(200+rng.IntN(2000)) * time.Millisecond)
			nc.undrop(i)
			counts["one-way partition"]++
		}
	}
	stopTrading()
	t.Logf("faults in %v: %v", time.Since(begin).Round(time.Second), counts)
	c.finish(traders)
}

// cluster is a test cluster (not started) of one node per namespace.
func (n *netnsCluster) cluster(t *testing.T) *testCluster {
	c := &testCluster{t: t, servers: make([]*server, len(n.hosts))}
	var peers []string
	for i, h := range n.hosts {
		c.dirs = append(c.dirs, filepath.Join(t.TempDir(), fmt.Sprint("n", i+1)))
		c.orders = append(c.orders, h+":7001")
		c.admins = append(c.admins, h+":7002")
		peers = append(peers, fmt.Sprintf("%d=%s:7101/%s:7001", i+1, h, h))
	}
	c.peers = strings.Join(peers, ",")
	c.wrap = func(i int, args []string) *exec.Cmd {
		return exec.Command("ip", append([]string{"netns", "exec", n.ns(i + 1), matchdBin}, args...)...)
	}
	return c
}

// startTraders logs in four sessions of two accounts at addr and has them
// trade with each other until the returned stop is called; onReport (if
// set) is told of every message each receives.
func startTraders(t testing.TB, addr string, seed uint64, onReport func(report, time.Time)) ([]*chaosTrader, func()) {
	traders := []*chaosTrader{
		{acct: 1, token: "alice-demo", name: "ALICE-A"}, {acct: 2, token: "bob-demo", name: "BOB-A"},
		{acct: 1, token: "alice-demo", name: "ALICE-B"}, {acct: 2, token: "bob-demo", name: "BOB-B"},
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, tr := range traders {
		tr.addr, tr.caught, tr.onReport = addr, make(chan struct{}, 1), onReport
		tr.start(t)
		wg.Add(1)
		go func() { defer wg.Done(); tr.trade(stop, seed+uint64(i)) }()
	}
	return traders, func() { close(stop); wg.Wait() }
}
