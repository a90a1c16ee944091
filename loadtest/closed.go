package loadtest

import (
	"context"
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/matchd/matchd/api/wire"
	"github.com/matchd/matchd/engine"
)

// ClosedLoop measures one command in flight, on raw protocol frames (no
// client library): n times, a resting limit order far from the market and
// then its cancel, each sent only once the previous answer has arrived. It
// returns the histograms of order → Accepted and cancel → Canceled, in
// nanoseconds. price must be inside the instrument's band and not cross.
func ClosedLoop(ctx context.Context, addr string, a Account, inst engine.InstrumentID, price engine.Price, n int) (accept, cancel *hdrhistogram.Histogram, err error) {
	s, err := dialSession(ctx, addr, a, "closed")
	if err != nil {
		return nil, nil, err
	}
	defer s.conn.Close()
	defer precise()()
	rd := wire.NewReader(s.conn, wire.MaxFrame, 64<<10)
	accept, cancel = newHist(), newHist()
	var buf []byte
	// await reads until a frame of type want (skipping heartbeats).
	await := func(want byte) ([]byte, error) {
		for {
			typ, body, err := rd.Next()
			if err != nil {
				return nil, err
			}
			switch typ {
			case want:
				return body, nil
			case wire.TypeHeartbeat:
			default:
				return nil, fmt.Errorf("loadtest: closed loop: got %q waiting for %q", typ, want)
			}
		}
	}
	s.conn.SetDeadline(time.Now().Add(10 * time.Minute))
	for i := -n / 10; i < n; i++ { // the first tenth warms up
		s.ref++
		buf = (&wire.NewOrder{Ref: s.ref, Instrument: inst, Side: engine.Buy, Type: engine.Limit, TIF: engine.GTC,
			Price: price, Qty: 1}).Append(buf[:0])
		t0 := time.Now()
		if _, err := s.conn.Write(buf); err != nil {
			return nil, nil, err
		}
		body, err := await(wire.TypeAccepted)
		if err != nil {
			return nil, nil, err
		}
		t1 := time.Now()
		var m wire.Accepted
		m.Decode(body)
		buf = (&wire.Cancel{OrderID: m.OrderID}).Append(buf[:0])
		t2 := time.Now()
		if _, err := s.conn.Write(buf); err != nil {
			return nil, nil, err
		}
		if _, err := await(wire.TypeCanceled); err != nil {
			return nil, nil, err
		}
		t3 := time.Now()
		if i >= 0 {
			accept.RecordValue(max(t1.Sub(t0).Nanoseconds(), 1_000))
			cancel.RecordValue(max(t3.Sub(t2).Nanoseconds(), 1_000))
		}
	}
	s.conn.Write(wire.AppendEmpty(nil, wire.TypeLogout))
	return accept, cancel, nil
}
