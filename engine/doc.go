// Package engine is the replication of one document as a deterministic
// state machine, in the style of etcd raft's RawNode: inputs go in through
// methods (a local transaction, received envelopes, summaries, sync
// messages, ticks, and the outcome of the writes it asked for), and what
// the caller must do comes out in a Ready — log entries to persist, then
// envelopes to publish, changes to announce, transactions to answer,
// acknowledgments, fork proofs and snapshots to store, peers to pull from.
//
// The engine owns a document's CRDT state, its hybrid logical clock, its
// sequence numbers, the rules of what it accepts (signatures, allowlist,
// dot counts, snapshot heads, forks), the group commit of local writes, the
// acknowledgment and compaction rules, and the rules that decide when to
// pull (summaries and gap timers, with time passed in). It reads the log
// through the narrow Storage interface and never writes it: persistence is
// the caller's, and nothing that depends on a write is released (published,
// announced, answered) before the caller reports the write durable
// (Persisted): persist before publish.
//
// An engine has no goroutines, no locks, no clock and does no I/O of its
// own; it is not safe for concurrent use. The root package drives one per
// document (see its driver), and internal/sim drives many on one thread,
// seeded, with faults.
//
// Imports: crdt, store (its record types, behind Storage), wire. Not net,
// not libp2p's host or pubsub, not the root package.
package engine
