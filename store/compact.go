package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/concord-p2p/concord/crdt"
	"github.com/ipfs/go-datastore"
)

// Snapshot is a document's compacted state and the version vector it covers.
type Snapshot struct {
	State []byte
	VV    crdt.VersionVector
	// Clock is the writer's hybrid logical clock when the snapshot was
	// taken, so a restart never issues timestamps below ones it issued.
	Clock uint64
	// Heads are opaque records kept with the snapshot (the document keeps
	// there the latest signed envelope of each author whose log entries
	// the snapshot folded).
	Heads [][]byte
}

// Snapshot returns doc's snapshot; ok is false when there is none. Errors:
// ErrClosed, ErrCorrupt (naming the key), read errors.
func (s *Store) Snapshot(ctx context.Context, doc string) (Snapshot, bool, error) {
	if s.isClosed() {
		return Snapshot{}, false, ErrClosed
	}
	k := snapKey(doc)
	b, err := s.ds.Get(ctx, k)
	if errors.Is(err, datastore.ErrNotFound) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("store: get %s: %w", k, err)
	}
	snap, err := s.codec.decodeSnap(k, b)
	if err != nil {
		return Snapshot{}, false, err
	}
	return snap, true, nil
}

// Compact atomically replaces doc's snapshot with snap and deletes every log
// entry it covers (seq <= snap.VV[r]). It is crash-safe:
//
//  1. the snapshot and an intent record (/docs/<doc>/compacting, holding
//     snap.VV) are written in ONE synced batch — from here on readers ignore
//     covered log entries, so the new layout is what everyone sees;
//  2. covered log entries are deleted in synced chunks of
//     Options.CompactChunk;
//  3. the intent is deleted.
//
// A crash before 1 is durable leaves the old snapshot and the full log; a
// crash after it leaves the new snapshot, and Open finishes steps 2–3.
// snap.VV must cover the current snapshot's version vector (ErrInvalid
// otherwise): a compaction never un-covers deltas.
func (s *Store) Compact(ctx context.Context, doc string, snap Snapshot) error {
	if s.isClosed() {
		return ErrClosed
	}
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	vv := vvFromMap(vvToMap(snap.VV))
	s.mu.RLock()
	d := s.docs[doc]
	var old crdt.VersionVector
	var snapErr error
	if d != nil {
		old, snapErr = d.snapVV, d.snapErr
	}
	s.mu.RUnlock()
	if snapErr == nil && !vv.Covers(old) {
		return fmt.Errorf("%w: compaction of %q to %v would un-cover snapshot %v", ErrInvalid, doc, vv, old)
	}
	var runs []seqRun
	ops := []op{
		{key: snapKey(doc), value: s.codec.encodeSnap(Snapshot{State: snap.State, VV: vv, Clock: snap.Clock, Heads: snap.Heads})},
		{key: intentKey(doc), value: s.codec.marshal(intentRecord{VV: vvToMap(vv)})},
	}
	err := s.submit(ctx, ops, func() {
		d := s.doc(doc)
		// Compute the deletions before moving the snapshot base.
		for _, r := range d.sortedReplicas() {
			if run := d.coveredRun(r, vv[r]); !run.empty() {
				runs = append(runs, run)
			}
		}
		d.snapVV, d.snapErr = vv, nil
		for r, n := range vv {
			d.replica(r).raise(n)
		}
	})
	if err != nil {
		return err
	}
	chunk := make([]op, 0, s.opts.CompactChunk)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := s.submit(ctx, chunk, nil)
		chunk = make([]op, 0, s.opts.CompactChunk)
		return err
	}
	for _, run := range runs {
		prefix := logReplicaPrefix(doc, run.replica)
		run.each(func(seq uint64) bool {
			chunk = append(chunk, op{key: logKeyIn(prefix, seq), del: true})
			if len(chunk) == cap(chunk) {
				err = flush()
			}
			return err == nil
		})
		if err != nil {
			return fmt.Errorf("store: compact %q: %w", doc, err)
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("store: compact %q: %w", doc, err)
	}
	if err := s.submit(ctx, []op{{key: intentKey(doc), del: true}}, nil); err != nil {
		return fmt.Errorf("store: compact %q: %w", doc, err)
	}
	return nil
}
