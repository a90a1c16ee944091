// Package api will hold the TCP server: sessions and login, the order-entry
// port, the market-data stream, and a Go client. The protocol's codec is
// built already, in api/wire, specified by docs/PROTOCOL.md.
//
// Not built yet: see the server issue. Nothing here is used.
package api
