package pipeline

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/ring"
)

// Journal is the durable log the pipeline writes to; persist.Store is one.
// Write and Commit are called by the journal stage only, Await by the
// release stage only; Await answers the Commits in the order they were made.
type Journal interface {
	// Write stages commands; they are not durable yet.
	Write(cmds []engine.Command) error
	// Commit hands everything staged since the last Commit to the log and
	// starts making it durable, without waiting for that: the next Write
	// and Commit may proceed while the sync runs.
	Commit() error
	// Await blocks until the oldest Commit not yet awaited is durable.
	Await() error
}

// FailingJournal is a Journal that can also fail outside its calls (a
// background error of its store, such as a full disk or corruption found
// by a reader). The pipeline fails with it even while a call is blocked.
type FailingJournal interface {
	Journal
	// Failed is closed when the journal fails; Err says why.
	Failed() <-chan struct{}
	Err() error
}

// QueryKind says what a query asks. Zero means the request is a command.
type QueryKind uint8

// Query kinds.
const (
	QueryTop   QueryKind = 1 // best bid and ask of Instrument
	QueryDepth QueryKind = 2 // up to Levels levels of each side of Instrument
	QueryOrder QueryKind = 3 // the open order OrderID
	// QueryOpenOrders reads one page of Account's open orders: up to
	// OpenOrdersPage of them after order id OrderID (0: from the oldest);
	// Result.More says whether more follow. A long list is read page by
	// page, each in its own batch, so that no answer can hold the loop
	// (or its memory) for long.
	QueryOpenOrders QueryKind = 4
	QueryBook       QueryKind = 5 // every level of both sides of Instrument (a market data snapshot)
	// QueryBarrier reads nothing: its result is delivered after the
	// results of everything submitted before it (a session ending uses
	// one to answer everything it sent before its Goodbye).
	QueryBarrier QueryKind = 6
	// QueryStatus reads Instrument's trading phase, reference price and
	// price band (Result.Phase, Result.Band).
	QueryStatus QueryKind = 7
)

// maxKeptAnswers is the most levels or orders a recycled batch keeps room
// for.
const maxKeptAnswers = 4 * OpenOrdersPage

// OpenOrdersPage is how many open orders one QueryOpenOrders reads.
const OpenOrdersPage = 1000

// Query is a read-only question to the engine.
type Query struct {
	Kind       QueryKind
	Instrument engine.InstrumentID
	Account    engine.AccountID
	OrderID    engine.OrderID
	Levels     int32
	// From is the producer's own value (the feed number a subscriber
	// resumes from, say), returned untouched in Result.From.
	From uint64
}

// Request is one slot of the inbound ring: a command (Query.Kind == 0) or
// a query. Token is the producer's own routing value (a session id, say),
// returned untouched with the result.
type Request struct {
	Cmd   engine.Command // Seq and Time are stamped by the loop
	Query Query
	Token uint64
	// Recv is the producer's own timestamp (when it read the request, say),
	// returned untouched with the result; the pipeline never reads it.
	Recv int64
	// Replicated marks a command sequenced elsewhere (a replica's leader):
	// Cmd's Seq and Time are kept, and Seq must follow the last applied.
	Replicated bool
}

// Result is the outcome of one request within a Batch. Its slices are
// index ranges into the Batch's buffers (see Batch.EventsOf and friends).
type Result struct {
	Token uint64
	Recv  int64 // the request's Recv
	// Seq is the command's sequence number; for a query, the sequence of
	// the last command applied before it was answered.
	Seq   engine.Seq
	Query QueryKind
	// Instrument is the query's instrument (QueryTop, QueryDepth).
	Instrument engine.InstrumentID

	events [2]int32
	levels [2]int32 // bids then asks
	bids   int32    // how many of levels are bids
	orders [2]int32
	// Top is the answer to QueryTop; Found says whether the instrument (or
	// order) exists for the queries that look one up.
	Top   engine.TopOfBook
	Found bool
	// More says a QueryOpenOrders page is not the last.
	More bool
	// FeedSeq is, for QueryBook, the instrument's feed number at the
	// snapshot (engine.Engine.FeedSeq). From echoes Query.From.
	FeedSeq, From uint64
	// Phase is, for QueryBook and QueryStatus, the instrument's trading
	// phase then.
	Phase engine.Phase
	// Band is, for QueryStatus, the reference price and the price band's
	// lowest and highest price (zero without a band).
	Band [3]engine.Price
}

