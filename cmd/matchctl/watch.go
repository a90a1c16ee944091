package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unsafe"

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
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(stop)
	if screen {
		// The alternate screen, cursor hidden; the terminal as it was after.
		fmt.Fprint(t.out, "\x1b[?1049h\x1b[?25l")
		defer fmt.Fprint(t.out, "\x1b[?25h\x1b[?1049l")
	}
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

// drawWatch redraws the terminal in place (on the alternate screen the
// watch entered): each line overwritten and cleared to its end, nothing
// cleared first, so nothing flickers; only when the frame changed.
func (t *trader) drawWatch(sym string, sc units.Scale, book *client.Book, tape []wire.Trade) {
	w, h := termSize(t.out)
	feedSeq, seq := book.FeedSeq()
	phase, _ := book.Phase()
	bids, asks := book.Depth(max(1, min(10, (h-8)/2)))
	frame := watchFrame(watchView{sym: sym, sc: sc, bids: bids, asks: asks, tape: tape, feedSeq: feedSeq, seq: seq,
		phase: phase, now: time.Now()}, w, h)
	if frame == t.lastFrame {
		return
	}
	t.lastFrame = frame
	fmt.Fprint(t.out, frame)
}

// watchView is what one frame of watch shows.
type watchView struct {
	sym        string
	sc         units.Scale
	bids, asks []engine.LevelInfo
	tape       []wire.Trade // oldest first
	feedSeq    uint64
	seq        engine.Seq
	phase      engine.Phase
	now        time.Time
}

// watchFrame renders a frame for a terminal of width × height: the
// header (phase, spread, last trade), the ladder (asks above bids, best
// in the middle) and the latest trades, every line cut to the width.
func watchFrame(v watchView, width, height int) string {
	var lines []string
	add := func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }
	phase := "continuous"
	if v.phase != 0 {
		phase = v.phase.String()
	}
	add("%s  %s  feed %d  %s UTC  (Ctrl-C stops)", v.sym, strings.ToUpper(phase), v.feedSeq, v.now.UTC().Format("15:04:05"))
	spread, last := "-", "-"
	if len(v.bids) > 0 && len(v.asks) > 0 {
		spread = v.sc.FormatPrice(v.asks[0].Price - v.bids[0].Price)
	}
	if n := len(v.tape); n > 0 {
		tr := v.tape[n-1]
		last = fmt.Sprintf("%s x %s (%s)", v.sc.FormatPrice(tr.Price), v.sc.FormatQty(tr.Qty), aggressor(tr.Aggressor))
	}
	add("spread %s   last %s", spread, last)
	add("")
	col := max(8, min(18, (width-12)/3))
	add("%*s  %*s  %-*s", col, "bid qty", col, "price", col, "ask qty")
	for i := len(v.asks) - 1; i >= 0; i-- {
		add("%*s  %*s  %-*s", col, "", col, v.sc.FormatPrice(v.asks[i].Price), col, v.sc.FormatQty(v.asks[i].Qty))
	}
	add("%*s  %*s", col, "", col, "--- "+spread+" ---")
	for _, l := range v.bids {
		add("%*s  %*s", col, v.sc.FormatQty(l.Qty), col, v.sc.FormatPrice(l.Price))
	}
	add("")
	add("trades, latest first:")
	for i := len(v.tape) - 1; i >= 0 && len(lines) < height-1; i-- {
		tr := v.tape[i]
		add("  %s  %-4s %s @ %s  #%d", time.Unix(0, tr.Time).UTC().Format("15:04:05.000"), aggressor(tr.Aggressor),
			v.sc.FormatQty(tr.Qty), v.sc.FormatPrice(tr.Price), tr.Trade)
	}
	if len(lines) > height-1 {
		lines = lines[:height-1]
	}
	var b strings.Builder
	b.WriteString("\x1b[H") // home; each line overwritten and cleared to its end
	for _, l := range lines {
		if r := []rune(l); len(r) > width {
			l = string(r[:width])
		}
		b.WriteString(l)
		b.WriteString("\x1b[K\r\n")
	}
	b.WriteString("\x1b[J") // and below the last line
	return b.String()
}

func aggressor(s engine.Side) string {
	if s == engine.Buy || s == engine.Sell {
		return s.String()
	}
	return "auction"
}

// termSize returns the terminal's columns and rows (80 × 24 if it cannot
// tell).
func termSize(out io.Writer) (int, int) {
	if f, ok := out.(*os.File); ok {
		var ws struct{ row, col, x, y uint16 }
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws))); e == 0 && ws.col > 0 {
			return int(ws.col), int(ws.row)
		}
	}
	return 80, 24
}
