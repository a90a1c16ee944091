// Package api will hold the TCP binary protocol: the zero-allocation codec,
// sessions and login, the server, the market-data stream and a Go client.
//
// Not built yet: see the server issue. Nothing here is used.
package api
