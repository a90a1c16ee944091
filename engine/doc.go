// Package engine is the matching engine: every instrument's limit order book
// and the price-time priority matching between them, as a pure,
// single-threaded, deterministic state machine.
//
// # Usage
//
// One goroutine owns an Engine and feeds it sequenced commands:
//
//	e, err := engine.New(cfg)
//	out := make([]engine.Event, 0, 256)
//	for each command c, in sequence order {
//		out = e.Apply(&c, out[:0])
//		// out holds c's events, valid until the next Apply with this buffer
//	}
//
// A command's events come in a fixed order: its order events (accepted,
// fills, canceled, ...), then one EvLevel per price level whose total or
// order count it changed (by instrument, side, price), then one EvTopOfBook
// per instrument whose best bid or ask changed. The level events are a
// complete account of the books' changes: applied to a copy of the depth,
// they keep it equal to the engine's (the market data feed relies on it).
//
// Queries (Top, Depth, Order, OpenOrders) read the state between commands
// without changing it. Snapshot and Restore save and rebuild the whole state.
//
// # Determinism
//
// The engine does no I/O, reads no clock, starts no goroutines, uses no
// randomness and never lets map iteration order reach its output. Time and
// sequence numbers arrive in commands. The same commands applied to the same
// state produce byte-identical events and snapshots; a journal of commands
// is therefore a complete record of the engine.
//
// # Rules
//
//   - Prices are int64 ticks and quantities int64 lots. Trades print at the
//     resting order's price. Within a price level, earlier orders fill first.
//   - A command either takes effect or is answered with one EvRejected event
//     and changes nothing, except that a fresh client reference is used up.
//   - Replace: a quantity decrease at the same price keeps time priority; a
//     price change or a quantity increase loses it (and a price change may
//     trade); a new total quantity not above what has filled cancels.
//   - Self-trade prevention: orders of one account never trade with each
//     other; the incoming order's mode says what is canceled instead.
//   - A fill-or-kill order is checked before it touches the book: it trades
//     in full at once or is rejected.
//   - Market orders sweep up to a protection price one band from the
//     reference price; they never rest.
//
// # Invariants
//
// After every command: no book is crossed at rest; every level's quantity
// and count equal the sum of its orders; orders at a level are in arrival
// order; the cached best level of each side is the best; the order index and
// the per-account lists hold exactly the resting orders. CheckInvariants
// verifies all of these; the tests call it after every command.
//
// # Performance
//
// Orders and levels come from free lists, the order index is a table
// addressed by order ID (with a small open-addressing hash for the orders
// that outlive their slot), and events go into the caller's
// buffer: after warm-up Apply allocates nothing. A caller holding queued
// commands (the matching loop's batch, recovery's replay) tells the
// engine about them with Prefetch or PrefetchAhead before each Apply, so
// that the memory a queued cancel will touch is loading while the
// commands before it are applied; this changes nothing Apply does.
package engine
