package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/matchd/matchd/engine"
)

// The pipeline's stages driven one step at a time from scenario files
// (testdata/*.txt), with a fake journal and clock, in the manner of raft's
// rafttest interaction harness. No goroutine runs: each command performs
// one stage's step and prints what it did.
//
//	submit acct=A ref=R side=buy|sell price=P qty=Q [tif=gtc|ioc|fok] [query=top]
//	submit cancel acct=A order=O
//	submit query=top|depth [inst=1]
//	clock t=T           the time the loop stamps on its next batch
//	match               the loop: everything in the ring becomes one batch
//	journal             the journal stage: every matched batch, one Commit
//	sync [n=N]          the fake journal makes the oldest N Commits durable
//	fail-sync           the oldest Commit not yet durable fails to sync
//	deliver             the release stage: every batch whose Commit is durable
//	crash               lose everything not durable; recover from the journal
//	state               sequenced, durable, failure
//
// Regenerate with: go test ./pipeline -run TestStages -rewrite.

// fakeJournal is a Journal whose syncs the scenario decides.
type fakeJournal struct {
	staged  []engine.Command
	commits [][]engine.Command // in Commit order
	synced  int                // Commits [0, synced) are durable
	failed  int                // the Commit whose sync failed, or -1
	awaited int
}

func (j *fakeJournal) Write(cmds []engine.Command) error {
	j.staged = append(j.staged, cmds...)
	return nil
}

func (j *fakeJournal) Commit() error {
	j.commits = append(j.commits, j.staged)
	j.staged = nil
	return nil
}

func (j *fakeJournal) Await() error {
	k := j.awaited
	j.awaited++
	if k == j.failed {
		return errors.New("fake journal: sync failed")
	}
	if k >= j.synced {
		panic("harness: Await before the scenario synced the commit")
	}
	return nil
}

// ready reports whether the Commit the release stage would await next has
// an outcome (durable or failed), so that Await will not block.
func (j *fakeJournal) ready() bool {
	return j.awaited < j.synced || j.awaited == j.failed
}

// durable returns every durable command, in order.
func (j *fakeJournal) durable() []engine.Command {
	var out []engine.Command
	for _, c := range j.commits[:j.synced] {
		out = append(out, c...)
	}
	return out
}

type harness struct {
	cfg     engine.Config
	j       *fakeJournal
	p       *Pipeline
	now     int64
	token   uint64
	matched []*Batch // matched, not yet journaled
	journal []*Batch // journaled, not yet delivered
	out     strings.Builder
}

func newHarness(t *testing.T) *harness {
	h := &harness{cfg: engine.Config{Instruments: []engine.Instrument{{ID: 1, Symbol: "X", TickSize: "1",
		LotSize: "1", BandBps: 5000, StartPrice: 100}}}}
	h.j = &fakeJournal{failed: -1}
	h.restart(t, nil)
	return h
}

// restart builds a fresh engine, replays cmds into it, and a new pipeline
// around it on the same journal.
func (h *harness) restart(t *testing.T, cmds []engine.Command) {
	e, err := engine.New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var evs []engine.Event
	for i := range cmds {
		evs = e.Apply(&cmds[i], evs[:0])
	}
	p, err := New(e, h.j, h.deliver, Config{RingSize: 64, MaxBatch: 16, InFlight: 4,
		Clock: func() int64 { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	h.p, h.matched, h.journal = p, nil, nil
}

func (h *harness) deliver(b *Batch) {
	for i := range b.Results {
		r := &b.Results[i]
		switch r.Query {
		case 0:
			fmt.Fprintf(&h.out, "  seq %d token %d:", r.Seq, r.Token)
			for _, ev := range b.EventsOf(r) {
				if ev.Kind == engine.EvLevel || ev.Kind == engine.EvTopOfBook {
					continue
				}
				fmt.Fprintf(&h.out, " [%s]", ev.Describe())
			}
			h.out.WriteString("\n")
		case QueryTop:
			fmt.Fprintf(&h.out, "  query top token %d at seq %d: bid %d x %d, ask %d x %d\n", r.Token, r.Seq,
				r.Top.BidPrice, r.Top.BidQty, r.Top.AskPrice, r.Top.AskQty)
		default:
			bids, asks := b.DepthOf(r)
			fmt.Fprintf(&h.out, "  query depth token %d at seq %d: %d bid levels, %d ask levels\n", r.Token, r.Seq, len(bids), len(asks))
		}
	}
}

func TestStages(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := newHarness(t)
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			h.out.Reset()
			h.step(t, td)
			return h.out.String()
		})
	})
}

func (h *harness) arg(td *datadriven.TestData, key, def string) string {
	for _, a := range td.CmdArgs {
		if a.Key == key && len(a.Vals) > 0 {
			return a.Vals[0]
		}
	}
	return def
}

func (h *harness) num(t *testing.T, td *datadriven.TestData, key string, def int64) int64 {
	v := h.arg(td, key, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		td.Fatalf(t, "%s=%q: %v", key, v, err)
	}
	return n
}

