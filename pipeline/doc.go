// Package pipeline runs the engine in three stages, each one goroutine with
// one job, joined by bounded queues of reusable batches:
//
//	producers ──ring──▶ matching loop ──▶ journal stage ──▶ release stage ──▶ Deliver
//	                    sequence, apply    write, commit     await durable,
//	                                       (sync starts)     then deliver
//
// # The contract (read this before using a Pipeline)
//
//  1. Producers (connection readers) submit Requests to the ring: commands,
//     which are sequenced, applied and journaled, and read-only queries,
//     which are answered from the engine's state and not journaled.
//  2. The matching loop takes everything published as one Batch, stamps
//     each command with the next sequence number and the batch's
//     timestamp, applies it, answers queries in line, and hands the batch
//     to the journal stage. It goes on to the next batch at once: matching
//     batch k+1 overlaps the journaling of batch k.
//  3. The journal stage writes the commands of every batch that is ready
//     and commits them as one group. Commit starts the sync and returns:
//     the journal stage never waits for a sync, so the commands matched
//     while a sync runs are already in the log when the next sync starts,
//     and a command waits for at most the sync in progress and its own.
//     When the ring is empty and the journal stage has nothing, the loop
//     runs this step itself (it would otherwise only wait), which saves a
//     hand-off at light load; the journal is still written by one
//     goroutine at a time, in sequence order.
//  4. The release stage awaits each Commit in order, publishes "durable up
//     to S" (Durable), and only then calls Deliver with each of its
//     batches, in order. **Nothing reaches Deliver before it is durable**,
//     query answers included: a query's answer may reflect commands
//     sequenced before it, so it waits for them. Deliver runs on the
//     release stage; while it runs, later syncs go on.
//  5. If a write, commit or sync fails, the pipeline fails stop: Deliver is
//     never called again, Submit returns the error, and Failed is closed.
//     The engine is then ahead of the journal and must not be used.
//  6. Close stops accepting, drains what was submitted, delivers it and
//     returns; the engine is then the caller's again (for a final snapshot).
//  7. Time reaches the engine only inside commands. A fourth goroutine, the
//     clock, watches the engine's NextWake (published by the loop after
//     each batch) and, when the wall clock passes it and nothing else has
//     come, submits a CmdClock like any producer: sequenced, journaled and
//     replayed like every command, so expiries, the end of a volatility
//     interruption and scheduled phase changes happen at the same place
//     in the journal on every replay. It sends one at a time and looks
//     again at least once a second.
//
// Deliver must not block for long: it should encode results, hand them to
// per-session queues and return. Batches are reused: Deliver must not keep
// a Batch or its slices after it returns.
//
// The stages' steps (match, commit, release) are plain methods that the
// goroutines loop over; the scenario tests (testdata/*.txt) drive them one
// at a time with a fake journal and clock.
package pipeline
