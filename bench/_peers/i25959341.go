package main

import (
	"fmt"
	"strconv"

	"github.com/i25959341/orderbook"
	"github.com/shopspring/decimal"

	"github.com/matchd/matchd/engine"
)

// i25959341Cmd is one command in github.com/i25959341/orderbook's terms:
// order IDs are strings and amounts decimals, all made before the clock
// starts.
type i25959341Cmd struct {
	cancel bool
	id     string
	side   orderbook.Side
	qty    decimal.Decimal
	price  decimal.Decimal
}

func init() { runners["i25959341"] = prepareI25959341 }

// prepareI25959341 translates a workload into the book's calls. It has
// resting limit orders, market orders and cancels, but no IOC limit
// order, so it runs workloads B and C (whose every IOC order fills
// whole, as for fmstephe), not A.
func prepareI25959341(_ engine.Config, cmds []engine.Command) (func() check, error) {
	is := make([]i25959341Cmd, len(cmds))
	id := 0
	for i, c := range cmds {
		switch {
		case c.Kind == engine.CmdNewOrder && c.Type == engine.Limit && (c.TIF == engine.GTC || c.TIF == engine.IOC):
			id++
			x := i25959341Cmd{id: strconv.Itoa(id), side: orderbook.Sell, qty: decimal.NewFromInt(int64(c.Qty)),
				price: decimal.NewFromInt(int64(c.Price))}
			if c.Side == engine.Buy {
				x.side = orderbook.Buy
			}
			is[i] = x
		case c.Kind == engine.CmdCancel:
			is[i] = i25959341Cmd{cancel: true, id: strconv.FormatUint(uint64(c.OrderID), 10)}
		default:
			return nil, fmt.Errorf("i25959341 has no equivalent for command %d (kind %d, type %d, tif %d)", i, c.Kind, c.Type, c.TIF)
		}
	}
	ob := orderbook.NewOrderBook()
	return func() check {
		var c check
		traded := decimal.Zero
		for i := range is {
			x := &is[i]
			if x.cancel {
				ob.CancelOrder(x.id)
				continue
			}
			done, partial, partialQty, err := ob.ProcessLimitOrder(x.side, x.id, x.qty, x.price)
			if err != nil {
				panic(err)
			}
			makers := len(done)
			switch {
			case makers > 0 && done[makers-1].ID() == x.id: // filled whole: done ends with the order itself
				makers--
				traded = traded.Add(x.qty)
				if partialQty.Sign() > 0 && partial != nil && partial.ID() != x.id {
					makers++ // and a resting order partly filled
				}
			case partial != nil && partial.ID() == x.id: // partly filled, the rest resting
				traded = traded.Add(partialQty)
			}
			c.Trades += uint64(makers)
		}
		c.Traded = uint64(traded.IntPart())
		return c
	}, nil
}