func (h *harness) step(t *testing.T, td *datadriven.TestData) {
	p := h.p
	switch td.Cmd {
	case "submit":
		h.token++
		req := Request{Token: h.token}
		switch {
		case td.HasArg("cancel"):
			req.Cmd = engine.Command{Kind: engine.CmdCancel, Account: engine.AccountID(h.num(t, td, "acct", 1)),
				OrderID: engine.OrderID(h.num(t, td, "order", 0))}
		case h.arg(td, "query", "") == "top":
			req.Query = Query{Kind: QueryTop, Instrument: engine.InstrumentID(h.num(t, td, "inst", 1))}
		case h.arg(td, "query", "") == "depth":
			req.Query = Query{Kind: QueryDepth, Instrument: engine.InstrumentID(h.num(t, td, "inst", 1)), Levels: 10}
		default:
			side, ok := engine.ParseSide(h.arg(td, "side", "buy"))
			tif, ok2 := engine.ParseTimeInForce(h.arg(td, "tif", "gtc"))
			if !ok || !ok2 {
				td.Fatalf(t, "bad side or tif")
			}
			req.Cmd = engine.Command{Kind: engine.CmdNewOrder, Account: engine.AccountID(h.num(t, td, "acct", 1)),
				Ref: engine.ClientRef(h.num(t, td, "ref", 1)), Instrument: 1, Side: side, Type: engine.Limit, TIF: tif,
				Price: engine.Price(h.num(t, td, "price", 100)), Qty: engine.Qty(h.num(t, td, "qty", 1))}
		}
		if err := p.Submit(req); err != nil {
			fmt.Fprintf(&h.out, "submit failed: %v\n", err)
			return
		}
		fmt.Fprintf(&h.out, "token %d in the ring (%d waiting)\n", req.Token, p.RingLen())
	case "clock":
		h.now = h.num(t, td, "t", 0)
		fmt.Fprintf(&h.out, "clock %d\n", h.now)
	case "match":
		if p.RingLen() == 0 {
			h.out.WriteString("ring empty\n")
			return
		}
		if p.Err() != nil {
			lo, hi, _ := p.ring.Next(p.cfg.MaxBatch)
			p.ring.Release(hi)
			fmt.Fprintf(&h.out, "failed: %d requests dropped\n", hi-lo)
			return
		}
		var b *Batch
		select {
		case b = <-p.free:
		default:
			fmt.Fprintf(&h.out, "no free batch: %d in flight\n", p.cfg.InFlight)
			return
		}
		lo, hi, _ := p.ring.Next(p.cfg.MaxBatch)
		p.match(b, lo, hi)
		h.matched = append(h.matched, b)
		fmt.Fprintf(&h.out, "batch at t=%d: %d commands, %d results, through seq %d\n", b.Time, len(b.Cmds), len(b.Results), b.LastSeq)
	case "journal":
		if len(h.matched) == 0 {
			h.out.WriteString("nothing matched\n")
			return
		}
		p.commit(h.matched)
		n := 0
		for _, b := range h.matched {
			n += len(b.Cmds)
		}
		if p.Err() != nil {
			fmt.Fprintf(&h.out, "not written (failed): %d batches\n", len(h.matched))
		} else if n == 0 {
			fmt.Fprintf(&h.out, "%d batches, no commands: nothing to commit\n", len(h.matched))
		} else {
			fmt.Fprintf(&h.out, "commit %d: %d commands in %d batches, through seq %d\n", len(h.j.commits), n,
				len(h.matched), h.matched[len(h.matched)-1].LastSeq)
		}
		h.journal = append(h.journal, h.matched...)
		h.matched = nil
	case "sync":
		n := int(h.num(t, td, "n", 1))
		for range n {
			if h.j.synced >= len(h.j.commits) {
				h.out.WriteString("no commit to sync\n")
				break
			}
			h.j.synced++
			fmt.Fprintf(&h.out, "commit %d durable\n", h.j.synced)
		}
	case "fail-sync":
		if h.j.synced >= len(h.j.commits) {
			h.out.WriteString("no commit to fail\n")
			return
		}
		h.j.failed = h.j.synced
		fmt.Fprintf(&h.out, "commit %d: sync fails\n", h.j.failed+1)
	case "deliver":
		for len(h.journal) > 0 {
			b := h.journal[0]
			if b.commitFirst && p.Err() == nil && !h.j.ready() {
				fmt.Fprintf(&h.out, "waiting: commit %d not durable\n", h.j.awaited+1)
				break
			}
			before := h.out.Len()
			p.release(b)
			if h.out.Len() == before {
				fmt.Fprintf(&h.out, "  batch through seq %d dropped\n", b.LastSeq)
			}
			h.journal = h.journal[1:]
			p.free <- b
		}
		if h.out.Len() == 0 {
			h.out.WriteString("nothing to deliver\n")
		}
	case "crash":
		d := h.j.durable()
		lost := int(p.Sequenced()) - len(d)
		h.j.commits, h.j.staged = slices.Clone(h.j.commits[:h.j.synced]), nil
		h.j.awaited, h.j.failed = h.j.synced, -1
		h.restart(t, d)
		fmt.Fprintf(&h.out, "recovered to seq %d (%d sequenced commands lost, none of them delivered)\n", len(d), lost)
	case "state":
		fmt.Fprintf(&h.out, "sequenced %d, durable %d", p.Sequenced(), p.Durable())
		if err := p.Err(); err != nil {
			fmt.Fprintf(&h.out, ", failed: %v", err)
		}
		h.out.WriteString("\n")
	default:
		td.Fatalf(t, "unknown command %q", td.Cmd)
	}
}
