package store

import (
	"context"

	"github.com/concord-p2p/concord/crdt"
)

// DocLog is one document's log in a store, as the replication engine
// reads it (it implements engine.Storage).
type DocLog struct {
	St  *Store
	Doc string
}

// Snapshot returns the document's snapshot (Store.Snapshot).
func (s DocLog) Snapshot() (Snapshot, bool, error) {
	return s.St.Snapshot(context.Background(), s.Doc)
}

// Entries calls fn for every log entry (Store.Entries).
func (s DocLog) Entries(fn func(Entry) error) error {
	return s.St.Entries(context.Background(), s.Doc, fn)
}

// Forks returns the fork proofs (Store.Forks).
func (s DocLog) Forks() ([]Fork, error) { return s.St.Forks(context.Background(), s.Doc) }

// Get returns one entry (Store.Get).
func (s DocLog) Get(rep crdt.ReplicaID, seq uint64) (Entry, error) {
	return s.St.Get(context.Background(), s.Doc, rep, seq)
}

// Has reports whether (rep, seq) is held (Store.Has).
func (s DocLog) Has(rep crdt.ReplicaID, seq uint64) bool { return s.St.Has(s.Doc, rep, seq) }

// MaxSeq returns the highest seq of rep held (Store.MaxSeq).
func (s DocLog) MaxSeq(rep crdt.ReplicaID) uint64 { return s.St.MaxSeq(s.Doc, rep) }

// Contiguous returns the contiguous vector held (Store.Contiguous).
func (s DocLog) Contiguous() crdt.VersionVector { return s.St.Contiguous(s.Doc) }

// NeedsSnapshot reports whether have needs the snapshot (Store.NeedsSnapshot).
func (s DocLog) NeedsSnapshot(have crdt.VersionVector) bool {
	return s.St.NeedsSnapshot(s.Doc, have)
}

// Missing returns what have lacks, in batches (Store.Missing).
func (s DocLog) Missing(have crdt.VersionVector, cur Cursor) ([]Entry, Cursor, bool, error) {
	return s.St.Missing(context.Background(), s.Doc, have, cur)
}

// Outbox returns the unacknowledged own seqs (Store.Outbox).
func (s DocLog) Outbox() []uint64 { return s.St.Outbox(s.Doc) }
