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
  depth SYMBOL [--levels N]
  orders
  status ORDER_ID
  watch SYMBOL [--for DURATION]            (live top of book and trades; Ctrl-C stops)
Connection: --addr (MATCH_ADDR, default 127.0.0.1:7001), --account (MATCH_ACCOUNT,
a number), --token (MATCH_TOKEN), --session (MATCH_SESSION, default matchctl;
if another matchctl uses it, matchctl2 ... matchctl9). Prices and quantities
are decimals.
Exit status: 0 done, 1 rejected or failed, 2 bad usage.
`

// valueFlags take a value; the rest are booleans.
var valueFlags = map[string]bool{"addr": true, "account": true, "token": true, "session": true, "tif": true,
	"levels": true, "qty": true, "price": true, "for": true, "stop": true, "display": true, "expire": true}

// splitArgs moves flags before the positional arguments, so that flags may
// come anywhere on the line.
func splitArgs(args []string) (flags, pos []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && len(a) > 1 {
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
	fs.Usage = func() { fmt.Fprint(stderr, tradeUsage) }
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
	fs.BoolVar(&o.json, "json", false, "print JSON")
	if err := fs.Parse(flagArgs); err != nil || len(pos) == 0 {
		if len(pos) == 0 {
			fmt.Fprint(stderr, tradeUsage)
		}
		return 2
	}
	if o.account == 0 || o.token == "" {
		fmt.Fprintln(stderr, "matchctl: --account and --token (or MATCH_ACCOUNT and MATCH_TOKEN) are required")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t := &trader{o: o, out: stdout}
	c, err := dialSession(ctx, client.Config{Addr: o.addr, Account: engine.AccountID(o.account), Token: o.token,
		OnMessage: t.onMessage}, o.session)
	if err != nil {
		fmt.Fprintln(stderr, "matchctl:", err)
		return 1
	}
	defer c.Close()
	t.c = c
	if err := t.run(ctx, pos); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "matchctl:", err)
			fmt.Fprint(stderr, tradeUsage)
			return 2
		}
		fmt.Fprintln(stderr, "matchctl:", err)
		return 1
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
	settled chan struct{}

	watching *watchState
}

func (t *trader) onMessage(m *client.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch m.Type {
	case wire.TypeAccepted:
		// Seen here, in order, before the executions that follow it.
		if m.Accepted.Ref == t.ref && t.ref != 0 {
			t.watch, t.seq = m.Accepted.OrderID, m.Accepted.Seq
		}
	case wire.TypeExecuted:
		if m.Executed.OrderID == t.watch && t.watch != 0 && m.Executed.Seq == t.seq {
			t.fills = append(t.fills, m.Executed)
		}
	case wire.TypeTrade:
		if t.watching != nil {
			t.watching.onTrade(m.Trade)
		}
	case wire.TypeCanceled:
		if m.Canceled.OrderID == t.watch && t.watch != 0 && m.Canceled.Seq == t.seq {
			cp := m.Canceled
			t.remains = &cp
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
		c, err := t.c.Cancel(ctx, id)
		if err != nil {
			return err
		}
		t.print(fmt.Sprintf("canceled order %d (%d lots were open)", c.OrderID, c.Qty),
			map[string]any{"order_id": c.OrderID, "status": "canceled", "canceled_lots": c.Qty})
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
		} else {
			if err := need(1); err != nil {
				return err
			}
			o, err := t.openOrder(ctx, args[0])
			if err != nil {
				return err
			}
			list = []engine.OrderInfo{o}
		}
		return t.printOrders(ctx, list)
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
	t.print(sb.String(), res)
	return nil
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
	res, err := t.c.Replace(ctx, m)
	if err != nil {
		return err
	}
	if res.Type == wire.TypeCanceled {
		t.print(fmt.Sprintf("order %d canceled: the new total is not above what has filled", id),
			map[string]any{"order_id": id, "status": "canceled"})
		return nil
	}
	r := res.Replaced
	t.print(fmt.Sprintf("replaced order %d: %s @ %s, %s open", id, sc.FormatQty(r.Qty), sc.FormatPrice(r.Price), sc.FormatQty(r.Leaves)),
		map[string]any{"order_id": id, "status": "replaced", "price": sc.FormatPrice(r.Price),
			"qty": sc.FormatQty(r.Qty), "leaves": sc.FormatQty(r.Leaves)})
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

func (t *trader) printOrders(ctx context.Context, list []engine.OrderInfo) error {
	dir, err := t.c.Instruments(ctx)
	if err != nil {
		return err
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
			return err
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
	t.print(sb.String(), out)
	return nil
}