// Batch is what one turn of the matching loop produced: the commands it
// sequenced, their events, and the answers to the queries it read. It is
// the pipeline's unit of durability, in the way raft's Ready is:
//
//   - Cmds are written to the journal before anything else happens to the
//     batch; the journal stage does that, in sequence order.
//   - Deliver receives the batch only once the journal has reported every
//     command in it (and in every batch before it) durable. Nothing of a
//     batch — responses, market data, query answers — may be shown to
//     anyone before then, and Deliver is the only way out of the pipeline.
//   - A batch with no commands (queries only) is still delivered in order,
//     after the batches before it are durable, because its answers may
//     reflect their commands.
//   - The batch, its slices and the Results' ranges are valid only during
//     the Deliver call; the pipeline reuses them afterwards.
type Batch struct {
	Cmds    []engine.Command // the sequenced commands, as journaled
	Results []Result         // one per request, in sequence order
	LastSeq engine.Seq
	Time    int64 // the timestamp stamped on its commands
	// EndOfCommit marks the last batch of a group commit: the batches of
	// one group are delivered back to back, and this is the point to hand
	// their results to the network (the Disruptor's endOfBatch).
	EndOfCommit bool

	events []engine.Event
	levels []engine.LevelInfo
	orders []engine.OrderInfo

	// Set by the journal stage: the last sequence of the Commit this batch
	// belongs to, and whether it is the Commit's first batch (the release
	// stage awaits the Commit there).
	commitSeq   engine.Seq
	commitFirst bool
}

// EventsOf returns the events of a command result.
func (b *Batch) EventsOf(r *Result) []engine.Event { return b.events[r.events[0]:r.events[1]] }

// DepthOf returns the bid and ask levels answering a QueryDepth or QueryBook.
func (b *Batch) DepthOf(r *Result) (bids, asks []engine.LevelInfo) {
	l := b.levels[r.levels[0]:r.levels[1]]
	return l[:r.bids], l[r.bids:]
}

// OrdersOf returns the orders answering a QueryOrder or QueryOpenOrders.
func (b *Batch) OrdersOf(r *Result) []engine.OrderInfo { return b.orders[r.orders[0]:r.orders[1]] }

func (b *Batch) reset() {
	b.Cmds, b.Results = b.Cmds[:0], b.Results[:0]
	b.events, b.levels, b.orders = b.events[:0], b.levels[:0], b.orders[:0]
	// A batch that answered a big query (a deep book, pages of orders)
	// gives the memory back instead of keeping it for every later batch.
	if cap(b.levels) > maxKeptAnswers {
		b.levels = nil
	}
	if cap(b.orders) > maxKeptAnswers {
		b.orders = nil
	}
}

// Config configures a Pipeline.
type Config struct {
	// RingSize is the number of inbound slots, a power of two. Default 65536.
	RingSize int
	// MaxBatch caps the requests the loop takes in one turn (a single
	// Submit larger than that is still taken whole). Default 8192.
	MaxBatch int
	// InFlight is how many batches may be matched but not yet delivered;
	// beyond it the loop waits for the journal (and the ring fills, and
	// producers wait). The limit is also what makes batches grow under
	// load: while the loop waits for a free batch, requests gather in the
	// ring and the next batch takes them all. (1024 in flight was measured
	// worse at 50 k and 100 k orders/s: many one-order batches, each its
	// own work for every stage.) Default 16.
	InFlight int
	// Clock returns the time in Unix nanoseconds. Default time.Now. The
	// loop never lets time go backwards.
	Clock func() int64
	// Follower starts the pipeline without sequencing: only Replicated
	// commands are applied (queries are answered), the clock sends
	// nothing, and a command to sequence is answered as a QueryBarrier
	// (nothing) until SetSequencing(true). For a replica that does not
	// lead.
	Follower bool
}

