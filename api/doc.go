// Package api is the order-entry server: it speaks the protocol of
// docs/PROTOCOL.md (codec in api/wire) over TCP, turns requests into
// pipeline requests, and routes each durable batch's results to sessions.
//
// Per connection, one reader goroutine decodes frames in place and submits
// them to the pipeline's ring in batches (a full ring stops it reading, so
// TCP pushes back on the client), and one writer goroutine flushes queued
// responses with one write at a time. A client whose queued responses pass
// Config.OutboundLimit is disconnected; the matching loop never waits.
//
// Not yet here: the Go client package and the market-data stream.
package api
