package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Snapshots and compaction: the snapshots a document serves and accepts,
// and folding its log into its own snapshot. Both need the state encoded
// with every own write in it durable — a snapshot must never hold an own
// write without a durable delta (which, after a crash, would be kept
// locally but never sent, or reused) — so a request for one holds new
// writes back (they wait, unapplied) until the pending and in-flight own
// deltas are durable, then encodes.

// errUnproven: the state claims more of an author than the signed heads
// we hold show (heads.go); it cannot be folded into a snapshot yet.
var errUnproven = errors.New("concord: state not provable by the heads held")

// ErrUnproven is errUnproven, for callers that defer on it.
var ErrUnproven = errUnproven

// snapReq is a wanted encoding of durable state.
type snapReq struct {
	// compaction (store.Compact): the vector to cover beyond the old
	// snapshot's, heads received with a snapshot, whether the state must be
	// provable, and who waits (a ticket, 0: none).
	upTo       crdt.VersionVector
	extraHeads [][]byte
	proven     bool
	ticket     uint64
	change     *pendingChange     // announced once stored (a received snapshot)
	receiver   *Session           // waits until a received snapshot is stored
	stored     crdt.VersionVector // the vector handed out to store
	// fresh snapshot for a session instead of a compaction.
	session *Session
}

// RequestCompaction folds into the snapshot every log entry that all peers
// known to hold the document have (the automatic rule without its
// threshold); ticket is answered in a later Ready's Compacted (an error
// wrapping ErrUnproven when the state cannot be proven yet).
func (d *Doc) RequestCompaction(now time.Time, ticket uint64) {
	d.collectTombstones()
	d.wantSnap = append(d.wantSnap, &snapReq{upTo: d.CompactionFloor(now), proven: true, ticket: ticket})
	d.step()
}

// maybeCompact asks for a compaction once every known peer holds at least
// CompactAfter entries more than the snapshot covers.
func (d *Doc) maybeCompact(now time.Time) {
	if d.compactOn || d.closed || len(d.peerVV) == 0 || len(d.wantSnap) > 0 {
		return
	}
	// What a compaction gains is at most what is held past the snapshot:
	// that bound, one pass over the replicas, spares the floor's pass over
	// every peer on most observations (this runs on every summary).
	held := d.st.Contiguous()
	if compactionGain(held, d.snapVV) < uint64(d.cfg.CompactAfter) {
		return
	}
	floor := d.floorOf(now, held)
	if compactionGain(floor, d.snapVV) < uint64(d.cfg.CompactAfter) {
		return
	}
	d.collectTombstones()
	d.wantSnap = append(d.wantSnap, &snapReq{upTo: floor, proven: true})
	d.step()
}

// compactionGain returns how many deltas of vv are past the snapshot's.
func compactionGain(vv, snap crdt.VersionVector) uint64 {
	var gain uint64
	for rep, n := range vv {
		if n > snap[rep] {
			gain += n - snap[rep]
		}
	}
	return gain
}

// serveSnapshots encodes the durable state for the wanted snapshots once
// no own write is pending or in flight, holding new writes back until then.
// Compactions go one at a time.
func (d *Doc) serveSnapshots() {
	actionable := false
	for _, r := range d.wantSnap {
		if r.session != nil || !d.compactOn {
			actionable = true
		}
	}
	if !actionable {
		d.holdWrites = false
		return
	}
	if d.failed != nil || d.closed {
		err := d.failed
		if err == nil {
			err = ErrClosed
		}
		reqs := d.wantSnap
		d.wantSnap, d.holdWrites = nil, false
		for _, r := range reqs {
			d.finishSnap(r, err)
		}
		return
	}
	d.holdWrites = true
	if d.pending != nil || d.ownFlight > 0 {
		return
	}
	enc := crdt.Encode(d.state)
	reqs := d.wantSnap
	d.wantSnap, d.holdWrites = nil, false
	for _, r := range reqs {
		switch {
		case r.session != nil:
			r.session.freshSnapshot(enc, d.state.Context())
		case d.compactOn:
			d.wantSnap = append(d.wantSnap, r) // after the one running
		default:
			if err := d.compactTo(r, enc); err != nil {
				d.finishSnap(r, err)
			}
		}
	}
}