// EnsureDefaults fills in zero fields.
func (c *Config) EnsureDefaults() {
	if c.RingSize == 0 {
		c.RingSize = 1 << 16
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 8192
	}
	if c.InFlight == 0 {
		c.InFlight = 16
	}
	if c.Clock == nil {
		c.Clock = func() int64 { return time.Now().UnixNano() }
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.RingSize < 2 || c.RingSize&(c.RingSize-1) != 0 {
		errs = append(errs, fmt.Errorf("pipeline: ring size %d is not a power of two >= 2", c.RingSize))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("pipeline: max batch %d must be positive", c.MaxBatch))
	}
	if c.InFlight < 1 {
		errs = append(errs, fmt.Errorf("pipeline: in-flight batches %d must be positive", c.InFlight))
	}
	return errors.Join(errs...)
}

// ErrClosed is returned by Submit after Close.
var ErrClosed = errors.New("pipeline: closed")

// Pipeline owns an engine while it runs. See the package comment.
type Pipeline struct {
	e       *engine.Engine
	j       Journal
	deliver func(*Batch)
	cfg     Config
	ring    *ring.Ring[Request]

	free      chan *Batch // empty batches, for the loop
	toJournal chan *Batch // matched, for the journal stage
	toRelease chan *Batch // committed (not yet durable), for the release stage

	// Owned by the loop goroutine.
	seqOn    bool // sequencing, as read for the batch being matched
	seq      engine.Seq
	lastTime int64
	counts   loopCounts
	trades0  engine.TradeID // the engine's trade count at New

	// Owned by the journal stage: the batches of the Commit being built.
	group []*Batch
	// queued counts batches given to the journal stage and not yet passed
	// on by it; inline is the loop's one-batch group (see handOn).
	queued atomic.Int64
	inline [1]*Batch

	sequenced  atomic.Uint64
	durable    atomic.Uint64
	sequencing atomic.Bool // new commands are sequenced here (not Config.Follower, or SetSequencing)

	// The clock: the loop publishes the engine's NextWake in wake (and
	// signals wakeCh when it moves earlier); the clock goroutine sends a
	// CmdClock when the wall clock reaches it, one at a time (clockSent).
	lastWake  int64
	wake      atomic.Int64
	wakeCh    chan struct{}
	clockSent atomic.Bool
	// clockApplied says the clock's command was applied in the batch the
	// loop is matching (loop goroutine only).
	clockApplied bool
	clockStop    chan struct{}
	clockDone    chan struct{}

	failOnce sync.Once
	failErr  error
	failed   chan struct{}

	loopDone, journalDone, releaseDone chan struct{}
	started                            atomic.Bool
	closeOnce                          sync.Once

	stats stats
}

// New returns a pipeline around e, which must be exactly the state the
// journal holds (as recovered). deliver receives every batch once durable.
func New(e *engine.Engine, j Journal, deliver func(*Batch), cfg Config) (*Pipeline, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pipeline{
		e: e, j: j, deliver: deliver, cfg: cfg,
		ring:        ring.New[Request](cfg.RingSize),
		free:        make(chan *Batch, cfg.InFlight),
		toJournal:   make(chan *Batch, cfg.InFlight),
		toRelease:   make(chan *Batch, cfg.InFlight),
		seq:         e.LastSeq(),
		trades0:     e.LastTradeID(),
		failed:      make(chan struct{}),
		loopDone:    make(chan struct{}),
		wakeCh:      make(chan struct{}, 1),
		clockStop:   make(chan struct{}),
		clockDone:   make(chan struct{}),
		lastWake:    e.NextWake(),
		journalDone: make(chan struct{}),
		releaseDone: make(chan struct{}),
	}
	for range cfg.InFlight {
		p.free <- &Batch{events: make([]engine.Event, 0, 64)}
	}
	p.sequenced.Store(uint64(p.seq))
	p.durable.Store(uint64(p.seq))
	p.wake.Store(p.lastWake)
	p.sequencing.Store(!cfg.Follower)
	return p, nil
}

// SetSequencing turns the sequencing of new commands on or off (see
// Config.Follower). A replica turns it on once it leads and has applied
// everything committed before.
func (p *Pipeline) SetSequencing(on bool) {
	p.sequencing.Store(on)
	if on {
		select { // the clock looks at the engine's wake time again
		case p.wakeCh <- struct{}{}:
		default:
		}
	}
}

