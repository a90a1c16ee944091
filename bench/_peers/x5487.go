package main

import (
	"fmt"
	"strconv"

	match "github.com/0x5487/matching-engine"
	"github.com/0x5487/matching-engine/protocol"
	"github.com/quagmt/udecimal"

	"github.com/matchd/matchd/engine"
)

// x5487Cmd is one command in github.com/0x5487/matching-engine's terms
// (string IDs, decimal amounts), made before the clock starts.
type x5487Cmd struct {
	cancel bool
	id     string
	user   uint64
	side   match.Side
	typ    match.OrderType
	qty    udecimal.Decimal
	price  udecimal.Decimal
}

// x5487Out counts the trades the book logs.
type x5487Out struct {
	trades uint64
	traded udecimal.Decimal
}

func (o *x5487Out) Publish(logs []*match.OrderBookLog) {
	for _, l := range logs {
		if l.Type == protocol.LogTypeMatch {
			o.trades++
			o.traded = o.traded.Add(l.Size)
		}
	}
}

func init() { runners["x5487"] = prepareX5487 }

// prepareX5487 translates a workload into calls on one of the package's
// order books, driven directly through a shim the harness adds to the
// package (bench/_peers/x5487/peers_shim.go): its public API is an engine
// that takes marshalled commands through a ring to its own goroutine.
func prepareX5487(_ engine.Config, cmds []engine.Command) (func() check, error) {
	xs := make([]x5487Cmd, len(cmds))
	id := 0
	for i, c := range cmds {
		switch {
		case c.Kind == engine.CmdNewOrder && (c.Type == engine.Limit || c.Type == engine.Market):
			id++
			x := x5487Cmd{id: strconv.Itoa(id), user: uint64(c.Account), side: match.Sell, typ: match.Limit,
				qty: udecimal.MustFromInt64(int64(c.Qty), 0), price: udecimal.MustFromInt64(int64(c.Price), 0)}
			if c.Side == engine.Buy {
				x.side = match.Buy
			}
			switch {
			case c.Type == engine.Market:
				x.typ, x.price = match.Market, udecimal.Zero
			case c.TIF == engine.IOC:
				x.typ = match.IOC
			case c.TIF != engine.GTC:
				return nil, fmt.Errorf("x5487: no equivalent for TIF %d", c.TIF)
			}
			xs[i] = x
		case c.Kind == engine.CmdCancel:
			xs[i] = x5487Cmd{cancel: true, id: strconv.FormatUint(uint64(c.OrderID), 10), user: uint64(c.Account)}
		default:
			return nil, fmt.Errorf("x5487 has no equivalent for command %d (kind %d, type %d)", i, c.Kind, c.Type)
		}
	}
	out := &x5487Out{}
	b := match.NewPeerBook(out)
	return func() check {
		for i := range xs {
			x := &xs[i]
			if x.cancel {
				b.Cancel(x.id, x.user)
			} else {
				b.Place(x.id, x.side, x.typ, x.price, x.qty, x.user)
			}
		}
		traded, _ := out.traded.Int64()
		return check{Trades: out.trades, Traded: uint64(traded)}
	}, nil
}