// compactTo hands out the compaction r asks for, over the encoded state.
func (d *Doc) compactTo(r *snapReq, enc []byte) error {
	old, _, err := d.st.Snapshot()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	vv := crdt.VersionVector{}
	vv.Merge(old.VV)
	vv.Merge(r.upTo)
	cc := d.state.Context()
	heads := d.heads(old.Heads, r.extraHeads, cc)
	if r.proven {
		if err := checkClaims(cc, vv, boundsOf(decodeHeads(heads)), func(crdt.ReplicaID) bool { return false }); err != nil {
			return fmt.Errorf("%w: %w", errUnproven, err)
		}
	}
	d.compactOn = true
	d.compacting = r
	r.stored = vv
	d.rd.Compact = &Compaction{Snapshot: store.Snapshot{State: enc, VV: vv, Clock: uint64(d.clock), Heads: heads}}
	return nil
}

// Compacted reports the outcome of Ready.Compact.
func (d *Doc) Compacted(err error) {
	r := d.compacting
	d.compactOn, d.compacting = false, nil
	if r == nil {
		return
	}
	if err == nil {
		d.snapVV = r.stored
	}
	d.finishSnap(r, err)
	d.step()
}

func (d *Doc) finishSnap(r *snapReq, err error) {
	switch {
	case r.session != nil:
		r.session.snapshotFailed(err)
		return
	case r.receiver != nil:
		r.receiver.snapshotStored(err)
	}
	if r.change != nil {
		d.settle(r.change) // merged whether or not it was stored
	}
	if errors.Is(err, errUnproven) && r.ticket == 0 {
		err = nil // an automatic compaction is deferred until it can be proven
	}
	if r.ticket != 0 {
		d.rd.Compacted = append(d.rd.Compacted, Commit{r.ticket, err})
	} else if err != nil {
		d.rd.Warnings = append(d.rd.Warnings, fmt.Errorf("compaction failed: %w", err))
	}
}

// snapshotFor returns the snapshot to send a peer p at have, when there is
// one to send: the stored snapshot when the log no longer reaches back to
// have, or a fresh one for a peer that has nothing of a long log (cheaper
// than replaying every delta). wait is set when a fresh one must first be
// encoded (the session is told by freshSnapshot).
func (d *Doc) snapshotFor(s *Session, p peer.ID, have crdt.VersionVector) (snap wire.Snapshot, ok, wait bool, err error) {
	if s != nil && !s.peerFeatures.Has(wire.FeatureSequences) && d.state.HasSequences() {
		return wire.Snapshot{}, false, false, nil // it would refuse the state
	}
	if d.st.NeedsSnapshot(have) {
		stored, ok, err := d.st.Snapshot()
		if err != nil || !ok {
			return wire.Snapshot{}, false, false, err
		}
		return wire.Snapshot{State: stored.State, VV: stored.VV, Heads: d.heads(stored.Heads, nil, nil)}, true, false, nil
	}
	w := d.cfg.Writers
	refused := func(want bool) bool {
		return len(have) > 0 && !want || (w != nil && (!w[d.cfg.SelfPeer] || !w[p] && !want))
	}
	vv := d.st.Contiguous()
	var total uint64
	for _, n := range vv {
		total += n
	}
	small := total <= uint64(d.cfg.SnapshotAfter)
	// A peer holding back inserts for elements it collected asks for a
	// whole state; the request counts (servesRepair) only where it is
	// what sends one.
	want := s != nil && s.peerWants && !refused(true) && (refused(false) || small) && d.servesRepair(p, s.helloAt)
	if refused(want) {
		// With an allowlist, snapshots travel only between writers: ours
		// would be refused by a peer that shares the allowlist if we are
		// not one, and a peer that is not one is better served the log,
		// which it can pass on (its own snapshots would be refused) —
		// unless it wants a whole state to repair what it holds back.
		return wire.Snapshot{}, false, false, nil
	}
	if small && !want {
		return wire.Snapshot{}, false, false, nil
	}
	if d.snapCache.data != nil && d.snapCache.vv.Equal(vv) {
		return wire.Snapshot{State: d.snapCache.data, VV: vv, Heads: d.snapCache.heads}, true, false, nil // nothing new: no re-encoding
	}
	d.wantSnap = append(d.wantSnap, &snapReq{session: s})
	return wire.Snapshot{}, false, true, nil
}

// freshFor completes a fresh snapshot for peer p from the encoded durable
// state enc with context cc, or reports that none can be offered.
func (d *Doc) freshFor(p peer.ID, enc []byte, cc *crdt.CausalContext) (wire.Snapshot, bool) {
	vv := d.st.Contiguous() // covers what was merged: merges precede appends
	old, _, err := d.st.Snapshot()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return wire.Snapshot{}, false
	}
	heads := d.heads(old.Heads, nil, cc)
	if err := checkClaims(cc, vv, boundsOf(decodeHeads(heads)), func(rep crdt.ReplicaID) bool { q, _ := wire.PeerOf(rep); return q == p }); err != nil {
		// Our state holds dots of an author we hold no signed head for
		// (a delete by another writer covered them): the peer would
		// refuse the snapshot, so it gets the log.
		return wire.Snapshot{}, false
	}
	d.snapCache.vv, d.snapCache.data, d.snapCache.heads = vv, enc, heads
	return wire.Snapshot{State: enc, VV: vv, Heads: heads}, true
}

