package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/testnet"
	"github.com/matchd/matchd/node"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/replica"
)

func freePort(t *testing.T) string { return testnet.FreeAddr(t) }

type cluster struct {
	t     *testing.T
	cfgs  []node.Config
	nodes []*node.Node
}

func newCluster(t *testing.T, size int) *cluster {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("CLUSTER_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	var peers []replica.Peer
	for i := 1; i <= size; i++ {
		peers = append(peers, replica.Peer{ID: uint64(i), Addr: freePort(t), Client: freePort(t)})
	}
	c := &cluster{t: t, nodes: make([]*node.Node, size)}
	for i := range size {
		cfg := node.Config{Dir: t.TempDir(), Logger: logger.With("node", i+1),
			Engine: engine.Config{Instruments: []engine.Instrument{{ID: 1, Symbol: "X", TickSize: "1", LotSize: "1",
				BandBps: 1000, StartPrice: 100, MaxOpenPerAccount: 1 << 20}}},
			Accounts: []api.Account{{ID: 1, Name: "a", Token: "t"}, {ID: 2, Name: "b", Token: "u"}},
			API:      api.Config{Listen: peers[i].Client},
			Store:    persist.Options{NoSync: true, Replicated: true},
			Cluster:  &replica.Config{ID: uint64(i + 1), Peers: peers}}
		c.cfgs = append(c.cfgs, cfg)
	}
	for i := range size {
		c.start(i)
	}
	return c
}

func (c *cluster) start(i int) {
	c.t.Helper()
	n, err := node.Open(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("node %d: %v", i+1, err)
	}
	n.Start()
	c.nodes[i] = n
}

func (c *cluster) stop(i int) {
	if n := c.nodes[i]; n != nil {
		n.Close(time.Second)
		c.nodes[i] = nil
	}
}

// restartFailed waits for node i to fail asking for a restart (deposed,
// or sent a snapshot) and restarts it, as the binary does.
func (c *cluster) restartFailed(i int) {
	c.t.Helper()
	select {
	case <-c.nodes[i].Failed():
		if err := c.nodes[i].Err(); !replica.NeedsRestart(err) {
			c.t.Fatalf("node %d failed with %v, want a restart", i+1, err)
		}
	case <-time.After(5 * time.Second):
		c.t.Fatalf("node %d still serves 5 s after it stopped leading", i+1)
	}
	c.stop(i)
	c.start(i)
}

func (c *cluster) stopAll() {
	for i := range c.nodes {
		c.stop(i)
	}
}

// submitOrders sends n resting buys through cl, each retried with the
// same reference while the client moves to a new leader: answered once,
// with the original outcome.
func submitOrders(ctx context.Context, t *testing.T, cl *client.Client, n int) {
	t.Helper()
	for range n {
		o := wire.NewOrder{Ref: cl.NextRef(), Instrument: 1, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC, Price: 99, Qty: 1}
		for try := 0; ; try++ {
			_, err := cl.Submit(ctx, o)
			if err == nil {
				break
			}
			if try == 100 {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// dial logs account 1 in to session name through every node's address,
// reconnecting (and following the leader) as the leadership moves. The
// caller closes it.
func (c *cluster) dial(ctx context.Context, name string) *client.Client {
	c.t.Helper()
	cl, err := client.Dial(ctx, client.Config{Addr: c.addrs(), Account: 1, Token: "t", Session: name, Reconnect: true})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

func (c *cluster) addrs() string {
	var a []string
	for _, cfg := range c.cfgs {
		a = append(a, cfg.API.Listen)
	}
	return strings.Join(a, ",")
}

// leader waits for a node that takes commands.
func (c *cluster) leader() int {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range c.nodes {
			if n != nil && n.Replica().Ready() {
				return i
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatal("no leader within 10 s")
	return -1
}

// TestClusterReplicates: three replicas in one process, over loopback
// TCP. Orders sent through a follower's address reach the leader (the
// client follows NotLeader), every replica applies the same commands,
// and after the leader stops the others elect a new one, the client
// resumes its session there with nothing missed, and trading goes on;
// at the end every replica holds the same state (state hashes equal).
func TestClusterReplicates(t *testing.T) {
	c := newCluster(t, 3)
	defer c.stopAll()
	lead := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	follower := c.cfgs[(lead+1)%3].API.Listen
	cl, err := client.Dial(ctx, client.Config{Addr: follower + "," + c.addrs(), Account: 1, Token: "t", Session: "s1", Reconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.Addr(); got != c.cfgs[lead].API.Listen {
		t.Fatalf("logged in at %s, want the leader's %s", got, c.cfgs[lead].API.Listen)
	}
	submit := func(n int) { t.Helper(); submitOrders(ctx, t, cl, n) }
	submit(200)
	seqs := func() []engine.Seq {
		var s []engine.Seq
		for _, n := range c.nodes {
			if n != nil {
				s = append(s, n.Pipeline().Durable())
			}
		}
		return s
	}
	waitEqual := func(want engine.Seq) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ok := true
			for _, s := range seqs() {
				ok = ok && s == want
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("replicas at %v, want all at %d", seqs(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitEqual(c.nodes[lead].Pipeline().Durable())

	// The leader goes; another takes over; the client follows.
	t0 := time.Now()
	c.stop(lead)
	lead2 := c.leader()
	t.Logf("new leader node %d after %v", lead2+1, time.Since(t0).Round(time.Millisecond))
	submit(100)
	if got := cl.Addr(); got != c.cfgs[lead2].API.Listen {
		t.Fatalf("after the failover logged in at %s, want %s", got, c.cfgs[lead2].API.Listen)
	}
	// The old leader comes back as a follower and catches up.
	c.start(lead)
	submit(50)
	waitEqual(c.nodes[lead2].Pipeline().Durable())
	last := c.nodes[lead2].Pipeline().Durable()
	if last < 350 {
		t.Fatalf("last sequence %d, want at least 350", last)
	}
	cl.Close()
	var hashes []string
	for i := range c.nodes {
		n := c.nodes[i]
		if err := n.Close(2 * time.Second); err != nil {
			t.Errorf("node %d close: %v", i+1, err)
		}
		c.nodes[i] = nil
		e := n.Pipeline().Engine()
		hashes = append(hashes, fmt.Sprintf("%d:%x", e.LastSeq(), e.StateHash()))
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Fatalf("replicas differ: %v", hashes)
	}
}

// TestClusterMembersInProcess: the membership changes and a leadership
// transfer with every replica in this process, so that the race detector
// sees them (cmd/matchd's tests drive the same through real processes). A
// fourth node joins and catches up, a follower is removed and stops, and
// the leadership goes to the new node; the client follows it.
func TestClusterMembersInProcess(t *testing.T) {
	c := newCluster(t, 3)
	defer c.stopAll()
	lead := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.dial(ctx, "m1")
	defer cl.Close()
	submit := func(n int) { t.Helper(); submitOrders(ctx, t, cl, n) }
	submit(100)

	// A fourth node joins.
	p4 := replica.Peer{ID: 4, Addr: freePort(t), Client: freePort(t)}
	cfg := c.cfgs[0]
	cfg.Dir, cfg.API.Listen, cfg.Logger = t.TempDir(), p4.Client, cfg.Logger.With("node", 4)
	cfg.Cluster = &replica.Config{ID: 4, Peers: append(slices.Clone(c.cfgs[0].Cluster.Peers), p4), Join: true}
	c.cfgs, c.nodes = append(c.cfgs, cfg), append(c.nodes, nil)
	c.start(3)
	if err := c.nodes[lead].Replica().AddMember(p4, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	want := c.nodes[lead].Pipeline().Durable()
	deadline := time.Now().Add(10 * time.Second)
	for c.nodes[3].Pipeline().Durable() < want {
		if time.Now().After(deadline) {
			t.Fatalf("node 4 at seq %d, want %d", c.nodes[3].Pipeline().Durable(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A follower is removed and stops.
	gone := (lead + 1) % 3
	if err := c.nodes[lead].Replica().RemoveMember(uint64(gone+1), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.nodes[gone].Failed():
		if !errors.Is(c.nodes[gone].Err(), replica.ErrRemoved) {
			t.Fatalf("the removed node failed with %v", c.nodes[gone].Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the removed node did not stop")
	}
	c.stop(gone)
	submit(50)

	// The leadership goes to node 4; the client follows. The old leader
	// fails as a node and is restarted as a follower, as the binary does
	// (a failed node that is not restarted keeps its sessions and answers
	// their orders with nothing: a client sent one order there and waited).
	if err := c.nodes[lead].Replica().TransferLeader(4, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := c.leader(); got != 3 {
		t.Fatalf("node %d leads after the transfer, want 4", got+1)
	}
	c.restartFailed(lead)
	submit(50)
	if got := cl.Addr(); got != p4.Client {
		t.Fatalf("the client is at %s, want node 4's %s", got, p4.Client)
	}
	var ids []uint64
	for _, m := range c.nodes[3].Replica().Members() {
		if m.Voter {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) != 3 || slices.Contains(ids, uint64(gone+1)) || !slices.Contains(ids, 4) {
		t.Fatalf("node 4's voters: %v", ids)
	}
}

// TestClusterIdleDeposedLeaderFails: a leader that hands the leadership
// over fails as a node, asking for a restart, even when no command
// arrives after it; restarted as the binary restarts it, it rejoins as a
// follower and the client carries on through the new leader.
func TestClusterIdleDeposedLeaderFails(t *testing.T) {
	c := newCluster(t, 3)
	defer c.stopAll()
	lead := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.dial(ctx, "idle")
	defer cl.Close()
	submitOrders(ctx, t, cl, 10)
	to := (lead + 1) % 3
	if err := c.nodes[lead].Replica().TransferLeader(uint64(to+1), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	c.restartFailed(lead)
	quick, cancelQuick := context.WithTimeout(ctx, 10*time.Second)
	defer cancelQuick()
	submitOrders(quick, t, cl, 10)
}
