package match

// This file is not part of github.com/0x5487/matching-engine: matchd's
// peers harness (scripts/peers.sh) adds it to a copy of that package, so
// that the harness can drive the order book itself, synchronously, as it
// drives the other books, rather than through the engine's ring and its
// marshalled commands (which would time a goroutine hand-off per order).

import "github.com/quagmt/udecimal"

// PeerBook is one order book, driven directly.
type PeerBook struct{ b *OrderBook }

// NewPeerBook returns an empty book that publishes its logs to p.
func NewPeerBook(p Publisher) *PeerBook {
	return &PeerBook{b: newOrderBook("peers", "X", p)}
}

// Place enters an order of the given type (Limit, IOC or Market).
func (p *PeerBook) Place(id string, side Side, typ OrderType, price, size udecimal.Decimal, user uint64) error {
	_, err := p.b.placeOrder(&placeOrderParams{commandID: id, orderID: id, side: side, price: price, size: size,
		orderType: typ, userID: user})
	return err
}

// Cancel cancels an order.
func (p *PeerBook) Cancel(id string, user uint64) error {
	return p.b.cancelOrder(id, id, user, 0)
}
