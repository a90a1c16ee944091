package engine

import "slices"

// This file holds trading phases: operator phase changes, call auctions
// and their uncrossing, volatility interruptions and the daily schedule.

// setPhase moves b to phase p and publishes it: EvPhase is a market data
// message, and the answer of session to when to >= 0. price is the price
// that started a volatility interruption.
func (e *Engine) setPhase(b *book, p Phase, price Price, to int32) {
	e.touch(b)
	if b.auction() {
		e.auctions--
	}
	b.phase = p
	if b.auction() {
		e.auctions++
	}
	b.phaseEnd = 0
	if !b.auction() {
		b.indPrice, b.indQty, b.indSur, b.indSide = 0, 0, 0, 0
	}
	b.feedSeq++
	ev := e.event(EvPhase)
	ev.Reason, ev.Instrument, ev.Price, ev.FeedSeq = uint8(p), b.inst.ID, price, b.feedSeq
	if to >= 0 {
		ev.Account = e.accts[e.sess[to].acct].id
		ev.Session, ev.SessSeq = e.to(to)
	}
}

// phaseCommand applies an operator's CmdPhase.
func (e *Engine) phaseCommand(c *Command) {
	a := e.ca
	if !e.operators[a.id] {
		e.reject(c, RejectNotOperator)
		return
	}
	b := e.book(c.Instrument)
	if b == nil {
		e.reject(c, RejectUnknownInstrument)
		return
	}
	ok := false
	switch c.Action {
	case ActHalt:
		ok = b.phase == PhaseContinuous || b.auction()
	case ActResume:
		ok = b.phase == PhaseHalted
	case ActOpenAuction:
		ok = b.phase == PhaseContinuous || b.phase == PhaseHalted || b.phase == PhaseClosed
	case ActUncross:
		ok = b.auction()
	case ActClose:
		ok = b.phase != PhaseClosed
	}
	if !ok {
		e.reject(c, RejectBadPhaseAction)
		return
	}
	switch c.Action {
	case ActHalt:
		e.setPhase(b, PhaseHalted, 0, e.cs)
	case ActResume, ActUncross:
		e.uncross(b, e.cs)
	case ActOpenAuction:
		e.setPhase(b, PhaseAuction, 0, e.cs)
	case ActClose:
		e.setPhase(b, PhaseClosed, 0, e.cs)
		e.expireDay(b)
	}
}

// uncross ends a call auction (or a halt): it trades the crossed part of
// the book at the indicative price, then trading is continuous and the
// stops the auction's price reached trigger. The answer goes to session to
// if to >= 0.
//
// Uncrossing at the price that maximises volume leaves the book uncrossed.
// Only self-trade prevention (which cancels the later of two orders of one
// account that meet) can leave it crossed; the engine then uncrosses again
// at the new indicative price, so in that case alone an auction prints at
// more than one price.
func (e *Engine) uncross(b *book, to int32) {
	e.touch(b)
	for {
		p, vol, _, _ := e.indicative(b)
		if vol == 0 {
			break
		}
		e.cross(b, p)
	}
	e.setPhase(b, PhaseContinuous, 0, to)
	e.triggerStops(b)
}

// later reports whether a arrived after b (by queue time, then ID).
func later(a, b *order) bool {
	if a.time != b.time {
		return a.time > b.time
	}
	return a.id > b.id
}

