package main

import (
	"runtime"
	"strings"
	"time"

	"github.com/matchd/matchd/api"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/buildinfo"
	"github.com/matchd/matchd/persist"
	"github.com/matchd/matchd/pipeline"
	"github.com/matchd/matchd/replica"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"strconv"
)

// collector exposes the server's counters to Prometheus. Nothing is
// counted through it: the matching loop, the journal and release stages, the
// sessions and the snapshotter keep plain (atomic) counters of their own,
// and Collect reads them at scrape time.
type collector struct {
	p        *pipeline.Pipeline
	srv      *api.Server
	sn       *persist.Snapshotter
	store    *persist.Store
	recovery persist.RecoveryStats

	// Label values, worked out once.
	version, revision string
	kindNames         [pipeline.NumCommandKinds]string
	reasonNames       [pipeline.NumRejectReasons]string // "" for numbers that are no reason

	buildInfo, commands, rejects, fills, queries                         *prometheus.Desc
	ringUsed, ringSize, batchSize, writeSecs, syncSecs                   *prometheus.Desc
	sequenced, durable, lag                                              *prometheus.Desc
	snapSecs, snapBytes, snapSeq, snapsTaken, snapFails                  *prometheus.Desc
	recoverySecs, recoveryReplayed, sessions, subs, conns, discons       *prometheus.Desc
	preLogin, loginFails, acceptErrs, outQueued, storeBgErrs, inPipeline *prometheus.Desc
	ackSecs                                                              *prometheus.Desc
}

// labelName turns an engine name ("new-order") into a label value
// ("new_order"); numbers the engine has no name for ("?7") give "".
func labelName(name string) string {
	if strings.HasPrefix(name, "?") {
		return ""
	}
	return strings.ReplaceAll(name, "-", "_")
}

func newCollector(p *pipeline.Pipeline, srv *api.Server, sn *persist.Snapshotter, store *persist.Store, rec persist.RecoveryStats) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("matchd_"+name, help, labels, nil)
	}
	c := &collector{
		p: p, srv: srv, sn: sn, store: store, recovery: rec,
		buildInfo: d("build_info", "Build of the running server (value 1).", "version", "revision", "goversion"),
		commands:  d("commands_total", "Commands applied by the matching loop, by type and result.", "type", "result"),
		rejects:   d("rejects_total", "Commands rejected, by reason.", "reason"),
		fills:     d("fills_total", "Trades (one per maker order filled)."),
		queries:   d("queries_total", "Read-only queries answered by the matching loop."),
		ringUsed:  d("ring_occupancy", "Inbound ring slots claimed and not yet taken by the loop."),
		ringSize:  d("ring_capacity", "Inbound ring slots in all."),
		batchSize: d("loop_batch_requests", "Requests the matching loop took per batch."),
		writeSecs: d("journal_write_seconds", "Time to write and commit one group commit's records (the journal stage; the sync is not waited for)."),
		syncSecs:  d("journal_sync_seconds", "Time the release stage waited for one group commit to become durable (the rest of its fsync)."),
		sequenced: d("sequenced_seq", "Sequence number of the last command the loop applied."),
		durable:   d("durable_seq", "Sequence number of the last command known durable."),
		lag:       d("durable_lag_commands", "Commands sequenced but not yet durable."),
		snapSecs:  d("snapshot_duration_seconds", "Time the last snapshot took (catch up, encode, write)."),
		snapBytes: d("snapshot_size_bytes", "Size of the last snapshot."),
		snapSeq:   d("snapshot_seq", "Sequence number the last snapshot covers."),
		snapsTaken: d("snapshots_total",
			"Snapshots taken since start (not counting the final one at shutdown)."),
		snapFails:        d("snapshot_failures_total", "Snapshots that failed."),
		recoverySecs:     d("recovery_duration_seconds", "Time recovery took at start."),
		recoveryReplayed: d("recovery_replayed_commands", "Journal records replayed at start, after the snapshot."),
		sessions:         d("sessions", "Logged-in sessions."),
		subs:             d("market_data_subscriptions", "Market data subscriptions (session × instrument)."),
		conns:            d("connections", "Open order-port connections, logged in or not."),
		discons:          d("disconnects_total", "Connections ended, by cause.", "cause"),
		preLogin:         d("prelogin_connections", "Order-port connections that have not logged in yet."),
		loginFails:       d("login_failures_total", "Logins refused for bad credentials."),
		acceptErrs:       d("accept_errors_total", "Failed accepts on the order port (each retried after a backoff)."),
		outQueued:        d("outbound_queued_bytes", "Bytes of responses and market data waiting for clients, all sessions."),
		storeBgErrs:      d("store_background_errors_total", "Background errors Pebble reported (flushes, compactions)."),
		inPipeline:       d("sessions_in_pipeline", "Sessions with requests in the pipeline (the session credit applies when more than one)."),
		ackSecs: d("order_ack_seconds",
			"From reading a command off the socket to queuing its first response (after it is durable)."),
	}
	c.version, c.revision = buildVersion()
	for k := range c.kindNames {
		c.kindNames[k] = labelName(engine.CommandKind(k).String())
	}
	c.kindNames[0] = "unknown"
	for r := range c.reasonNames {
		c.reasonNames[r] = labelName(engine.RejectReason(r).String())
	}
	return c
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.buildInfo, c.commands, c.rejects, c.fills, c.queries, c.ringUsed,
		c.ringSize, c.batchSize, c.writeSecs, c.syncSecs, c.sequenced, c.durable, c.lag, c.snapSecs, c.snapBytes,
		c.snapSeq, c.snapsTaken, c.snapFails, c.recoverySecs, c.recoveryReplayed, c.sessions, c.subs, c.conns,
		c.discons, c.ackSecs, c.preLogin, c.loginFails, c.acceptErrs, c.outQueued, c.storeBgErrs, c.inPipeline} {
		ch <- d
	}
}