// ErrDiverged reports a replicated command that does not follow the last
// one applied.
var ErrDiverged = errors.New("pipeline: a replicated command does not follow the last applied")

// Start starts the three stages' goroutines: the matching loop, the
// journal stage and the release stage.
func (p *Pipeline) Start() {
	p.started.Store(true)
	go p.runClock()
	go p.runLoop()
	go p.runJournal()
	go p.runRelease()
	if fj, ok := p.j.(FailingJournal); ok {
		go func() {
			select {
			case <-fj.Failed():
				p.fail(fj.Err())
			case <-p.releaseDone:
			}
		}()
	}
}

// Ring returns the inbound ring, for producers that fill slots in place
// (Claim, Slot, Publish) instead of calling Submit.
func (p *Pipeline) Ring() *ring.Ring[Request] { return p.ring }

// Submit copies reqs into the ring, blocking while it is full.
func (p *Pipeline) Submit(reqs ...Request) error {
	for len(reqs) > 0 {
		if err := p.Err(); err != nil {
			return err
		}
		n := min(len(reqs), p.ring.Cap())
		lo, err := p.ring.Claim(n)
		if err != nil {
			return ErrClosed
		}
		for i := range n {
			*p.ring.Slot(lo + int64(i)) = reqs[i]
		}
		p.ring.Publish(lo, n)
		reqs = reqs[n:]
	}
	return nil
}

// Sequenced returns the last sequence number the loop assigned.
func (p *Pipeline) Sequenced() engine.Seq { return engine.Seq(p.sequenced.Load()) }

// Durable returns the last sequence number known durable.
func (p *Pipeline) Durable() engine.Seq { return engine.Seq(p.durable.Load()) }

// Failed is closed when the pipeline fails stop.
func (p *Pipeline) Failed() <-chan struct{} { return p.failed }

// Err returns the failure, if the pipeline failed.
func (p *Pipeline) Err() error {
	select {
	case <-p.failed:
		return p.failErr
	default:
		return nil
	}
}

func (p *Pipeline) fail(err error) {
	p.failOnce.Do(func() {
		p.failErr = fmt.Errorf("pipeline: journal failed, nothing more will be acknowledged: %w", err)
		close(p.failed)
	})
}

// Close stops accepting requests, lets everything already submitted be
// matched, journaled and delivered, and stops the goroutines. It returns
// the failure, if any. Afterwards the engine belongs to the caller again.
// Closing a pipeline that was never started just closes its ring.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		p.ring.Close()
		if !p.started.Load() { // never started: nothing runs, nothing was delivered
			return
		}
		close(p.clockStop)
		<-p.clockDone
		<-p.loopDone
		<-p.journalDone
		<-p.releaseDone
	})
	return p.Err()
}

// Engine returns the engine. Only call it before Start or after Close.
func (p *Pipeline) Engine() *engine.Engine { return p.e }

// RingLen returns how many ring slots are claimed and not yet consumed.
func (p *Pipeline) RingLen() int { return p.ring.Len() }

// NumCommandKinds bounds the command kinds Metrics.Commands counts; kinds
// at or above it (unknown ones) are counted as kind 0.
const NumCommandKinds = int(engine.CmdPhase) + 1

// NumRejectReasons bounds the reasons Metrics.Rejects counts.
const NumRejectReasons = 32

// loopCounts are the matching loop's own plain counters: it increments
// them with ordinary adds and publishes them into stats once per batch.
type loopCounts struct {
	commands [NumCommandKinds][2]int64
	rejects  [NumRejectReasons]int64
	queries  int64
}

// count records one applied command from its events. (Fills are not
// counted here: the engine's trade IDs count them.)
func (c *loopCounts) count(kind engine.CommandKind, evs []engine.Event) {
	k := int(kind)
	if k >= NumCommandKinds {
		k = 0
	}
	if len(evs) > 0 && evs[0].Kind == engine.EvRejected {
		c.commands[k][1]++
		c.rejects[int(evs[0].Reason)%NumRejectReasons]++
		return
	}
	c.commands[k][0]++
}

