// Package web serves public market data over HTTP: a live web view of
// every instrument (embedded static HTML, CSS and JavaScript, no build
// step and nothing fetched from elsewhere), REST endpoints for
// instruments, books, trades, tickers and candles, and a WebSocket stream
// of book changes and trades in JSON. docs/HTTP.md is its specification.
//
// # How it gets the data
//
// A Hub keeps its own copy of every instrument's book, its latest trades
// and its candles, built from the server's market tap (api.MarketTap):
// the feed's frames, numbered by the journal, in order. At start (and
// after the tap reports it fell behind) it takes the tap, then one whole
// book snapshot per instrument through the matching loop
// (api.Server.Depth with levels 0), whose feed number says which of the
// frames that follow it is already in the snapshot. Trades come from the
// tap alone (the server's feed retention first, so the tape and the
// candles survive a restart), and are taken once each by feed number.
//
// Every request is answered from the hub's copy: a REST client or a
// browser costs the matching loop nothing. One goroutine (run) owns the
// updates; readers take the hub's read lock. Each WebSocket client has a
// bounded queue; a client that lets it fill is cut off (StatusPolicyViolation,
// "too slow"), never waited for.
//
// The server panel (/api/v1/server and the page's panel) reads the same
// counters as /metrics through Config.Panel and, if Config.Token is set,
// needs it as a bearer token.
package web
