package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/matchd/matchd/api/client"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/units"
)

const tradeUsage = `usage: matchctl [--addr A] [--account N] [--token T] [--json] COMMAND
  buy|sell SYMBOL QTY PRICE [--tif gtc|ioc|fok|post|day|gtd --expire DURATION]
  buy|sell SYMBOL QTY --market [--tif ioc|fok]
      --stop P      a stop (with --market) or stop-limit order triggered at P
      --display Q   an iceberg showing Q at a time
  admin halt|resume|open-auction|uncross|close SYMBOL   (operator accounts)
  cancel ORDER_ID
  replace ORDER_ID [--qty Q] [--price P]     (Q is the new total quantity)
  cancel-all [SYMBOL]
  top SYMBOL
  info SYMBOL                              (phase, reference price, price band, tick and lot)
  depth SYMBOL [--levels N]
  orders
  status ORDER_ID
  watch SYMBOL [--for DURATION]            (live top of book and trades; Ctrl-C stops)
Connection: --addr (MATCH_ADDR, default 127.0.0.1:7001), --account (MATCH_ACCOUNT,
a number), --token (MATCH_TOKEN), --session (MATCH_SESSION, default matchctl;
if another matchctl uses it, matchctl2 ... matchctl9). Prices and quantities
are decimals.
Numbers may be negative where that means something to the server (it
says why it refuses); "--" ends the flags. --help (or help) prints this;
--version the build.
Exit status: 0 done, 1 rejected or failed, 2 bad usage.
`

// valueFlags take a value; the rest are booleans.
var valueFlags = map[string]bool{"addr": true, "account": true, "token": true, "session": true, "tif": true,
	"levels": true, "qty": true, "price": true, "for": true, "stop": true, "display": true, "expire": true}

// splitArgs moves flags before the positional arguments, so that flags may
// come anywhere on the line. A number (-5, -0.5) is an argument, not a
// flag, and everything after "--" is an argument.
func splitArgs(args []string) (flags, pos []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 && !isNumber(a[1:]) {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && valueFlags[name] && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return flags, pos
}

// isNumber reports whether s is a decimal number (what follows the sign
// of a negative one).
func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil && s != "" && (s[0] == '.' || (s[0] >= '0' && s[0] <= '9'))
}

type tradeOpts struct {
	addr, token, tif, qty, price string
	stop, display                string
	expire                       time.Duration
	session                      string
	account                      uint64
	levels                       int
	duration                     time.Duration
	market, json                 bool
}