// stats are the counters the pipeline keeps for metrics, each written by
// one goroutine and readable by any. Nothing on the matching path takes a
// lock or calls into a metrics library: Metrics copies them into a value.
type stats struct {
	batches, requests, syncs, syncNanos, writes, writeNanos atomic.Int64
	batchSizes, syncLatency, writeLatency                   [24]atomic.Int64
	commands                                                [NumCommandKinds][2]atomic.Int64
	rejects                                                 [NumRejectReasons]atomic.Int64
	fills, queries                                          atomic.Int64
}

// Metrics is a snapshot of the pipeline's counters, all counting from New.
type Metrics struct {
	// Batches and Requests count the loop's batches and the requests in
	// them; BatchSizes[k] counts batches of size [2^k, 2^(k+1)).
	Batches, Requests int64
	BatchSizes        [24]int64
	// Writes, WriteNanos and WriteLatency (in µs buckets, as BatchSizes)
	// time the journal stage's write and commit of each group.
	Writes, WriteNanos int64
	WriteLatency       [24]int64
	// Syncs, SyncNanos and SyncLatency time the release stage's wait for
	// each group commit to become durable.
	Syncs, SyncNanos int64
	SyncLatency      [24]int64
	// Commands[kind][0] counts commands of a kind that were carried out,
	// [1] those rejected (kind 0: unknown kinds); Rejects counts them by
	// reason. Fills counts trades (from the engine's trade IDs), Queries
	// queries. Published by the loop after each batch.
	Commands [NumCommandKinds][2]int64
	Rejects  [NumRejectReasons]int64
	Fills    int64
	Queries  int64
}

// Metrics returns a snapshot of the counters. Each is read atomically; the
// snapshot as a whole is not (a scrape may see a batch half counted).
func (p *Pipeline) Metrics() Metrics {
	s := &p.stats
	m := Metrics{Batches: s.batches.Load(), Requests: s.requests.Load(), Writes: s.writes.Load(),
		WriteNanos: s.writeNanos.Load(), Syncs: s.syncs.Load(), SyncNanos: s.syncNanos.Load(),
		Fills: s.fills.Load(), Queries: s.queries.Load()}
	for k := range m.BatchSizes {
		m.BatchSizes[k], m.WriteLatency[k], m.SyncLatency[k] = s.batchSizes[k].Load(), s.writeLatency[k].Load(), s.syncLatency[k].Load()
	}
	for k := range m.Commands {
		m.Commands[k] = [2]int64{s.commands[k][0].Load(), s.commands[k][1].Load()}
	}
	for r := range m.Rejects {
		m.Rejects[r] = s.rejects[r].Load()
	}
	return m
}

// publish copies the loop's counters into s; trades is the engine's count.
func (s *stats) publish(c *loopCounts, trades int64) {
	for k := range c.commands {
		s.commands[k][0].Store(c.commands[k][0])
		s.commands[k][1].Store(c.commands[k][1])
	}
	for r := range c.rejects {
		s.rejects[r].Store(c.rejects[r])
	}
	s.fills.Store(trades)
	s.queries.Store(c.queries)
}

func (s *stats) observeWrite(d time.Duration) {
	s.writes.Add(1)
	s.writeNanos.Add(int64(d))
	s.writeLatency[log2Bucket(d.Microseconds())].Add(1)
}

func log2Bucket(v int64) int {
	if v < 1 {
		return 0
	}
	return min(bits.Len64(uint64(v))-1, 23)
}

func (s *stats) observeBatch(n int) {
	s.batches.Add(1)
	s.requests.Add(int64(n))
	s.batchSizes[log2Bucket(int64(n))].Add(1)
}

func (s *stats) observeSync(d time.Duration) {
	s.syncs.Add(1)
	s.syncNanos.Add(int64(d))
	s.syncLatency[log2Bucket(d.Microseconds())].Add(1)
}

// Percentile estimates the q-th quantile (0..1) of a log2 histogram as the
// upper bound of the bucket it falls in.
func Percentile(h *[24]int64, q float64) int64 {
	var total int64
	for i := range h {
		total += h[i]
	}
	if total == 0 {
		return 0
	}
	want := int64(q*float64(total-1)) + 1
	var seen int64
	for i := range h {
		seen += h[i]
		if seen >= want {
			return int64(1) << (i + 1)
		}
	}
	return int64(1) << 24
}
