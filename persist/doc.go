// Package persist will hold the journal of sequenced commands in Pebble, the
// snapshots, and recovery (newest snapshot + replay of the journal after it).
//
// Not built yet: see the durable pipeline issue. Nothing here is used.
package persist