func trade(args []string, stdout, stderr io.Writer) int {
	flagArgs, pos := splitArgs(args)
	fs := flag.NewFlagSet("matchctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // -h: the usage goes to stdout below; an error says how to get it
	var o tradeOpts
	fs.StringVar(&o.addr, "addr", envOr("MATCH_ADDR", "127.0.0.1:7001"), "server address")
	acct, _ := strconv.ParseUint(os.Getenv("MATCH_ACCOUNT"), 10, 32)
	fs.Uint64Var(&o.account, "account", acct, "account number")
	fs.StringVar(&o.token, "token", os.Getenv("MATCH_TOKEN"), "login token")
	fs.StringVar(&o.session, "session", envOr("MATCH_SESSION", "matchctl"), "session name (1-8 characters; if in use, NAME2 … NAME9)")
	fs.StringVar(&o.tif, "tif", "", "time in force: gtc, ioc, fok, post")
	fs.StringVar(&o.qty, "qty", "", "new total quantity (replace)")
	fs.StringVar(&o.price, "price", "", "new price (replace)")
	fs.IntVar(&o.levels, "levels", 10, "levels per side (depth)")
	fs.DurationVar(&o.duration, "for", 0, "watch: stop after this long (default: until Ctrl-C)")
	fs.BoolVar(&o.market, "market", false, "market order")
	fs.StringVar(&o.stop, "stop", "", "stop price: a stop (--market) or stop-limit order")
	fs.StringVar(&o.display, "display", "", "iceberg: the quantity shown at a time")
	fs.DurationVar(&o.expire, "expire", 0, "GTD: expire after this long")
	fs.BoolVar(&o.json, "json", false, "print JSON (errors too: {\"error\": ...} on standard output)")
	if err := fs.Parse(flagArgs); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, tradeUsage, usage)
			return 0
		}
		fmt.Fprintln(stderr, "matchctl --help lists the commands and flags")
		return 2
	}
	if len(pos) == 0 {
		fmt.Fprint(stderr, tradeUsage)
		return 2
	}
	// fail reports an error: in words on stderr, or as JSON on stdout
	// with --json.
	fail := func(code int, err error) int {
		if o.json {
			v := map[string]any{"error": strings.TrimPrefix(err.Error(), "client: ")}
			var re *client.RejectError
			var le *client.LoginError
			switch {
			case errors.As(err, &re):
				v["reason"] = re.Reason.String()
			case errors.As(err, &le):
				v["login_reason"] = le.Reason
			}
			b, _ := json.Marshal(v)
			fmt.Fprintln(stdout, string(b))
			return code
		}
		fmt.Fprintln(stderr, "matchctl:", err)
		if code == 2 {
			fmt.Fprint(stderr, tradeUsage)
		}
		return code
	}
	if o.account == 0 || o.token == "" {
		return fail(2, errors.New("--account and --token (or MATCH_ACCOUNT and MATCH_TOKEN) are required"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t := &trader{o: o, out: stdout}
	c, err := dialSession(ctx, client.Config{Addr: o.addr, Account: engine.AccountID(o.account), Token: o.token,
		OnMessage: t.onMessage}, o.session)
	if errors.Is(err, syscall.ECONNREFUSED) {
		err = fmt.Errorf("%w (is matchd running there? `make run` starts one on 127.0.0.1:7001; --addr or MATCH_ADDR names another)", err)
	}
	if err != nil {
		return fail(1, err)
	}
	defer c.Close()
	t.c = c
	if err := t.run(ctx, pos); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return fail(2, err)
		}
		return fail(1, t.explain(ctx, err))
	}
	return 0
}

