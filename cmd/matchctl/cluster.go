package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

const clusterUsage = `  matchctl cluster status --admin ADDR[,ADDR…] [--admin-token T] [--json]
`

// clusterStatus asks every node's admin port for /api/cluster and prints
// a line per node (and, from the leader, each follower's lag). It fails
// (status 1) if no node answers or no node leads.
func clusterStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("matchctl cluster status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	admin := fs.String("admin", "127.0.0.1:7002", "the nodes' admin addresses, comma-separated")
	token := fs.String("admin-token", "", "the admin token (matchd --admin-token), if one is set")
	asJSON := fs.Bool("json", false, "print the nodes' answers as JSON lines")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, "usage:\n", clusterUsage)
			fs.PrintDefaults()
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "matchctl: unexpected argument %q\nusage:\n%s", fs.Arg(0), clusterUsage)
		return 2
	}
	cl := http.Client{Timeout: 2 * time.Second}
	answered, leads := 0, 0
	for _, a := range strings.Split(*admin, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		req, _ := http.NewRequest("GET", "http://"+a+"/api/cluster", nil)
		if *token != "" {
			req.Header.Set("Authorization", "Bearer "+*token)
		}
		resp, err := cl.Do(req)
		if err != nil {
			fmt.Fprintf(stdout, "%s: no answer (%v)\n", a, err)
			continue
		}
		var st map[string]any
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Fprintf(stdout, "%s: %s %v\n", a, resp.Status, st["error"])
			continue
		}
		answered++
		if st["leads"] == true {
			leads++
		}
		if *asJSON {
			st["admin"] = a
			b, _ := json.Marshal(st)
			fmt.Fprintln(stdout, string(b))
			continue
		}
		role := fmt.Sprint(st["role"])
		if st["leads"] == true {
			role = "leader, taking orders"
		}
		fmt.Fprintf(stdout, "node %v at %s: %s, term %v, commit %v, applied %v, committed seq %v\n",
			st["node"], a, role, st["term"], st["commit"], st["applied"], st["committed_seq"])
		if fs, ok := st["followers"].([]any); ok {
			for _, f := range fs {
				if m, ok := f.(map[string]any); ok {
					fmt.Fprintf(stdout, "  follower %v: match %v, %v entries behind\n", m["node"], m["match"], m["lag"])
				}
			}
		}
	}
	switch {
	case answered == 0:
		fmt.Fprintln(stderr, "matchctl: no node answered (is --admin the nodes' admin addresses?)")
		return 1
	case leads == 0:
		fmt.Fprintln(stderr, "matchctl: no node leads (an election is under way, or no quorum)")
		return 1
	}
	return 0
}