// ReceiveSnapshot checks and merges a snapshot received from peer from
// outside an exchange (an exchange's session does it for its own); ticket
// is answered in a later Ready's Compacted once the snapshot is stored. A
// refused snapshot is returned as a *RejectError.
func (d *Doc) ReceiveSnapshot(from peer.ID, snap wire.Snapshot, ticket uint64) error {
	return d.receiveSnapshot(from, snap, nil, ticket)
}

// AcceptsSnapshot reports whether a snapshot from p would be considered:
// with a writer allowlist, only writers are trusted with snapshots.
func (d *Doc) AcceptsSnapshot(p peer.ID) bool { return d.cfg.Writers == nil || d.cfg.Writers[p] }

// receiveSnapshot checks a snapshot against the allowlist, our own
// counters and its heads, merges it without replacing what we hold, and
// asks for it to be stored with its heads; s is told once it is.
func (d *Doc) receiveSnapshot(from peer.ID, snap wire.Snapshot, s *Session, ticket uint64) error {
	state, vv := snap.State, snap.VV
	w := d.cfg.Writers
	if !d.AcceptsSnapshot(from) {
		// A snapshot carries no author signatures: its causal context could
		// claim other writers' dots, deleting their data and swallowing
		// their next writes. With an allowlist only its writers are trusted
		// with that; anyone else's deltas are checked one by one.
		d.reject("snapshot_not_writer")
		return reject("snapshot_not_writer", fmt.Errorf("snapshot from %s, not a writer of %q", from, d.cfg.Doc))
	}
	st, err := crdt.Decode(state, crdt.DefaultLimits())
	if err != nil {
		d.reject("bad_snapshot")
		return reject("bad_snapshot", err)
	}
	if w != nil {
		for _, rep := range st.Context().Replicas() {
			if p, err := wire.PeerOf(rep); err != nil || !w[p] {
				d.reject("not_writer")
				return reject("not_writer", fmt.Errorf("snapshot holds writes of %s", rep))
			}
		}
		for rep := range vv {
			if p, err := wire.PeerOf(rep); err != nil || !w[p] {
				d.reject("not_writer")
				return reject("not_writer", fmt.Errorf("snapshot vector names %s", rep))
			}
		}
	}
	if mine := d.nextSeq - 1; vv[d.cfg.Self] > mine {
		// Nobody can hold more of our deltas than we wrote.
		d.reject("bad_snapshot")
		return reject("bad_snapshot", fmt.Errorf("snapshot claims our seq %d, we wrote %d", vv[d.cfg.Self], mine))
	}
	if n, myDots := st.Context().Max(d.cfg.Self), d.state.Context().Max(d.cfg.Self); n > myDots {
		// Nor has anyone seen dots we never minted: merging that would
		// swallow our next writes.
		d.reject("bad_snapshot")
		return reject("bad_snapshot", fmt.Errorf("snapshot claims our dot %d, we minted %d", n, myDots))
	}
	if err := d.checkHeads(from, st, vv, snap.Heads); err != nil {
		var rj *RejectError
		if errors.As(err, &rj) {
			d.reject(rj.reason)
		}
		return err
	}
	refused := d.state.SeqRefused()
	paths, patches := d.state.MergeUnverifiedEdits(st) // a snapshot cannot rewrite what we hold
	d.noteSeqLost()
	if d.state.SeqRefused() != refused {
		// Past the bound of held-back sequence changes: the snapshot's
		// vector claims them anyway (WIRE.md §17).
		d.drop("seq_pending", "snapshot")
	}
	for _, e := range decodeHeads(snap.Heads) {
		if delta, err := crdt.DecodeDelta(e.Payload, e.Origin, payloadLimits); err == nil {
			d.noteClaims(delta, e.Origin, e.LastSeq(), e.LastSeq())
		}
	}
	d.wantSnap = append(d.wantSnap, &snapReq{upTo: vv, extraHeads: snap.Heads, receiver: s, ticket: ticket, change: d.newChange(Change{Peer: from, Paths: paths, Patches: patches})})
	d.step()
	return nil
}
