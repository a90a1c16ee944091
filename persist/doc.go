// Package persist keeps the engine durable: a journal of every sequenced
// command in Pebble, snapshots of the engine's state, and recovery (newest
// valid snapshot, then replay of the journal after it).
//
// # Keys
//
// One Pebble database holds two key spaces, each key a one-byte prefix and
// the big-endian 8-byte sequence number, so keys sort by sequence:
//
//	'j' seq         a journal group: the records of consecutive commands,
//	                the last of which has that sequence number
//	's' seq         header of the snapshot taken after applying command seq
//	'c' seq index   the snapshot's bytes, in chunks of at most 1 MiB
//	                (index is a big-endian uint32 from 0)
//
// # Journal groups
//
// Write stores the commands it is given (at most 1,024 to a group) as one
// value: their records one after the other, with no header, since a
// record's version byte gives its length. The key is the last record's
// sequence number, so the group that holds a sequence number s is the
// first whose key is at least s, and a journal's last sequence number is
// its last key. Pebble's cost is mostly per key, and a group costs it
// about what one record did. A value of one record, as matchd wrote every
// record before groups, is a group of one: older journals read unchanged.
// A group is written in one Pebble batch, so it is never torn; a value
// that does not split into whole records is corruption, reported at the
// sequence number of the first record it cannot split.
//
// # Journal record, version 2 (75 bytes, big-endian)
//
//	 0       1       5              13             21  22  23  24  25  26
//	+-------+-------+--------------+--------------+---+---+---+---+---+
//	| ver=2 | crc32c|     seq      |     time     |knd|sid|typ|tif|stp|
//	+-------+-------+--------------+--------------+---+---+---+---+---+
//	 26         30          34           42           50           58           66
//	+----------+-----------+------------+------------+------------+------------+
//	| account  | instrument|   price    |    qty     |  order id  | client ref |
//	+----------+-----------+------------+------------+------------+------------+
//	 66           74    75
//	+------------+-----+
//	|  session   |flags|   flags bit 0: SessionOnly (a session's own mass cancel)
//	+------------+-----+
//
// The CRC-32C (Castagnoli) covers bytes 5..75. Version 1 records (66
// bytes, written before sessions) are the first 66 bytes with ver=1 and
// the CRC over bytes 5..66; they read as session 0. The layout is part of
// the on-disk format: a change needs a new version byte.
//
// # Journal record, version 3 (100 bytes)
//
// A command that uses a field of stops, icebergs, expiry or phases is
// written as version 3: the version 2 layout with ver=3, then
//
//	 75           83           91           99    100
//	+------------+------------+------------+-----+
//	| stop price |  display   |   expire   | act |
//	+------------+------------+------------+-----+
//
// with the CRC over bytes 5..100. Every other command is still written as
// version 2, so journals of plain orders keep their size; a version 3
// record whose four fields are all zero is not one the server writes and
// reads as corrupt.
//
// # Snapshot header, version 1 (29 bytes, big-endian)
//
//	ver=1 (1) | crc32c of bytes 5..29 (4) | seq (8) | length (8) |
//	chunks (4) | crc32c of the whole engine snapshot (4)
//
// The chunks are written first, each in its own small commit, so that the
// journal's commits are never queued behind tens of megabytes of snapshot
// in Pebble's write-ahead log; the header is written last with a sync. The
// engine's snapshot bytes carry their own CRC too (see engine.Snapshot).
//
// # Durability and recovery
//
// Write stages commands in a Pebble batch; Sync commits it with
// pebble.Sync, so a command is durable exactly when Sync returns. Nothing may
// be acknowledged before that (the pipeline enforces it).
//
// The first Open of an empty (or absent) directory stores the initial
// engine as the snapshot at sequence 0, so recovery always starts from a
// snapshot and the journal never needs the configuration to be replayed.
// A directory that holds files but is not a valid store (its MANIFEST is
// gone) is refused with ErrNotStore, never opened as a new, empty store.
// Recover loads the newest snapshot that decodes (falling back to older
// ones, logged), then replays every journal record after it. A record
// that fails its checksum is corruption wherever it is, the last one
// included (a committed batch is atomic, so it cannot be torn); so is a
// missing sequence number: Recover refuses, naming the sequence number,
// and TruncateJournal is the operator's explicit repair.
//
// # The high-water mark
//
// Pebble replays its newest write-ahead log up to the first bad byte and
// drops the rest, so a WAL that lost its tail opens without complaint. The
// store therefore keeps the highest sequence number it has seen become
// durable in a file of its own beside Pebble's (highwater.go), written
// every Options.HighWaterInterval and synced every Options.HighWaterSync,
// and Recover refuses (ErrLost) a journal that ends before it.
//
// # Failure
//
// Any write, sync or read error, and Pebble's DataCorruption and
// background ENOSPC events, fail the store: Failed is closed, Err says
// why, and nothing more is acknowledged. Pebble's Fatalf, which it calls
// when a commit cannot continue, fails the store too and is recovered
// into an error where the store called Pebble.
//
// Snapshots are written by a Snapshotter that keeps a replica engine and
// catches it up by replaying the journal, so taking one never pauses the
// matching loop. After a snapshot, the journal groups covered by the
// oldest retained snapshot (a group that straddles it stays whole), and
// older snapshots, are deleted — with point deletions, not DeleteRange
// (see Store.pruneJournal for why).
package persist
