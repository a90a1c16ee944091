package replica

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
)

// The membership a replica starts with: the flag's list on a new log, the
// stored one once a change was applied, and a refusal once this node was
// removed.
func TestLoadMembers(t *testing.T) {
	dir := t.TempDir()
	flag := []Peer{{1, "p1", "c1"}, {2, "p2", "c2"}, {3, "p3", "c3"}}
	open := func(id uint64, peers []Peer) (*Replica, error) {
		t.Helper()
		ls, _, err := openLogStore(dir, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		r := &Replica{cfg: Config{ID: id, Peers: peers, Dir: dir}, log: slog.Default(), ls: ls}
		err = r.loadMembers()
		return r, err
	}
	ids := func(r *Replica) (out []uint64) {
		for id := range *r.members.Load() {
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}

	r, err := open(2, flag)
	if err != nil || !slices.Equal(ids(r), []uint64{1, 2, 3}) {
		t.Fatalf("a new log: members %v, err %v", ids(r), err)
	}
	// Node 4 added, node 1 removed: stored.
	ms := []Member{{Peer: Peer{2, "p2", "c2"}}, {Peer: Peer{3, "p3", "c3"}}, {Peer: Peer{4, "p4", "c4"}}}
	if err := r.ls.saveMembers(ms, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	r.ls.close()

	// Restarted with the old flag: the stored membership holds.
	r, err = open(2, flag)
	if err != nil || !slices.Equal(ids(r), []uint64{2, 3, 4}) || (*r.members.Load())[4].Client != "c4" || !slices.Equal(r.removed, []uint64{1}) {
		t.Fatalf("restart: members %v, removed %v, err %v", ids(r), r.removed, err)
	}
	// Its own addresses are the ones it was started with.
	r.ls.close()
	r, err = open(2, []Peer{{2, "p2-new", "c2-new"}})
	if err != nil || (*r.members.Load())[2].Addr != "p2-new" {
		t.Fatalf("own address: %v, err %v", (*r.members.Load())[2], err)
	}
	r.ls.close()

	// The removed node's log refuses to start.
	if _, err := open(1, flag); !errors.Is(err, ErrRemoved) {
		t.Fatalf("node 1 after its removal: %v, want ErrRemoved", err)
	}
}

// A member list survives its encoding, and one that does not decode is an
// error, not an empty membership.
func TestStoredMembersDecode(t *testing.T) {
	ls, _, err := openLogStore(t.TempDir(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.close()
	if st, err := ls.loadMembers(); st != nil || err != nil {
		t.Fatalf("nothing stored: %v %v", st, err)
	}
	if err := ls.db.Set(membersKey, []byte("{not json"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ls.loadMembers(); err == nil {
		t.Fatal("a damaged member list decoded")
	}
}
