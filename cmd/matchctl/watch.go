package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/units"
)

// watchTape is how many trades the terminal view keeps.
const watchTape = 15

// watchState collects what the reader goroutine hears while watch runs.
type watchState struct {
	inst   engine.InstrumentID
	trades []wire.Trade // not yet printed (line mode) or the tape (screen mode)
}

// onTrade records a trade of the watched instrument (under trader.mu).
func (w *watchState) onTrade(tr wire.Trade) {
	if tr.Instrument == w.inst {
		w.trades = append(w.trades, tr)
	}
}

// watchBook subscribes to SYMBOL and shows its top of book and trades until
// interrupted, the connection ends, or --for has passed. On a terminal it
// redraws a screen (top levels and a trade tape); otherwise it prints one
// line (or JSON object) per change.
func (t *trader) watchBook(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return usageError("watch takes 1 argument")
	}
	in, sc, err := t.c.Instrument(ctx, args[0])
	if err != nil {
		return err
	}
	w := &watchState{inst: in.ID}
	t.mu.Lock()
	t.watching = w
	t.mu.Unlock()
	book, err := t.c.Subscribe(ctx, in.ID)
	if err != nil {
		return err
	}
	screen := false
	if f, ok := t.out.(*os.File); ok && !t.o.json {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			screen = true
		}
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	defer signal.Stop(stop)
	var until <-chan time.Time
	if t.o.duration > 0 {
		until = time.After(t.o.duration)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last engine.TopOfBook
	first := true
	for {
		if err := book.Err(); err != nil {
			return err
		}
		t.mu.Lock()
		trades := w.trades
		if screen {
			w.trades = trades[max(0, len(trades)-watchTape):]
		} else {
			w.trades = nil
		}
		t.mu.Unlock()
		top := book.Top()
		if screen {
			t.drawWatch(in.Symbol, sc, book, trades)
		} else {
			for _, tr := range trades {
				t.printTrade(in.Symbol, sc, tr)
			}
			if top != last || first {
				t.printTop(in.Symbol, sc, top, true)
			}
		}
		last, first = top, false
		select {
		case <-tick.C:
		case <-stop:
			return nil
		case <-until:
			return nil
		case <-t.c.Done():
			return t.c.Err()
		}
	}
}

func (t *trader) printTrade(sym string, sc units.Scale, tr wire.Trade) {
	t.print(fmt.Sprintf("trade %s %s %s @ %s  #%d", sym, tr.Aggressor, sc.FormatQty(tr.Qty), sc.FormatPrice(tr.Price), tr.Trade),
		map[string]any{"type": "trade", "symbol": sym, "aggressor": tr.Aggressor.String(), "qty": sc.FormatQty(tr.Qty),
			"price": sc.FormatPrice(tr.Price), "trade_id": tr.Trade, "time": time.Unix(0, tr.Time).UTC().Format(time.RFC3339Nano)})
}

// printTop prints a top of book; watch lines carry "type": "top" in JSON
// and a "top " prefix.
func (t *trader) printTop(sym string, sc units.Scale, top engine.TopOfBook, watch bool) {
	side := func(p engine.Price, q engine.Qty) (any, any, string) {
		if q == 0 {
			return nil, nil, "-"
		}
		return sc.FormatPrice(p), sc.FormatQty(q), sc.FormatQty(q) + " @ " + sc.FormatPrice(p)
	}
	bp, bq, bh := side(top.BidPrice, top.BidQty)
	ap, aq, ah := side(top.AskPrice, top.AskQty)
	human := fmt.Sprintf("%s  bid %s  ask %s", sym, bh, ah)
	js := map[string]any{"symbol": sym, "bid": bp, "bid_qty": bq, "ask": ap, "ask_qty": aq}
	if watch {
		human, js["type"] = "top "+human, "top"
	}
	t.print(human, js)
}

// drawWatch redraws the terminal: five levels a side and the trade tape.
func (t *trader) drawWatch(sym string, sc units.Scale, book *client.Book, tape []wire.Trade) {
	var b strings.Builder
	b.WriteString("\x1b[H\x1b[2J")
	feedSeq, seq := book.FeedSeq()
	fmt.Fprintf(&b, "%s   feed %d   command %d   %s   (Ctrl-C to stop)\n\n", sym, feedSeq, seq, time.Now().Format("15:04:05"))
	bids, asks := book.Depth(5)
	fmt.Fprintf(&b, "  %24s | %-24s\n", "BID (qty @ price)", "ASK (qty @ price)")
	for i := range 5 {
		l, r := "", ""
		if i < len(bids) {
			l = sc.FormatQty(bids[i].Qty) + " @ " + sc.FormatPrice(bids[i].Price)
		}
		if i < len(asks) {
			r = sc.FormatQty(asks[i].Qty) + " @ " + sc.FormatPrice(asks[i].Price)
		}
		fmt.Fprintf(&b, "  %24s | %-24s\n", l, r)
	}
	b.WriteString("\nTrades, latest first:\n")
	for i := len(tape) - 1; i >= 0; i-- {
		tr := tape[i]
		fmt.Fprintf(&b, "  %s  %-4s %s @ %s  #%d\n", time.Unix(0, tr.Time).Format("15:04:05.000"), tr.Aggressor,
			sc.FormatQty(tr.Qty), sc.FormatPrice(tr.Price), tr.Trade)
	}
	fmt.Fprint(t.out, b.String())
}
