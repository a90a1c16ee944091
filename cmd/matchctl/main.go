// Command matchctl is the operator's and trader's command line for matchd.
//
// Trading (see `matchctl help`): buy, sell, cancel, replace, cancel-all,
// top, depth, orders, status; prices and quantities in decimals, --json for
// scripts.
//
// Data directory inspection (works on a stopped server's directory, read
// only):
//
//	matchctl journal snapshots --data DIR   list snapshots
//	matchctl journal dump --data DIR [--from N] [--to M]
//	                                        print journal records
//	matchctl journal verify --data DIR      check every snapshot and record
//	                                        and the high-water mark, rebuild
//	                                        the state, print its hash
//
// Repair (the one command that writes; the server must be stopped):
//
//	matchctl journal truncate --data DIR --from N --confirm
//	        delete journal record N and every one after it and lower the
//	        high-water mark to N-1: the way to start a store whose recovery
//	        refused a damaged last record or a lost WAL tail, accepting the
//	        loss of those commands. Without --confirm it only says what it
//	        would delete.
//
// Exit status: 0 on success, 1 on a failed check or error, 2 on bad usage.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/matchd/matchd/engine"
	"github.com/matchd/matchd/internal/buildinfo"
	"github.com/matchd/matchd/persist"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  matchctl journal snapshots --data DIR
  matchctl journal dump --data DIR [--from N] [--to M]
  matchctl journal verify --data DIR
  matchctl journal truncate --data DIR --from N [--confirm]
  matchctl cluster status --admin ADDR[,ADDR…] [--admin-token T] [--json]
  matchctl cluster add --admin ADDR[,ADDR…] --id N --peer HOST:PORT --client HOST:PORT
  matchctl cluster remove --admin ADDR[,ADDR…] --id N
  matchctl cluster transfer --admin ADDR[,ADDR…] --to N
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, tradeUsage, usage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, tradeUsage, usage)
		return 0
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, buildinfo.Read().String("matchctl"))
		return 0
	}
	if args[0] == "cluster" {
		switch {
		case len(args) >= 2 && args[1] == "status":
			return clusterStatus(args[2:], stdout, stderr)
		case len(args) >= 2 && (args[1] == "add" || args[1] == "remove" || args[1] == "transfer"):
			return clusterChange(args[1], args[2:], stdout, stderr)
		}
		fmt.Fprint(stderr, "usage:\n", clusterUsage)
		return 2
	}
	if args[0] != "journal" {
		return trade(args, stdout, stderr)
	}
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	sub := args[1]
	if sub != "snapshots" && sub != "dump" && sub != "verify" && sub != "truncate" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("matchctl journal "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	data := fs.String("data", "./data", "data directory of a (stopped) matchd")
	from := fs.Uint64("from", 0, "first sequence number to dump (default: the first in the journal)")
	to := fs.Uint64("to", 0, "last sequence number to dump (default: the last)")
	confirm := fs.Bool("confirm", false, "truncate: really delete (without it, only say what would go)")
	if err := fs.Parse(args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, usage)
			fs.PrintDefaults()
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "matchctl: unexpected argument %q\n%s", fs.Arg(0), usage)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if sub == "truncate" {
		return truncate(*data, engine.Seq(*from), *confirm, log, stdout, stderr)
	}
	store, err := persist.Open(*data, engine.Config{}, persist.Options{ReadOnly: true, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "matchctl:", err)
		return 1
	}
	defer store.Close()
	switch sub {
	case "snapshots":
		snaps, err := store.Snapshots()
		if err != nil {
			fmt.Fprintln(stderr, "matchctl:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%-12s %s\n", "seq", "bytes")
		for _, s := range snaps {
			fmt.Fprintf(stdout, "%-12d %d\n", s.Seq, s.Size)
		}
		return 0
	case "dump":
		start := engine.Seq(*from)
		if start == 0 {
			if start, err = store.FirstSeq(); err != nil {
				fmt.Fprintln(stderr, "matchctl:", err)
				return 1
			}
		}
		err := store.Replay(context.Background(), start, engine.Seq(*to), func(c *engine.Command) error {
			_, err := fmt.Fprintf(stdout, "%d %s\n", c.Time, c.Describe())
			return err
		})
		if err != nil {
			fmt.Fprintln(stderr, "matchctl:", err)
			return 1
		}
		return 0
	case "verify":
		return verify(store, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return 2
}

// truncate is the operator's repair (persist.Store.TruncateJournal).
func truncate(dir string, from engine.Seq, confirm bool, log *slog.Logger, stdout, stderr io.Writer) int {
	if from == 0 {
		fmt.Fprintln(stderr, "matchctl: journal truncate needs --from N (the first record to delete)")
		return 2
	}
	ro, err := persist.Open(dir, engine.Config{}, persist.Options{ReadOnly: true, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "matchctl:", err)
		return 1
	}
	last, err := ro.LastSeq()
	hw := ro.HighWater()
	ro.Close()
	if err != nil {
		fmt.Fprintln(stderr, "matchctl:", err)
		return 1
	}
	n := 0
	if last >= from {
		n = int(last - from + 1)
	}
	if !confirm {
		fmt.Fprintf(stdout, "would delete journal records %d..%d (%d, up to; they are lost) and set the high-water mark "+
			"from %d to %d; run again with --confirm to do it\n", from, max(last, from), n, hw, from-1)
		return 0
	}
	st, err := persist.Open(dir, engine.Config{}, persist.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "matchctl:", err)
		return 1
	}
	defer st.Close()
	removed, err := st.TruncateJournal(from)
	if err != nil {
		fmt.Fprintln(stderr, "matchctl:", err)
		return 1
	}
	log.Warn("matchctl: journal truncated by the operator", "dir", dir, "from", from, "records_removed", removed,
		"high_water_was", hw)
	fmt.Fprintf(stdout, "deleted %d journal records from seq %d; high-water mark now %d\n", removed, from, from-1)
	return 0
}

// verify decodes every snapshot, replays the journal from the oldest one,
// and checks that every newer snapshot matches the state replay reaches at
// its sequence number.
func verify(store *persist.Store, stdout, stderr io.Writer) int {
	snaps, err := store.Snapshots()
	if err != nil {
		fmt.Fprintln(stderr, "matchctl:", err)
		return 1
	}
	bad := 0
	e, err := store.LoadSnapshot(snaps[0].Seq)
	if err != nil {
		fmt.Fprintf(stdout, "snapshot %d: CORRUPT (the oldest: replay cannot start): %v\n", snaps[0].Seq, err)
		fmt.Fprintln(stdout, "verify: 1 problem(s)")
		return 1
	}
	fmt.Fprintf(stdout, "snapshot %d: ok (oldest, replay starts here)\n", snaps[0].Seq)
	next := 1
	checkSnapshots := func() {
		for next < len(snaps) && snaps[next].Seq == e.LastSeq() {
			s, err := store.LoadSnapshot(snaps[next].Seq)
			switch {
			case err != nil:
				fmt.Fprintf(stdout, "snapshot %d: UNREADABLE: %v\n", snaps[next].Seq, err)
				bad++
			case s.StateHash() != e.StateHash():
				fmt.Fprintf(stdout, "snapshot %d: DIFFERS from the replayed state\n", snaps[next].Seq)
				bad++
			default:
				fmt.Fprintf(stdout, "snapshot %d: ok, equals the replayed state\n", snaps[next].Seq)
			}
			next++
		}
	}
	var out []engine.Event
	n := 0
	err = store.Replay(context.Background(), snaps[0].Seq+1, 0, func(c *engine.Command) error {
		out = e.Apply(c, out[:0])
		n++
		checkSnapshots()
		return nil
	})
	checkSnapshots()
	if err != nil {
		fmt.Fprintf(stdout, "journal: CORRUPT: %v\n", err)
		bad++
	}
	if hw := store.HighWater(); e.LastSeq() < hw {
		fmt.Fprintf(stdout, "journal: LOST: ends at seq %d, but the high-water mark says commands up to seq %d were durable (%d missing)\n",
			e.LastSeq(), hw, hw-e.LastSeq())
		bad++
	} else {
		fmt.Fprintf(stdout, "high-water mark %d: ok\n", hw)
	}
	if err := store.Err(); err != nil {
		fmt.Fprintf(stdout, "store: CORRUPT: %v\n", err)
		bad++
	}
	for ; next < len(snaps); next++ {
		fmt.Fprintf(stdout, "snapshot %d: beyond the journal's end %d\n", snaps[next].Seq, e.LastSeq())
		bad++
	}
	h := e.StateHash()
	fmt.Fprintf(stdout, "journal: %d records replayed to seq %d; %d open orders; state hash %s\n",
		n, e.LastSeq(), e.OpenOrderCount(), hex.EncodeToString(h[:]))
	if bad > 0 {
		fmt.Fprintf(stdout, "verify: %d problem(s)\n", bad)
		return 1
	}
	fmt.Fprintln(stdout, "verify: ok")
	return 0
}
