// Package api is the order-entry and market-data server: it speaks the
// protocol of docs/PROTOCOL.md (codec in api/wire) over TCP, turns client
// frames into pipeline requests, and routes each durable batch's results
// to sessions and market-data subscribers. The Go client is api/client.
//
// # Goroutines
//
//   - Each connection's goroutine (reader.go) logs the client in, then
//     runs its read loop: it decodes frames in place, translates them
//     (translate, one function for every message type) and submits them
//     to the pipeline's ring in batches; a full ring stops it reading, so
//     TCP pushes back on the client.
//   - The pipeline's release stage calls Deliver (release.go) with each
//     durable batch: it encodes the responses and market data, collects
//     each session's frames of the batch, and hands them over in one
//     piece, usually as one non-blocking write straight to the socket.
//   - Each session's writer goroutine (writer.go) writes only what the
//     socket did not take at once (its own frames, and shared market
//     data buffers by reference), heartbeats, and the final Goodbye. A
//     client that holds more than Config.OutboundLimit is disconnected,
//     and past Config.OutboundBudget for all sessions the stalled ones
//     holding most are; the matching loop and the release stage never
//     wait for a client.
//   - A page of open orders after the first is asked for by a short
//     goroutine of its own (release.go, nextPage) once the client has
//     read most of the last: the release stage never submits.
//
// # Bounds (admission.go, reader.go)
//
// Before login a connection has a 128-byte buffer and a place in a
// bounded table that evicts the oldest (in all and per address); failed
// logins back off per account and address. After login a session may
// have Config.SessionCredit requests in the pipeline (four times that
// while alone) and two long answers (open orders, book snapshots) at a
// time; past those, or while half its outbound limit is unread, its
// reader stops reading. A session that ends (Logout, half-close, a
// protocol error) first waits for a barrier through the pipeline, so that
// everything it sent is answered before its Goodbye.
//
// # Locks, in the order they may be taken
//
//  1. Server.mu: the session registry (sessions, byAccount), the market
//     data feed and the in-process query waiters. Deliver holds it for a
//     whole batch; readers take it to register and remove a session and
//     to unsubscribe. Never held while waiting on a client.
//  2. session.mu: one session's outbound queue and closing state. Held
//     for a non-blocking write to the socket, never for a blocking one.
//  2. MarketTap.mu (beside session.mu, never with it): the tap's buffer
//     of frames, taken under Server.mu to hand over a batch's frames and
//     by the tap's consumer (the web hub) alone to take them.
//
// No other locks are held across these, and none is taken while holding
// session.mu or MarketTap.mu.
package api
