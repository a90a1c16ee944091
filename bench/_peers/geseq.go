package main

import (
	"fmt"

	"github.com/geseq/orderbook"
	decimal "github.com/geseq/udecimal"

	"github.com/matchd/matchd/engine"
)

// geseqCmd is one command in github.com/geseq/orderbook's terms.
type geseqCmd struct {
	cancel bool
	id     uint64
	class  orderbook.ClassType
	side   orderbook.SideType
	flag   orderbook.FlagType
	qty    decimal.Decimal
	price  decimal.Decimal
}

// geseqNotes counts the trades the book reports.
type geseqNotes struct {
	trades uint64
	traded decimal.Decimal
}

func (n *geseqNotes) PutOrder(orderbook.MsgType, orderbook.OrderStatus, uint64, decimal.Decimal, error) {
}

func (n *geseqNotes) PutTrade(_, _ uint64, _, _ orderbook.OrderStatus, qty, _ decimal.Decimal) {
	n.trades++
	n.traded = n.traded.Add(qty)
}

func prepareGeseq(_ engine.Config, cmds []engine.Command) (func() check, error) {
	gs := make([]geseqCmd, len(cmds))
	id := uint64(0)
	for i, c := range cmds {
		switch c.Kind {
		case engine.CmdNewOrder:
			id++
			g := geseqCmd{id: id, class: orderbook.Limit, side: orderbook.Sell, qty: decimal.New(uint64(c.Qty), 0),
				price: decimal.New(uint64(c.Price), 0)}
			if c.Side == engine.Buy {
				g.side = orderbook.Buy
			}
			if c.Type == engine.Market {
				g.class, g.price = orderbook.Market, decimal.Zero
			}
			if c.TIF == engine.IOC {
				g.flag = orderbook.IoC
			}
			gs[i] = g
		case engine.CmdCancel:
			gs[i] = geseqCmd{cancel: true, id: uint64(c.OrderID)}
		default:
			return nil, fmt.Errorf("geseq has no equivalent for command %d (kind %d)", i, c.Kind)
		}
	}
	n := &geseqNotes{}
	ob := orderbook.NewOrderBook(n)
	return func() check {
		for i := range gs {
			g := &gs[i]
			if g.cancel {
				ob.CancelOrder(uint64(i+1), g.id)
			} else {
				ob.AddOrder(uint64(i+1), g.id, g.class, g.side, g.qty, g.price, decimal.Zero, g.flag)
			}
		}
		return check{Trades: n.trades, Traded: n.traded.Int()}
	}, nil
}