// cross trades, at price p and in price-time priority, the best bid
// against the best ask until no bid at or above p or no ask at or below it
// is left.
func (e *Engine) cross(b *book, p Price) {
	for {
		bl, al := b.bids.best, b.asks.best
		if bl == nil || al == nil || bl.price < p || al.price > p {
			return
		}
		e.touchLevel(b, Buy, bl)
		e.touchLevel(b, Sell, al)
		bo, ao := bl.head, al.head
		t, m := ao, bo // the taker fields hold the later arrival
		if later(bo, ao) {
			t, m = bo, ao
		}
		if bo.acct == ao.acct {
			e.cancelResting(t, CancelSelfTrade, t.sess)
			continue
		}
		q := min(bo.qty, ao.qty)
		bo.qty -= q
		bo.filled += q
		bl.qty -= q
		ao.qty -= q
		ao.filled += q
		al.qty -= q
		b.refPrice = p
		e.nextTrade++
		b.feedSeq++
		ev := e.event(EvFill)
		ev.Reason, ev.Side, ev.Instrument, ev.TradeID, ev.FeedSeq = FillAuction, t.side, b.inst.ID, e.nextTrade, b.feedSeq
		ev.Account, ev.OrderID, ev.Ref, ev.Price, ev.Qty, ev.Leaves = e.accts[t.acct].id, t.id, t.ref, p, q, e.leaves(t)
		ev.MakerAccount, ev.MakerOrder, ev.MakerRef, ev.MakerLeaves = e.accts[m.acct].id, m.id, m.ref, e.leaves(m)
		ev.Session, ev.SessSeq = e.to(t.sess)
		ev.MakerSession, ev.MakerSessSeq = e.to(m.sess)
		e.drained(bo)
		e.drained(ao)
	}
}

// priceVol is one price level's whole quantity, hidden included.
type priceVol struct {
	price Price
	qty   Qty
}

// indicative returns the price at which b's book would uncross now, the
// volume that would trade there, and the surplus left on side (0 when
// none). The price is chosen, among the crossed levels' prices and the
// reference price (when it lies between the best ask and the best bid), by
// these rules in turn:
//
//  1. the largest executable volume;
//  2. the smallest surplus (the quantity at the price that cannot trade);
//  3. the price closest to the reference price (the last trade, or the
//     start price);
//  4. the lower price.
//
// Hidden iceberg quantity counts. A book that is not crossed has no
// indicative price (all zero).
func (e *Engine) indicative(b *book) (Price, Qty, Qty, Side) {
	bb, ba := b.bids.best, b.asks.best
	if bb == nil || ba == nil || bb.price < ba.price {
		return 0, 0, 0, 0
	}
	lo, hi := ba.price, bb.price
	bids, asks, cands := e.indBids[:0], e.indAsks[:0], e.indCands[:0]
	b.bids.scan(func(l *level) bool { // best (highest) first
		if l.price < lo {
			return false
		}
		bids = append(bids, priceVol{l.price, l.qty + l.hidden})
		cands = append(cands, l.price)
		return true
	})
	b.asks.scan(func(l *level) bool { // best (lowest) first
		if l.price > hi {
			return false
		}
		asks = append(asks, priceVol{l.price, l.qty + l.hidden})
		cands = append(cands, l.price)
		return true
	})
	ref := b.refPrice
	if ref >= lo && ref <= hi {
		cands = append(cands, ref)
	}
	slices.Sort(cands)
	cands = slices.Compact(cands)
	var buyAll Qty
	for _, v := range bids {
		buyAll += v.qty
	}
	// Walk the candidates upwards: buyVol(p) (bids at or above p) falls,
	// sellVol(p) (asks at or below p) rises.
	var bestP Price
	var bestVol, bestSur Qty
	var bestSide Side
	buyVol, sellVol := buyAll, Qty(0)
	bi, ai := len(bids)-1, 0 // bids[bi] is the lowest bid not yet below p
	for _, p := range cands {
		for bi >= 0 && bids[bi].price < p {
			buyVol -= bids[bi].qty
			bi--
		}
		for ai < len(asks) && asks[ai].price <= p {
			sellVol += asks[ai].qty
			ai++
		}
		vol, sur, side := min(buyVol, sellVol), buyVol-sellVol, Buy
		if sur < 0 {
			sur, side = -sur, Sell
		} else if sur == 0 {
			side = 0
		}
		better := vol > bestVol ||
			vol == bestVol && (sur < bestSur || sur == bestSur && distance(p, ref) < distance(bestP, ref))
		if bestP == 0 || better {
			bestP, bestVol, bestSur, bestSide = p, vol, sur, side
		}
	}
	e.indBids, e.indAsks, e.indCands = bids, asks, cands
	if bestVol == 0 {
		return 0, 0, 0, 0
	}
	return bestP, bestVol, bestSur, bestSide
}