// Collect reads the counters.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.buildInfo, 1, c.version, c.revision, runtime.Version())

	st := c.p.Metrics()
	for k := range st.Commands {
		counter(c.commands, st.Commands[k][0], c.kindNames[k], "ok")
		counter(c.commands, st.Commands[k][1], c.kindNames[k], "rejected")
	}
	for r, name := range c.reasonNames {
		if name != "" {
			counter(c.rejects, st.Rejects[r], name)
		}
	}
	counter(c.fills, st.Fills)
	counter(c.queries, st.Queries)
	gauge(c.ringUsed, float64(c.p.RingLen()))
	gauge(c.ringSize, float64(c.p.Ring().Cap()))
	ch <- log2Histogram(c.batchSize, &st.BatchSizes, float64(st.Requests), 1)
	ch <- log2Histogram(c.writeSecs, &st.WriteLatency, time.Duration(st.WriteNanos).Seconds(), 1e-6)
	ch <- log2Histogram(c.syncSecs, &st.SyncLatency, time.Duration(st.SyncNanos).Seconds(), 1e-6)
	seq, dur := c.p.Sequenced(), c.p.Durable()
	gauge(c.sequenced, float64(seq))
	gauge(c.durable, float64(dur))
	gauge(c.lag, float64(seq-min(dur, seq)))

	if c.sn != nil {
		sm := c.sn.Metrics()
		gauge(c.snapSecs, sm.LastDuration.Seconds())
		gauge(c.snapBytes, float64(sm.LastBytes))
		gauge(c.snapSeq, float64(sm.LastSeq))
		counter(c.snapsTaken, sm.Taken)
		counter(c.snapFails, sm.Failures)
	}
	gauge(c.recoverySecs, c.recovery.Duration.Seconds())
	gauge(c.recoveryReplayed, float64(c.recovery.Replayed))

	ss := c.srv.Metrics()
	gauge(c.sessions, float64(ss.Sessions))
	gauge(c.subs, float64(ss.Subscriptions))
	gauge(c.conns, float64(ss.Connections))
	for i, name := range api.CauseNames {
		counter(c.discons, ss.Disconnects[i], name)
	}
	gauge(c.preLogin, float64(ss.PreLogin))
	counter(c.loginFails, ss.LoginFailures)
	counter(c.acceptErrs, ss.AcceptErrors)
	gauge(c.outQueued, float64(ss.OutboundQueued))
	gauge(c.inPipeline, float64(ss.InPipeline))
	if c.store != nil {
		counter(c.storeBgErrs, c.store.BackgroundErrors())
	}
	ch <- log2Histogram(c.ackSecs, &ss.AckLatency, time.Duration(ss.AckNanos).Seconds(), 1e-6)
}