// dialSession logs in to the named session, or, when its connection is
// in use by another matchctl, to the first of NAME2 … NAME9 that is free
// (the name is cut to make room for the digit).
func dialSession(ctx context.Context, cfg client.Config, name string) (*client.Client, error) {
	cfg.Session = name
	for i := 2; ; i++ {
		c, err := client.Dial(ctx, cfg)
		var le *client.LoginError
		if err == nil || !errors.As(err, &le) || le.Reason != wire.LoginSessionInUse || i > 9 {
			return c, err
		}
		cfg.Session = name[:min(len(name), wire.SessionNameSize-1)] + strconv.Itoa(i)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type usageError string

func (e usageError) Error() string { return string(e) }

// trader runs one command and collects the executions and cancels that
// follow an order's acceptance.
type trader struct {
	o   tradeOpts
	c   *client.Client
	out io.Writer

	mu      sync.Mutex
	ref     engine.ClientRef // of the order being entered
	watch   engine.OrderID   // its id, once accepted
	seq     engine.Seq       // the sequence number of its command
	fills   []wire.Executed
	remains *wire.Canceled
	others  []client.Message // what the command did to the account's other orders (self-trade cancels, stops triggered, their fills)
	settled chan struct{}

	collect   map[engine.Seq][]client.Message // replace: the session's messages by command
	ended     map[engine.Seq]bool             // commands whose last message has come
	endCh     chan struct{}
	watching  *watchState
	lastFrame string              // watch: the frame on the screen
	inst      engine.InstrumentID // of the order being entered
}

func (t *trader) onMessage(m *client.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := m.Report(); ok && t.collect != nil {
		// Everything of the session's stream by command, for commands
		// whose answer does not say what else they did (replace).
		t.collect[r.Seq] = append(t.collect[r.Seq], *m)
		if m.EndOfCommand() {
			t.ended[r.Seq] = true
			select {
			case t.endCh <- struct{}{}:
			default:
			}
		}
	}
	switch m.Type {
	case wire.TypeAccepted:
		// Seen here, in order, before the executions that follow it.
		if m.Accepted.Ref == t.ref && t.ref != 0 {
			t.watch, t.seq = m.Accepted.OrderID, m.Accepted.Seq
		}
	case wire.TypeExecuted:
		if m.Executed.OrderID == t.watch && t.watch != 0 && m.Executed.Seq == t.seq {
			t.fills = append(t.fills, m.Executed)
		} else if t.watch != 0 && m.Executed.Seq == t.seq {
			t.others = append(t.others, *m)
		}
	case wire.TypeTriggered:
		if t.watch != 0 && m.Triggered.Seq == t.seq {
			t.others = append(t.others, *m)
		}
	case wire.TypeTrade:
		if t.watching != nil {
			t.watching.onTrade(m.Trade)
		}
	case wire.TypeCanceled:
		if m.Canceled.OrderID == t.watch && t.watch != 0 && m.Canceled.Seq == t.seq {
			cp := m.Canceled
			t.remains = &cp
		} else if t.watch != 0 && m.Canceled.Seq == t.seq {
			t.others = append(t.others, *m)
		}
	}
	// The order's command has sent everything it will: its fills and an
	// IOC remainder came before this.
	if r, ok := m.Report(); ok && r.Seq == t.seq && t.seq != 0 && m.EndOfCommand() && t.settled != nil {
		close(t.settled)
		t.settled = nil
	}
}

func (t *trader) print(human string, v any) {
	if t.o.json {
		b, _ := json.Marshal(v)
		fmt.Fprintln(t.out, string(b))
		return
	}
	fmt.Fprintln(t.out, human)
}

func (t *trader) run(ctx context.Context, pos []string) error {
	cmd, args := pos[0], pos[1:]
	need := func(n int) error {
		if len(args) != n {
			return usageError(fmt.Sprintf("%s takes %d argument(s)", cmd, n))
		}
		return nil
	}
	switch cmd {
	case "buy", "sell":
		return t.order(ctx, cmd, args)
	case "cancel":
		if err := need(1); err != nil {
			return err
		}
		id, err := parseID(args[0])
		if err != nil {
			return err
		}
		// The order's instrument says how to print its quantity.
		o, open, err := t.c.Order(ctx, id)
		if err != nil {
			return err
		}
		c, err := t.c.Cancel(ctx, id)
		if err != nil {
			return err
		}
		qty, what := strconv.FormatInt(int64(c.Qty), 10)+" lots", ""
		if open {
			if sc, err := t.scaleOf(ctx, o.Instrument); err == nil {
				qty = sc.FormatQty(c.Qty)
				what = fmt.Sprintf(": %s %s @ %s", o.Side, t.symbolOf(ctx, o.Instrument), sc.FormatPrice(o.Price))
			}
		}
		t.print(fmt.Sprintf("canceled order %d%s (%s were open)", c.OrderID, what, qty),
			map[string]any{"order_id": c.OrderID, "status": "canceled", "canceled_qty": qty})
		return nil
	case "replace":
		return t.replace(ctx, args)
	case "cancel-all":
		inst := engine.InstrumentID(0)
		if len(args) > 1 {
			return usageError("cancel-all takes at most a symbol")
		}
		if len(args) == 1 {
			in, _, err := t.c.Instrument(ctx, args[0])
			if err != nil {
				return err
			}
			inst = in.ID
		}
		mc, err := t.c.MassCancel(ctx, inst)
		if err != nil {
			return err
		}
		t.print(fmt.Sprintf("canceled %d order(s)", mc.Count), map[string]any{"canceled": mc.Count})
		return nil
	case "top":
		if err := need(1); err != nil {
			return err
		}
		in, sc, err := t.c.Instrument(ctx, args[0])
		if err != nil {
			return err
		}
		top, err := t.c.Top(ctx, in.ID)
		if err != nil {
			return err
		}
		t.printTop(in.Symbol, sc, top.TopOfBook, false)
		return nil
	case "info":
		if err := need(1); err != nil {
			return err
		}
		in, sc, err := t.c.Instrument(ctx, args[0])
		if err != nil {
			return err
		}
		st, err := t.c.InstrumentStatus(ctx, in.ID)
		if err != nil {
			return err
		}
		phase := "continuous"
		if st.Phase != 0 {
			phase = st.Phase.String()
		}
		band, js := "no price band", map[string]any{"symbol": in.Symbol, "id": in.ID, "tick_size": in.TickSize, "lot_size": in.LotSize,
			"phase": phase, "reference_price": sc.FormatPrice(st.RefPrice), "band_low": nil, "band_high": nil}
		if st.BandLow != 0 || st.BandHigh != 0 {
			band = "limit orders from " + sc.FormatPrice(st.BandLow) + " to " + sc.FormatPrice(st.BandHigh)
			js["band_low"], js["band_high"] = sc.FormatPrice(st.BandLow), sc.FormatPrice(st.BandHigh)
		}
		t.print(fmt.Sprintf("%s (id %d): %s; tick %s, lot %s; reference price %s; %s", in.Symbol, in.ID, phase, in.TickSize, in.LotSize,
			sc.FormatPrice(st.RefPrice), band), js)
		return nil
	case "depth":
		if err := need(1); err != nil {
			return err
		}
		in, sc, err := t.c.Instrument(ctx, args[0])
		if err != nil {
			return err
		}
		bids, asks, err := t.c.Depth(ctx, in.ID, t.o.levels)
		if err != nil {
			return err
		}
		conv := func(ls []engine.LevelInfo) []map[string]any {
			out := []map[string]any{}
			for _, l := range ls {
				out = append(out, map[string]any{"price": sc.FormatPrice(l.Price), "qty": sc.FormatQty(l.Qty), "orders": l.Orders})
			}
			return out
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "%s\n%-16s %-16s | %-16s %s\n", in.Symbol, "bid qty", "bid", "ask", "ask qty")
		for i := 0; i < max(len(bids), len(asks)); i++ {
			b1, b2, a1, a2 := "", "", "", ""
			if i < len(bids) {
				b1, b2 = sc.FormatQty(bids[i].Qty), sc.FormatPrice(bids[i].Price)
			}
			if i < len(asks) {
				a1, a2 = sc.FormatPrice(asks[i].Price), sc.FormatQty(asks[i].Qty)
			}
			fmt.Fprintf(&sb, "%-16s %-16s | %-16s %s\n", b1, b2, a1, a2)
		}
		t.print(strings.TrimRight(sb.String(), "\n"),
			map[string]any{"symbol": in.Symbol, "bids": conv(bids), "asks": conv(asks)})
		return nil
	case "watch":
		return t.watchBook(ctx, args)
	case "admin":
		if len(args) != 2 {
			return usageError("admin takes an action (halt, resume, open-auction, uncross, close) and a symbol")
		}
		action, ok := engine.ParsePhaseAction(args[0])
		if !ok {
			return usageError(fmt.Sprintf("admin: unknown action %q: want halt, resume, open-auction, uncross or close", args[0]))
		}
		in, _, err := t.c.Instrument(ctx, args[1])
		if err != nil {
			return err
		}
		pc, err := t.c.Phase(ctx, in.ID, action)
		if err != nil {
			var re *client.RejectError
			if errors.As(err, &re) && re.Reason == engine.RejectNotOperator {
				return fmt.Errorf("%s: account %d is not an operator (\"operator\": true in the server's configuration)", args[0], t.o.account)
			}
			return err
		}
		t.print(fmt.Sprintf("%s: %s", in.Symbol, pc.Phase), map[string]any{"symbol": in.Symbol, "phase": pc.Phase.String()})
		return nil
	case "orders", "status":
		var list []engine.OrderInfo
		if cmd == "orders" {
			if err := need(0); err != nil {
				return err
			}
			var err error
			if list, err = t.c.OpenOrders(ctx); err != nil {
				return err
			}
			human, open, err := t.formatOrders(ctx, list)
			if err != nil {
				return err
			}
			fh, fills, err := t.formatFills(ctx)
			if err != nil {
				return err
			}
			if fh != "" {
				human += "\n" + fh
			}
			t.print(human, map[string]any{"open": open, "latest_fills": fills})
			return nil
		}
		if err := need(1); err != nil {
			return err
		}
		return t.printStatus(ctx, args[0])
	}
	return usageError(fmt.Sprintf("unknown command %q", cmd))
}

func parseID(s string) (engine.OrderID, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, usageError(fmt.Sprintf("order id %q is not a positive number", s))
	}
	return engine.OrderID(id), nil
}

func (t *trader) order(ctx context.Context, cmd string, args []string) error {
	if (t.o.market && len(args) != 2) || (!t.o.market && len(args) != 3) {
		return usageError(cmd + " takes SYMBOL QTY PRICE, or SYMBOL QTY with --market")
	}
	in, sc, err := t.c.Instrument(ctx, args[0])
	if err != nil {
		return err
	}
	t.inst = in.ID
	m := wire.NewOrder{Instrument: in.ID, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC}
	if cmd == "sell" {
		m.Side = engine.Sell
	}
	if m.Qty, err = sc.ParseQty(args[1]); err != nil {
		return err
	}
	if t.o.market {
		m.Type, m.TIF = engine.Market, engine.IOC
	} else if m.Price, err = sc.ParsePrice(args[2]); err != nil {
		return err
	}
	if t.o.tif != "" {
		tif, ok := engine.ParseTimeInForce(t.o.tif)
		if !ok {
			return usageError(fmt.Sprintf("--tif %q: want gtc, ioc, fok, post, day or gtd", t.o.tif))
		}
		m.TIF = tif
	}
	x := wire.NewOrderX{NewOrder: m}
	if t.o.stop != "" {
		if x.StopPrice, err = sc.ParsePrice(t.o.stop); err != nil {
			return err
		}
		x.Type = engine.StopLimit
		if t.o.market {
			x.Type = engine.Stop
		}
	}
	if t.o.display != "" {
		if x.Display, err = sc.ParseQty(t.o.display); err != nil {
			return err
		}
	}
	switch {
	case x.TIF == engine.GTD && t.o.expire <= 0:
		return usageError("--tif gtd needs --expire DURATION")
	case x.TIF != engine.GTD && t.o.expire != 0:
		return usageError("--expire goes with --tif gtd")
	case x.TIF == engine.GTD:
		x.Expire = time.Now().Add(t.o.expire).UnixNano()
	}
	m = x.NewOrder
	m.Ref = t.c.NextRef()
	x.Ref = m.Ref
	settled := make(chan struct{})
	t.mu.Lock()
	t.settled, t.ref = settled, m.Ref
	t.mu.Unlock()
	var acc wire.Accepted
	if x.StopPrice != 0 || x.Display != 0 || x.Expire != 0 {
		acc, err = t.c.SubmitX(ctx, x)
	} else {
		acc, err = t.c.Submit(ctx, m)
	}
	if err != nil {
		return err
	}
	// Executions and an IOC remainder arrive right behind the acceptance,
	// the last of them marked end of command.
	select {
	case <-settled:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the rest of order %d's answers: %w", acc.OrderID, ctx.Err())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var sb strings.Builder
	what := sc.FormatQty(acc.Qty) + " " + in.Symbol
	if m.Type == engine.Limit || m.Type == engine.StopLimit {
		what += " @ " + sc.FormatPrice(acc.Price)
	} else {
		what += " at market"
	}
	if x.StopPrice != 0 {
		what += ", stop " + sc.FormatPrice(x.StopPrice)
	}
	if x.Display != 0 {
		what += ", showing " + sc.FormatQty(x.Display)
	}
	fmt.Fprintf(&sb, "accepted order %d: %s %s (%s)", acc.OrderID, cmd, what, m.TIF)
	fills := []map[string]any{}
	for _, f := range t.fills {
		fmt.Fprintf(&sb, "\n  filled %s @ %s (trade %d)", sc.FormatQty(f.Qty), sc.FormatPrice(f.Price), f.Trade)
		fills = append(fills, map[string]any{"price": sc.FormatPrice(f.Price), "qty": sc.FormatQty(f.Qty), "trade_id": f.Trade})
	}
	res := map[string]any{"order_id": acc.OrderID, "status": "accepted", "fills": fills}
	if t.remains != nil {
		fmt.Fprintf(&sb, "\n  canceled the rest: %s (%s)", sc.FormatQty(t.remains.Qty), t.remains.Reason)
		res["canceled_qty"] = sc.FormatQty(t.remains.Qty)
	}
	others := []map[string]any{}
	for i := range t.others {
		others = otherEvent(&sb, sc, &t.others[i], others)
	}
	if len(others) > 0 {
		res["other_orders"] = others
	}
	t.print(sb.String(), res)
	return nil
}

// otherEvent says what a command did to one of the account's other
// orders (canceled by self-trade prevention, a stop triggered, a fill of
// it) in words on sb and as a JSON value appended to js; other messages
// are not such events.
func otherEvent(sb *strings.Builder, sc units.Scale, m *client.Message, js []map[string]any) []map[string]any {
	switch m.Type {
	case wire.TypeCanceled:
		c := m.Canceled
		fmt.Fprintf(sb, "\n  canceled your order %d: %s (%s)", c.OrderID, sc.FormatQty(c.Qty), c.Reason)
		return append(js, map[string]any{"order_id": c.OrderID, "event": "canceled", "qty": sc.FormatQty(c.Qty), "reason": c.Reason.String()})
	case wire.TypeExecuted:
		f := m.Executed
		fmt.Fprintf(sb, "\n  your order %d filled %s @ %s (trade %d)", f.OrderID, sc.FormatQty(f.Qty), sc.FormatPrice(f.Price), f.Trade)
		return append(js, map[string]any{"order_id": f.OrderID, "event": "filled", "qty": sc.FormatQty(f.Qty),
			"price": sc.FormatPrice(f.Price), "trade_id": f.Trade})
	case wire.TypeTriggered:
		fmt.Fprintf(sb, "\n  your stop order %d triggered", m.Triggered.OrderID)
		return append(js, map[string]any{"order_id": m.Triggered.OrderID, "event": "triggered"})
	}
	return js
}

// explain adds what the server knows to a reject that needs it.
func (t *trader) explain(ctx context.Context, err error) error {
	var re *client.RejectError
	if !errors.As(err, &re) || re.Reason != engine.RejectOutsidePriceBand || t.inst == 0 {
		return err
	}
	st, qerr := t.c.InstrumentStatus(ctx, t.inst)
	if qerr != nil || !st.Found || st.BandLow == 0 {
		return err
	}
	sc, serr := t.scaleOf(ctx, t.inst)
	if serr != nil {
		return err
	}
	return fmt.Errorf("%w: the price band is now %s to %s (around the reference price %s)", err,
		sc.FormatPrice(st.BandLow), sc.FormatPrice(st.BandHigh), sc.FormatPrice(st.RefPrice))
}

func (t *trader) replace(ctx context.Context, args []string) error {
	if len(args) != 1 || (t.o.qty == "" && t.o.price == "") {
		return usageError("replace takes ORDER_ID and --qty and/or --price")
	}
	o, err := t.openOrder(ctx, args[0])
	if err != nil {
		return err
	}
	id := o.ID
	sc, err := t.scaleOf(ctx, o.Instrument)
	if err != nil {
		return err
	}
	m := wire.Replace{OrderID: id}
	if t.o.qty != "" {
		if m.Qty, err = sc.ParseQty(t.o.qty); err != nil {
			return err
		}
	}
	if t.o.price != "" {
		if m.Price, err = sc.ParsePrice(t.o.price); err != nil {
			return err
		}
	}
	t.mu.Lock()
	t.collect, t.ended, t.endCh = map[engine.Seq][]client.Message{}, map[engine.Seq]bool{}, make(chan struct{}, 1)
	t.mu.Unlock()
	res, err := t.c.Replace(ctx, m)
	if err != nil {
		return err
	}
	// A new price may trade at once: wait for the command's last message
	// and say everything it did.
	rep, _ := res.Report()
	for {
		t.mu.Lock()
		done := t.ended[rep.Seq]
		t.mu.Unlock()
		if done {
			break
		}
		select {
		case <-t.endCh:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the rest of the replace's answers: %w", ctx.Err())
		}
	}
	t.mu.Lock()
	msgs := t.collect[rep.Seq]
	t.mu.Unlock()
	var sb strings.Builder
	res2 := map[string]any{"order_id": id}
	if res.Type == wire.TypeCanceled {
		sb.WriteString(fmt.Sprintf("order %d canceled: the new total is not above what has filled", id))
		res2["status"] = "canceled"
	} else {
		r := res.Replaced
		fmt.Fprintf(&sb, "replaced order %d: %s @ %s, %s open", id, sc.FormatQty(r.Qty), sc.FormatPrice(r.Price), sc.FormatQty(r.Leaves))
		res2["status"], res2["price"], res2["qty"], res2["leaves"] = "replaced", sc.FormatPrice(r.Price), sc.FormatQty(r.Qty), sc.FormatQty(r.Leaves)
	}
	fills, others := []map[string]any{}, []map[string]any{}
	for _, m := range msgs {
		switch m.Type {
		case wire.TypeExecuted:
			if f := m.Executed; f.OrderID == id {
				fmt.Fprintf(&sb, "\n  filled %s @ %s (trade %d), %s open", sc.FormatQty(f.Qty), sc.FormatPrice(f.Price), f.Trade, sc.FormatQty(f.Leaves))
				fills = append(fills, map[string]any{"price": sc.FormatPrice(f.Price), "qty": sc.FormatQty(f.Qty), "trade_id": f.Trade})
				res2["leaves"] = sc.FormatQty(f.Leaves)
				continue
			}
		case wire.TypeCanceled:
			if m.Canceled.OrderID == id && res.Type == wire.TypeCanceled {
				continue // the answer itself
			}
		}
		others = otherEvent(&sb, sc, &m, others)
	}
	res2["fills"] = fills
	if len(others) > 0 {
		res2["other_orders"] = others
	}
	t.print(sb.String(), res2)
	return nil
}

// openOrder returns the session account's open order whose id is arg.
func (t *trader) openOrder(ctx context.Context, arg string) (engine.OrderInfo, error) {
	id, err := parseID(arg)
	if err != nil {
		return engine.OrderInfo{}, err
	}
	o, ok, err := t.c.Order(ctx, id)
	if err != nil {
		return engine.OrderInfo{}, err
	}
	if !ok {
		return engine.OrderInfo{}, fmt.Errorf("order %d is not open (filled, canceled, or not yours)", id)
	}
	return o, nil
}

func (t *trader) scaleOf(ctx context.Context, id engine.InstrumentID) (units.Scale, error) {
	dir, err := t.c.Instruments(ctx)
	if err != nil {
		return units.Scale{}, err
	}
	for _, in := range dir {
		if in.ID == id {
			return units.NewScale(in.TickSize, in.LotSize)
		}
	}
	return units.Scale{}, fmt.Errorf("instrument %d is not in the directory", id)
}

// formatOrders says the open orders in words and as JSON values.
func (t *trader) formatOrders(ctx context.Context, list []engine.OrderInfo) (string, []map[string]any, error) {
	dir, err := t.c.Instruments(ctx)
	if err != nil {
		return "", nil, err
	}
	sym := map[engine.InstrumentID]wire.InstrumentInfo{}
	for _, in := range dir {
		sym[in.ID] = in
	}
	var sb strings.Builder
	out := []map[string]any{}
	if len(list) == 0 {
		sb.WriteString("no open orders")
	}
	for i, o := range list {
		in := sym[o.Instrument]
		sc, err := units.NewScale(in.TickSize, in.LotSize)
		if err != nil {
			return "", nil, err
		}
		if i > 0 {
			sb.WriteByte('\n')
		}
		fmt.Fprintf(&sb, "order %d: %s %s %s @ %s, %s open, %s filled (%s)", o.ID, o.Side, in.Symbol,
			sc.FormatQty(o.Leaves+o.Filled), sc.FormatPrice(o.Price), sc.FormatQty(o.Leaves), sc.FormatQty(o.Filled), o.TIF)
		out = append(out, map[string]any{"order_id": o.ID, "symbol": in.Symbol, "side": o.Side.String(),
			"price": sc.FormatPrice(o.Price), "open": sc.FormatQty(o.Leaves), "filled": sc.FormatQty(o.Filled),
			"tif": o.TIF.String(), "ref": o.Ref})
	}
	return sb.String(), out, nil
}

// symbolOf names an instrument ("#ID" if the directory does not have it).
func (t *trader) symbolOf(ctx context.Context, id engine.InstrumentID) string {
	if dir, err := t.c.Instruments(ctx); err == nil {
		for _, in := range dir {
			if in.ID == id {
				return in.Symbol
			}
		}
	}
	return fmt.Sprintf("#%d", id)
}

var stateNames = map[uint8]string{wire.OrderOpen: "open", wire.OrderFilled: "filled", wire.OrderCanceled: "canceled"}

// printStatus prints what became of one of the account's orders, open
// or finished, from the server's order history.
func (t *trader) printStatus(ctx context.Context, arg string) error {
	id, err := parseID(arg)
	if err != nil {
		return err
	}
	st, err := t.c.OrderStatus(ctx, id)
	if err != nil {
		return err
	}
	if !st.Found {
		return fmt.Errorf("order %d is not yours, or older than the server's order history (--order-history)", id)
	}
	sc, err := t.scaleOf(ctx, st.Instrument)
	if err != nil {
		return err
	}
	sym := t.symbolOf(ctx, st.Instrument)
	state := stateNames[st.State]
	when := time.Unix(0, st.Time).UTC().Format("2006-01-02 15:04:05.000")
	t.print(fmt.Sprintf("order %d: %s %s %s @ %s: %s, %s filled, %s open (last change seq %d at %s UTC, session %s)",
		st.OrderID, st.Side, sym, sc.FormatQty(st.Qty), sc.FormatPrice(st.Price), state, sc.FormatQty(st.Filled),
		sc.FormatQty(st.Leaves), st.Seq, when, st.Session),
		map[string]any{"order_id": st.OrderID, "symbol": sym, "side": st.Side.String(), "state": state,
			"price": sc.FormatPrice(st.Price), "qty": sc.FormatQty(st.Qty), "filled": sc.FormatQty(st.Filled),
			"open": sc.FormatQty(st.Leaves), "seq": st.Seq, "time": time.Unix(0, st.Time).UTC().Format(time.RFC3339Nano),
			"session": st.Session.String(), "ref": st.Ref})
	return nil
}

// formatFills says the account's latest fills (of finished orders too),
// oldest first, in words and as JSON values.
func (t *trader) formatFills(ctx context.Context) (string, []map[string]any, error) {
	fills, err := t.c.Executions(ctx, 20)
	if err != nil {
		return "", nil, err
	}
	var sb strings.Builder
	out := []map[string]any{}
	if len(fills) > 0 {
		sb.WriteString("latest fills:")
	}
	for _, f := range fills {
		sc, err := t.scaleOf(ctx, f.Instrument)
		if err != nil {
			return "", nil, err
		}
		sym := t.symbolOf(ctx, f.Instrument)
		liq := "took"
		if f.Liquidity == wire.LiquidityAdded {
			liq = "made"
		}
		fmt.Fprintf(&sb, "\n  %s order %d: %s %s %s @ %s (trade %d, %s liquidity)",
			time.Unix(0, f.Time).UTC().Format("15:04:05.000"), f.OrderID, f.Side, sym, sc.FormatQty(f.Qty), sc.FormatPrice(f.Price), f.Trade, liq)
		out = append(out, map[string]any{"order_id": f.OrderID, "symbol": sym, "side": f.Side.String(), "qty": sc.FormatQty(f.Qty),
			"price": sc.FormatPrice(f.Price), "trade_id": f.Trade, "liquidity": liq, "time": time.Unix(0, f.Time).UTC().Format(time.RFC3339Nano)})
	}
	return sb.String(), out, nil
}
