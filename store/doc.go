// Package store is the only package of Concord that touches disk. It keeps,
// over any go-datastore Batching datastore (Pebble by default, a map in
// tests):
//
//   - per document: the delta log keyed by (replica, seq), the snapshot
//     (state + version vector) and the outbox (own deltas not yet
//     acknowledged);
//   - per node: the private key, the peer book, the schema version and the
//     store's incarnation.
//
// # Durability
//
// A write method returns nil only after its batch is synced to disk: the
// group-commit goroutine writes every request queued at that moment as one
// batch, calls Sync once, updates the in-memory indexes and answers all the
// writers, so concurrent writers share one fsync. Read-side index queries
// (Has, Contiguous, MaxSeq, Outbox) only ever reflect synced data. After a
// failed commit or sync the store refuses further writes (ErrFailed); reopen
// it. Compaction writes the new snapshot and an intent record in one synced
// batch, deletes the covered log entries in chunks and removes the intent;
// Open finishes a compaction a crash interrupted.
//
// # Ownership and imports
//
// The package owns the on-disk layout (keys under /docs and /node), the
// record encodings, the in-memory indexes rebuilt at Open, group commit,
// compaction and crash recovery, and fork proofs at rest. It stores deltas
// as opaque bytes: it decides nothing about validity, signatures, peers or
// when to acknowledge or compact (its callers do); DocLog hands one
// document's log to the engine without store importing it. It may import
// crdt (for replica IDs and version vectors), go-datastore, go-ds-pebble and
// Pebble (Missing range-scans a Pebble datastore directly) and
// fxamacker/cbor; never engine, net, wire, the root package or any
// networking package. Its tests also use internal/faultds.
//
// # Usage
//
//	s, err := store.OpenPebble(dir, store.Options{Logger: logger})
//	if err != nil { ... }
//	defer s.Close()
//	key, err := s.LoadOrCreateKey(ctx, generateKey)
//	// Persist before publishing:
//	err = s.Append(ctx, "notes", me, []store.Entry{{Replica: me, Seq: 7, Data: env}})
//	// Answer a peer's summary, batch by batch:
//	var cur store.Cursor
//	for {
//		batch, next, done, err := s.Missing(ctx, "notes", peerVV, cur)
//		...send batch...
//		if done || err != nil { break }
//		cur = next
//	}
//	// Once every known peer has the deltas:
//	err = s.Ack(ctx, "notes", 7)
//	err = s.Compact(ctx, "notes", store.Snapshot{State: state, VV: vv})
package store