// log2Histogram turns a log2 bucket array (bucket k counts values in
// [2^k, 2^(k+1)) units, bucket 0 also the smaller ones) into a Prometheus
// histogram with upper bounds 2^(k+1) × unit. The count is the sum of the
// buckets as read, so that the two always agree.
func log2Histogram(d *prometheus.Desc, h *[24]int64, sum, unit float64) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h))
	var cum uint64
	for k := range h {
		cum += uint64(h[k])
		buckets[float64(uint64(1)<<(k+1))*unit] = cum
	}
	return prometheus.MustNewConstHistogram(d, cum, sum, buckets)
}

// buildVersion returns the main module's version and VCS revision, as the
// Go toolchain stamped them.
func buildVersion() (version, revision string) {
	in := buildinfo.Read()
	return in.Version, in.Revision
}

// newRegistry returns the registry /metrics serves: the server's metrics
// and the Go runtime's and the process's.
func newRegistry(c *collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// clusterCollector exports a replica's state: its role, term, raft commit
// and applied indexes, and on the leader each follower's replication lag.
type clusterCollector struct {
	r                                    *replica.Replica
	role, leads, term, commit, applied   *prometheus.Desc
	committedSeq, followerMatch, lagDesc *prometheus.Desc
	members                              *prometheus.Desc
}

func newClusterCollector(r *replica.Replica) *clusterCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("matchd_raft_"+name, help, labels, nil)
	}
	return &clusterCollector{r: r,
		role:          d("role", "This replica's role (value 1 for the current one).", "role"),
		leads:         d("leads", "1 if this replica leads and takes orders."),
		term:          d("term", "The raft term."),
		commit:        d("commit_index", "The raft log's commit index."),
		applied:       d("applied_index", "The last raft entry applied here."),
		committedSeq:  d("committed_seq", "The last command sequence number known committed on a quorum."),
		followerMatch: d("follower_match_index", "On the leader: the last index known replicated on each follower.", "follower"),
		lagDesc:       d("follower_lag_entries", "On the leader: entries committed but not yet known on each follower.", "follower"),
		members:       d("members", "The members this replica knows, by whether they vote (a member being added does once its change is applied).", "voter"),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.role, c.leads, c.term, c.commit, c.applied, c.committedSeq, c.followerMatch, c.lagDesc, c.members} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.Status()
	for _, r := range []replica.Role{replica.Follower, replica.Candidate, replica.Leader} {
		v := 0.0
		if st.Role == r {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.role, prometheus.GaugeValue, v, r.String())
	}
	leads := 0.0
	if st.Ready {
		leads = 1
	}
	ch <- prometheus.MustNewConstMetric(c.leads, prometheus.GaugeValue, leads)
	ch <- prometheus.MustNewConstMetric(c.term, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(c.commit, prometheus.GaugeValue, float64(st.Commit))
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(st.Applied))
	ch <- prometheus.MustNewConstMetric(c.committedSeq, prometheus.GaugeValue, float64(st.CommittedSeq))
	var voters, others float64
	for _, m := range c.r.Members() {
		if m.Voter {
			voters++
		} else {
			others++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, voters, "true")
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, others, "false")
	for id, m := range st.Match {
		f := strconv.FormatUint(id, 10)
		ch <- prometheus.MustNewConstMetric(c.followerMatch, prometheus.GaugeValue, float64(m), f)
		lag := 0.0
		if st.Commit > m {
			lag = float64(st.Commit - m)
		}
		ch <- prometheus.MustNewConstMetric(c.lagDesc, prometheus.GaugeValue, lag, f)
	}
}
