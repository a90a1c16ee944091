package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const clusterUsage = `  matchctl cluster status --admin ADDR[,ADDR…] [--admin-token T] [--json]
  matchctl cluster add --admin ADDR[,ADDR…] --id N --peer HOST:PORT --client HOST:PORT [--admin-token T]
  matchctl cluster remove --admin ADDR[,ADDR…] --id N [--admin-token T]
  matchctl cluster transfer --admin ADDR[,ADDR…] --to N [--admin-token T]
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
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
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
		if st["leads"] == true {
			printMembers(stdout, st["members"])
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

// clusterChange adds a member (verb add), removes one (remove) or hands
// the leadership to one (transfer), on whichever of the admin addresses
// leads: a new node must be running with --join first. It prints the
// members once the change is applied.
func clusterChange(verb string, args []string, stdout, stderr io.Writer) int {
	add, transfer := verb == "add", verb == "transfer"
	name := "matchctl cluster " + verb
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	admin := fs.String("admin", "127.0.0.1:7002", "the nodes' admin addresses, comma-separated (the leader's does it)")
	token := fs.String("admin-token", "", "the admin token (matchd --admin-token), if one is set")
	id := fs.Uint64("id", 0, "add, remove: the member's node id")
	to := fs.Uint64("to", 0, "transfer: the member to lead")
	peer := fs.String("peer", "", "add: the new node's peer address (its --cluster PEER_ADDR)")
	client := fs.String("client", "", "add: the new node's order-entry address (its --listen)")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if transfer {
		*id = *to
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "matchctl: unexpected argument %q\nusage:\n%s", fs.Arg(0), clusterUsage)
		return 2
	case transfer && *id == 0:
		fmt.Fprintf(stderr, "matchctl: --to is required (the node id to lead)\nusage:\n%s", clusterUsage)
		return 2
	case *id == 0:
		fmt.Fprintf(stderr, "matchctl: --id is required (a node id from 1)\nusage:\n%s", clusterUsage)
		return 2
	case add && (*peer == "" || *client == ""):
		fmt.Fprintf(stderr, "matchctl: cluster add needs --peer and --client (the new node's --cluster entry)\nusage:\n%s", clusterUsage)
		return 2
	}
	cl := http.Client{Timeout: 15 * time.Second}
	var last string
	for _, a := range strings.Split(*admin, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		var req *http.Request
		if transfer {
			body, _ := json.Marshal(map[string]any{"id": *id})
			req, _ = http.NewRequest("POST", "http://"+a+"/api/cluster/leader", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
		} else if add {
			body, _ := json.Marshal(map[string]any{"id": *id, "peer": *peer, "client": *client})
			req, _ = http.NewRequest("POST", "http://"+a+"/api/cluster/members", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
		} else {
			req, _ = http.NewRequest("DELETE", "http://"+a+"/api/cluster/members/"+strconv.FormatUint(*id, 10), nil)
		}
		if *token != "" {
			req.Header.Set("Authorization", "Bearer "+*token)
		}
		resp, err := cl.Do(req)
		if err != nil {
			last = fmt.Sprintf("%s: no answer (%v)", a, err)
			continue
		}
		var ans struct {
			Error   string           `json:"error"`
			Members []map[string]any `json:"members"`
		}
		err = json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && err == nil {
			if transfer {
				fmt.Fprintf(stdout, "node %d leads\n", *id)
			}
			ms := make([]any, len(ans.Members))
			for i, m := range ans.Members {
				ms[i] = m
			}
			printMembers(stdout, ms)
			return 0
		}
		last = fmt.Sprintf("%s: %s: %s", a, resp.Status, ans.Error)
		if resp.StatusCode == http.StatusConflict && strings.Contains(ans.Error, "does not lead") {
			continue // ask the next node
		}
		fmt.Fprintln(stderr, "matchctl:", last)
		return 1
	}
	if last == "" {
		last = "no admin address given"
	}
	fmt.Fprintln(stderr, "matchctl: no node did it (is --admin every node's admin address, and does one lead?); last answer:", last)
	return 1
}

// parseFlags parses a cluster subcommand's flags: ok false means return
// code (0 after --help, 2 for a bad flag).
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, "usage:\n", clusterUsage)
			fs.PrintDefaults()
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// printMembers prints the member list an admin port answered, a line each.
func printMembers(w io.Writer, members any) {
	ms, _ := members.([]any)
	for _, m := range ms {
		m, ok := m.(map[string]any)
		if !ok {
			continue
		}
		vote := "voter"
		if m["voter"] != true {
			vote = "not voting yet"
		}
		fmt.Fprintf(w, "member node %v: peer %v, orders %v, %s\n", m["node"], m["peer"], m["client"], vote)
	}
}