func distance(a, b Price) Price {
	if a > b {
		return a - b
	}
	return b - a
}

// publishIndicative emits EvIndicative for an auction book whose
// indicative price, volume or surplus changed.
func (e *Engine) publishIndicative(b *book) {
	p, q, s, side := e.indicative(b)
	if p == b.indPrice && q == b.indQty && s == b.indSur && side == b.indSide {
		return
	}
	b.indPrice, b.indQty, b.indSur, b.indSide = p, q, s, side
	b.feedSeq++
	ev := e.event(EvIndicative)
	ev.Instrument, ev.Side, ev.Price, ev.Qty, ev.Leaves, ev.FeedSeq = b.inst.ID, side, p, q, s, b.feedSeq
}

// inVolBand reports whether a trade at p stays inside b's volatility band
// around the price the incoming order began matching at.
func (b *book) inVolBand(p Price) bool { return b.inVolBandOf(b.viRef, p) }

// interrupt starts a volatility interruption: a trade at p would have
// printed outside the band.
func (e *Engine) interrupt(b *book, p Price) {
	e.setPhase(b, PhaseVolatility, p, -1)
	b.phaseEnd = e.now + b.inst.VolatilityAuction
	e.wake = min(e.wake, b.phaseEnd)
}

// boundary is one transition of a daily schedule.
type boundary struct {
	at    int64 // nanoseconds after midnight
	phase Phase
}

// boundaries returns in's schedule in time-of-day order.
func (in *Instrument) boundaries() []boundary {
	var out []boundary
	for _, x := range []boundary{{in.AuctionAt, PhaseAuction}, {in.OpenAt, PhaseContinuous}, {in.CloseAt, PhaseClosed}} {
		if x.at != 0 {
			out = append(out, x)
		}
	}
	slices.SortStableFunc(out, func(a, b boundary) int { return int(a.at - b.at) })
	return out
}

// timeOfDay returns t's nanoseconds after midnight UTC.
func timeOfDay(t int64) int64 { return ((t % dayNanos) + dayNanos) % dayNanos }

// phaseAt returns the phase in's schedule sets for time t: that of the
// last transition at or before t's time of day (yesterday's last when t
// is before today's first).
func (in *Instrument) phaseAt(t int64) Phase {
	bs := in.boundaries()
	tod := timeOfDay(t)
	p := bs[len(bs)-1].phase
	for _, x := range bs {
		if x.at <= tod {
			p = x.phase
		}
	}
	return p
}

// nextBoundary returns the time of the first transition of in's schedule
// after t.
func (in *Instrument) nextBoundary(t int64) int64 {
	bs := in.boundaries()
	tod := timeOfDay(t)
	for _, x := range bs {
		if x.at > tod {
			return t - tod + x.at
		}
	}
	return t - tod + dayNanos + bs[0].at
}

// schedule applies b's daily schedule at the engine's time: b moves to the
// phase the schedule sets now. A halted instrument stays halted through
// its auction and opening (an operator resumes it) but closes on time.
func (e *Engine) schedule(b *book) {
	in := &b.inst
	target := in.phaseAt(e.now)
	b.nextSched = in.nextBoundary(e.now)
	switch {
	case target == b.phase:
	case b.phase == PhaseHalted && target != PhaseClosed:
	case target == PhaseClosed:
		e.setPhase(b, PhaseClosed, 0, -1)
		e.expireDay(b)
	case target == PhaseAuction:
		e.setPhase(b, PhaseAuction, 0, -1)
	default:
		e.uncross(b, -1)
	}
}
