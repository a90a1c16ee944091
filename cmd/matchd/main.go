// Command matchd will be the matching engine server. Until the durable
// pipeline and the TCP protocol exist, it says so and exits with status 2.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "matchd: the server is not built yet: the engine core is done "+
		"(go test ./engine), the durable pipeline and the TCP server come next")
	os.Exit(2)
}
