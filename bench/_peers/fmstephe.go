package main

import (
	"fmt"

	"github.com/fmstephe/matching_engine/matcher"
	"github.com/fmstephe/matching_engine/msg"

	"github.com/matchd/matchd/engine"
)

// fmstepheOut counts the trades github.com/fmstephe/matching_engine's
// matcher reports: each trade is two messages, one per side.
type fmstepheOut struct {
	fills, filled uint64
}

func (w *fmstepheOut) Write(m msg.Message) {
	if m.Kind == msg.PARTIAL || m.Kind == msg.FULL {
		w.fills++
		w.filled += m.Amount
	}
}

// prepareFmstephe translates a workload into the matcher's messages. It
// has only resting limit orders and cancels (no IOC, no market buys), so
// it runs workloads B and C, whose every IOC order fills whole (C's
// sweeps take exactly the levels they price), and not A.
func prepareFmstephe(cfg engine.Config, cmds []engine.Command) (func() check, error) {
	ms := make([]msg.Message, len(cmds))
	prices := map[engine.OrderID]uint64{}
	id := engine.OrderID(0)
	for i, c := range cmds {
		switch {
		case c.Kind == engine.CmdNewOrder && c.Type == engine.Limit && (c.TIF == engine.GTC || c.TIF == engine.IOC):
			id++
			m := msg.Message{Kind: msg.SELL, Price: uint64(c.Price), Amount: uint64(c.Qty), StockId: 1, TraderId: 1, TradeId: uint32(id)}
			if c.Side == engine.Buy {
				m.Kind = msg.BUY
			}
			ms[i] = m
			prices[id] = uint64(c.Price)
		case c.Kind == engine.CmdCancel:
			ms[i] = msg.Message{Kind: msg.CANCEL, Price: prices[c.OrderID], Amount: 1, StockId: 1, TraderId: 1, TradeId: uint32(c.OrderID)}
		default:
			return nil, fmt.Errorf("fmstephe has no equivalent for command %d (kind %d, type %d, tif %d)", i, c.Kind, c.Type, c.TIF)
		}
	}
	out := &fmstepheOut{}
	m := matcher.NewMatcher(cfg.ReserveOrders + 1024)
	m.Config("peers", nil, out)
	return func() check {
		for i := range ms {
			m.Submit(&ms[i])
		}
		return check{Trades: out.fills / 2, Traded: out.filled / 2}
	}, nil
}
