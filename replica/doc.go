// Package replica replicates the command journal with raft
// (go.etcd.io/raft/v3, its RawNode), so that a cluster of three or five
// matchd nodes survives the loss of a minority without losing an
// acknowledged command.
//
// The leader's matching loop sequences and matches as on a single node;
// its journal (Journal, the pipeline's journal on a replica) proposes each
// group commit as one raft entry and answers the release stage's Await
// only once raft has committed the entry on a quorum (each member syncs
// its raft log first when Config.Fsync is set). Nothing is released
// before then. Followers apply committed entries through their own
// pipeline (Config.Apply), so every node holds the same engine state,
// journal and sessions' streams.
//
// Matching happens before commit (as LMAX's replicated journal does): a
// leader that loses its leadership may have matched commands the cluster
// will never commit. It stops at once (ErrDeposed) and the node starts
// again as a follower from its store, which holds committed commands
// only.
//
// Storage: the raft log and hard state live in a Pebble database of their
// own (DirFor); raft's MemoryStorage answers reads. The log is compacted
// behind the node's newest engine snapshot; a follower behind the log is
// sent that snapshot (ErrSnapshotReceived: the node restarts and resets
// its store to it). A peer whose log ends before what it acknowledged (a
// wiped data directory) is removed from the configuration and added
// again, the only way raft forgets what a follower acknowledged.
//
// Membership: Config.Peers starts a new group; AddMember and RemoveMember
// change it on the leader, one raft configuration change at a time, each
// carrying the member's addresses; the membership every replica stores in
// its raft log then holds (members.go). A replica started with
// Config.Join waits to be added; a removed one stops (ErrRemoved).
// TransferLeader hands the leadership over without losing what is in
// flight (transfer.go).
//
// Goroutines: the raft goroutine (Tick, Step, Propose, Ready: the only
// one that touches the RawNode), the applier (committed entries, in
// order), and the transport's (an accept loop, a reader per incoming
// connection, a writer per peer).
package replica
