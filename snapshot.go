package concord

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Snapshots and compaction: the snapshots a document serves and accepts,
// and folding its log into its own snapshot.

// SnapshotFor implements cnet.Replica: the stored snapshot when the log no
// longer reaches back to have, or a fresh one for a peer that has nothing
// of a long log (cheaper than replaying every delta).
func (r *replica) SnapshotFor(ctx context.Context, p peer.ID, have crdt.VersionVector) (wire.Snapshot, bool, error) {
	if r.d.store.NeedsSnapshot(r.doc, have) {
		snap, ok, err := r.d.store.Snapshot(ctx, r.doc)
		if err != nil || !ok {
			return wire.Snapshot{}, false, err
		}
		return wire.Snapshot{State: snap.State, VV: snap.VV, Heads: r.heads(ctx, snap.Heads, nil, nil)}, true, nil
	}
	if len(have) > 0 || (r.d.writers != nil && (!r.d.writers[r.d.selfPeer] || !r.d.writers[p])) {
		// With an allowlist, snapshots travel only between writers: ours
		// would be refused by a peer that shares the allowlist if we are
		// not one, and a peer that is not one is better served the log,
		// which it can pass on (its own snapshots would be refused).
		return wire.Snapshot{}, false, nil
	}
	r.ingestMu.Lock()
	defer r.ingestMu.Unlock()
	vv := r.d.store.Contiguous(r.doc)
	var total uint64
	for _, n := range vv {
		total += n
	}
	if total <= uint64(r.d.snapshotAfter) {
		return wire.Snapshot{}, false, nil
	}
	if r.snapCache.data != nil && r.snapCache.vv.Equal(vv) {
		return wire.Snapshot{State: r.snapCache.data, VV: vv, Heads: r.snapCache.heads}, true, nil // nothing new: no re-encoding
	}
	b, _, cc, err := r.encodeDurable() // covers vv: merges precede appends
	if err != nil {
		return wire.Snapshot{}, false, err
	}
	old, _, err := r.d.store.Snapshot(ctx, r.doc)
	if err != nil {
		return wire.Snapshot{}, false, err
	}
	heads := r.heads(ctx, old.Heads, nil, cc)
	if err := checkClaims(cc, vv, boundsOf(decodeHeads(heads)), func(rep crdt.ReplicaID) bool { q, _ := wire.PeerOf(rep); return q == p }); err != nil {
		// Our state holds dots of an author we hold no signed head for
		// (a delete by another writer covered them): the peer would
		// refuse the snapshot, so it gets the log.
		r.d.log.Debug("fresh snapshot not offered", "err", err)
		return wire.Snapshot{}, false, nil
	}
	r.snapCache.vv, r.snapCache.data, r.snapCache.heads = vv, b, heads
	return wire.Snapshot{State: b, VV: vv, Heads: heads}, true, nil
}

// AcceptsSnapshot implements cnet.Replica: with a writer allowlist, only
// writers are trusted with snapshots.
func (r *replica) AcceptsSnapshot(p peer.ID) bool { return r.d.writers == nil || r.d.writers[p] }

// IngestSnapshot implements cnet.Replica: a snapshot checked against the
// allowlist, our own counters and its heads, merged without replacing what
// we hold, and stored with its heads.
func (r *replica) IngestSnapshot(ctx context.Context, from peer.ID, snap wire.Snapshot) error {
	state, vv := snap.State, snap.VV
	if !r.AcceptsSnapshot(from) {
		// A snapshot carries no author signatures: its causal context could
		// claim other writers' dots, deleting their data and swallowing
		// their next writes. With an allowlist only its writers are trusted
		// with that; anyone else's deltas are checked one by one.
		r.d.metrics.Reject("snapshot_not_writer")
		return reject("snapshot_not_writer", fmt.Errorf("snapshot from %s, not a writer of %q", from, r.doc))
	}
	st, err := crdt.Decode(state, crdt.DefaultLimits())
	if err != nil {
		r.d.metrics.Reject("bad_snapshot")
		return reject("bad_snapshot", err)
	}
	if r.d.writers != nil {
		for _, rep := range st.Context().Replicas() {
			if p, err := wire.PeerOf(rep); err != nil || !r.d.writers[p] {
				r.d.metrics.Reject("not_writer")
				return reject("not_writer", fmt.Errorf("snapshot holds writes of %s", rep))
			}
		}
	}
	if r.d.writers != nil {
		for rep := range vv {
			if p, err := wire.PeerOf(rep); err != nil || !r.d.writers[p] {
				r.d.metrics.Reject("not_writer")
				return reject("not_writer", fmt.Errorf("snapshot vector names %s", rep))
			}
		}
	}
	r.ingestMu.Lock()
	defer r.ingestMu.Unlock()
	r.mu.Lock()
	mine := r.nextSeq - 1
	myDots := r.state.Context().Max(r.d.self)
	r.mu.Unlock()
	if vv[r.d.self] > mine {
		// Nobody can hold more of our deltas than we wrote.
		r.d.metrics.Reject("bad_snapshot")
		return reject("bad_snapshot", fmt.Errorf("snapshot claims our seq %d, we wrote %d", vv[r.d.self], mine))
	}
	if n := st.Context().Max(r.d.self); n > myDots {
		// Nor has anyone seen dots we never minted: merging that would
		// swallow our next writes.
		r.d.metrics.Reject("bad_snapshot")
		return reject("bad_snapshot", fmt.Errorf("snapshot claims our dot %d, we minted %d", n, myDots))
	}
	if err := r.checkHeads(from, st, vv, snap.Heads); err != nil {
		var rj *rejectError
		if errors.As(err, &rj) {
			r.d.metrics.Reject(rj.reason)
		}
		return err
	}
	r.mu.Lock()
	paths := r.state.MergeUnverifiedChanges(st) // a snapshot cannot rewrite what we hold
	for _, e := range decodeHeads(snap.Heads) {
		if d, err := crdt.DecodeDelta(e.Payload, e.Origin, payloadLimits); err == nil {
			r.noteClaims(d, e.Origin, e.LastSeq())
		}
	}
	r.mu.Unlock()
	if err := r.snapshotLocked(ctx, vv, snap.Heads, false); err != nil {
		return fmt.Errorf("concord: store received snapshot: %w", err)
	}
	r.notify(Change{Doc: r.doc, Peer: from, Paths: paths})
	return nil
}

// maybeCompact folds into the snapshot the log entries every known peer
// holds, once there are at least compactAfter of them.
func (r *replica) maybeCompact() {
	r.mu.Lock()
	if r.compactOn || r.closed || len(r.peerVV) == 0 {
		r.mu.Unlock()
		return
	}
	floor := r.compactionFloorLocked()
	r.mu.Unlock()
	snap, _, err := r.d.store.Snapshot(context.Background(), r.doc)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return
	}
	var gain uint64
	for rep, n := range floor {
		if n > snap.VV[rep] {
			gain += n - snap.VV[rep]
		}
	}
	if gain < uint64(r.d.compactAfter) {
		return
	}
	r.mu.Lock()
	if r.compactOn || r.closed {
		r.mu.Unlock()
		return
	}
	r.compactOn = true
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer func() { r.mu.Lock(); r.compactOn = false; r.mu.Unlock() }()
		if err := r.compact(context.Background(), floor); errors.Is(err, errUnproven) {
			r.d.log.Debug("compaction deferred", "doc", r.doc, "err", err)
		} else if err != nil {
			r.d.log.Warn("compaction failed", "doc", r.doc, "err", err)
		}
	}()
}

// compactionFloorLocked returns what every peer known to hold the document
// (and we) hold: the log below it may be folded. Peers silent for longer
// than the retention are left out. Caller holds r.mu.
func (r *replica) compactionFloorLocked() crdt.VersionVector {
	floor := r.d.store.Contiguous(r.doc)
	now := r.d.now()
	for p, v := range r.peerVV {
		if r.d.retention > 0 && now.Sub(r.peerSeen[p]) > r.d.retention {
			continue // gone too long: it will catch up by snapshot
		}
		for rep, n := range floor {
			floor[rep] = min(n, v[rep])
		}
	}
	return floor
}

// compact folds log entries covered by upTo into the snapshot.
func (r *replica) compact(ctx context.Context, upTo crdt.VersionVector) error {
	r.ingestMu.Lock()
	defer r.ingestMu.Unlock()
	return r.snapshotLocked(ctx, upTo, nil, true)
}

// compactNow compacts up to the compaction floor, without a threshold.
func (r *replica) compactNow(ctx context.Context) error {
	r.mu.Lock()
	floor := r.compactionFloorLocked()
	r.mu.Unlock()
	return r.compact(ctx, floor)
}

// errUnproven: the state claims more of an author than the signed heads
// we hold show (heads.go); it cannot be folded into a snapshot yet.
var errUnproven = errors.New("concord: state not provable by the heads held")

// snapshotLocked stores the durable state as the snapshot, covering the old
// snapshot's vector and upTo, and drops the log it covers. It keeps with
// it every author's head (from the log, the old snapshot and extraHeads,
// heads received with a snapshot). With proven, a state claiming more of
// some author than its heads prove is not folded (the compaction waits for
// the author's deltas): a snapshot that cannot be proven could not be
// served. Caller holds ingestMu.
func (r *replica) snapshotLocked(ctx context.Context, upTo crdt.VersionVector, extraHeads [][]byte, proven bool) error {
	old, _, err := r.d.store.Snapshot(ctx, r.doc)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	vv := crdt.VersionVector{}
	vv.Merge(old.VV)
	vv.Merge(upTo)
	enc, clock, cc, err := r.encodeDurable()
	if err != nil {
		return err
	}
	heads := r.heads(ctx, old.Heads, extraHeads, cc)
	if proven {
		if err := checkClaims(cc, vv, boundsOf(decodeHeads(heads)), func(crdt.ReplicaID) bool { return false }); err != nil {
			return fmt.Errorf("%w: %w", errUnproven, err)
		}
	}
	return r.d.store.Compact(ctx, r.doc, store.Snapshot{State: enc, VV: vv, Clock: uint64(clock), Heads: heads})
}
