package concord

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Equivocation: an author that signs two different deltas with one
// sequence number (a fork) could show each peer a different history, and
// the version vectors that drive anti-entropy would never notice, since
// both peers hold "seq n". The rule every peer applies:
//
//   - A fork is detected when a single delta arrives, validly signed by its
//     author, for a slot whose log entry (durable, or still being written)
//     is a single delta with other content (HLC or payload). Aggregates and
//     compacted slots cannot be compared and are not checked.
//   - Both sides are kept: the second delta is merged like any other (a
//     join, so the result does not depend on which side came first), both
//     envelopes are stored as fork proofs beside the log, and the fork is
//     counted (concord_equivocations_total) and reported
//     (Events.Equivocation).
//   - Proofs travel: a new fork is accepted and relayed on gossip, and
//     every sync exchange serves the document's proofs after its log, so
//     every peer that syncs with one that found the fork ends up holding
//     both sides and the same state.
//   - A fork is found only where both sides meet. Anti-entropy sends a
//     peer only the slots its version vector lacks, so two peers that were
//     each given one side, and never see the other on gossip, do not find
//     it by themselves.
//   - At most store.MaxForks proofs are kept per document, and
//     maxForkProofsPerAuthor per author; past that a fork is counted but
//     neither merged nor stored.

// maxForkProofsPerAuthor bounds the proofs one author's forks may take of
// the document's store.MaxForks: 8 forks, both sides each.
const maxForkProofsPerAuthor = 16

// forkID identifies one side of a fork by its signed content.
func forkID(e *wire.Envelope) uint64 {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], e.HLC)
	h.Write(b[:])
	h.Write(e.Payload)
	return binary.BigEndian.Uint64(h.Sum(nil))
}

type forkKey struct {
	origin crdt.ReplicaID
	seq    uint64
	id     uint64
}

// newFork returns the log's side of a fork when e is a single delta for a
// slot whose log entry is a single delta with other content, and e is not
// a fork already known; nil otherwise. It does not check e's signature:
// the caller does, before acting on it.
func (r *replica) newFork(e *wire.Envelope) *wire.Envelope {
	if e.Last != 0 {
		return nil
	}
	r.forkMu.Lock()
	known := r.forks[forkKey{e.Origin, e.Seq, forkID(e)}]
	r.forkMu.Unlock()
	if known {
		return nil
	}
	var data []byte
	if stored, err := r.d.store.Get(context.Background(), r.doc, e.Origin, e.Seq); err == nil {
		data = stored.Data
	} else {
		// Not in the log: compacted, or still being written (the first side
		// may be in flight when the second arrives).
		r.placingMu.Lock()
		data = r.placing[crdt.Dot{Replica: e.Origin, Counter: e.Seq}]
		r.placingMu.Unlock()
		if data == nil {
			return nil
		}
	}
	if _, ok := wire.DecodeMarker(data); ok {
		return nil
	}
	se, err := wire.DecodeEnvelope(data, storedLimits)
	if err != nil || se.Last != 0 || se.HLC == e.HLC && bytes.Equal(se.Payload, e.Payload) {
		return nil
	}
	return se
}

// ingestFork stores both sides of a fork as proofs and merges the new
// side; e's signature has been checked. It returns the paths the merge
// changed. Caller holds ingestMu.
func (r *replica) ingestFork(ctx context.Context, from peer.ID, e, logSide *wire.Envelope, delta *crdt.State) ([][]string, error) {
	r.d.metrics.Equivocation()
	r.d.log.Warn("equivocation: two deltas signed for one sequence number", "origin", e.Origin, "seq", e.Seq, "from", from)
	if r.d.onEquivocation != nil {
		r.d.onEquivocation(EquivocationEvent{Doc: r.doc, Origin: e.Origin, Seq: e.Seq, Peer: from})
	}
	r.forkMu.Lock()
	n := 0
	for k := range r.forks {
		if k.origin == e.Origin {
			n++
		}
	}
	r.forkMu.Unlock()
	if n >= maxForkProofsPerAuthor {
		// One author may not fill the document's proofs and hide the
		// forks of others.
		r.d.metrics.Drop("forks", "author_full")
		return nil, nil
	}
	added := false
	for _, side := range []*wire.Envelope{logSide, e} {
		data, err := wire.EncodeEnvelope(side)
		if err != nil {
			return nil, err
		}
		k := forkKey{side.Origin, side.Seq, forkID(side)}
		ok, err := r.d.store.AddFork(ctx, r.doc, store.Fork{Replica: k.origin, Seq: k.seq, ID: k.id, Data: data})
		if err != nil {
			return nil, fmt.Errorf("concord: store fork proof: %w", err)
		}
		r.forkMu.Lock()
		r.forks[k] = true
		r.forkMu.Unlock()
		added = ok // the new side's outcome decides
	}
	if !added {
		r.d.metrics.Drop("forks", "full")
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.noteClaims(delta, e.Origin, e.Seq) // its proof is served as a head (heads.go)
	if len(r.subs) > 0 {
		return r.state.MergeChanges(delta), nil
	}
	r.state.Merge(delta)
	return nil, nil
}

// loadForks merges the stored fork proofs into the state (at open).
func (r *replica) loadForks(ctx context.Context) error {
	forks, err := r.d.store.Forks(ctx, r.doc)
	for _, f := range forks {
		env, derr := wire.DecodeEnvelope(f.Data, storedLimits)
		if derr != nil {
			continue
		}
		delta, derr := crdt.DecodeDelta(env.Payload, env.Origin, payloadLimits)
		if derr != nil {
			continue
		}
		r.state.Merge(delta)
		r.noteClaims(delta, env.Origin, env.Seq)
		r.forks[forkKey{f.Replica, f.Seq, f.ID}] = true
	}
	return err
}

func (r *replica) hasForks() bool {
	r.forkMu.Lock()
	defer r.forkMu.Unlock()
	return len(r.forks) > 0
}

// maxForkBytes bounds the fork proofs served in one sync exchange (one
// batch, well within a sync frame).
const maxForkBytes = 2 << 20

// forkEntries returns the stored fork proofs as entries to serve after the
// log in a sync exchange, at most maxForkBytes of them.
func (r *replica) forkEntries(ctx context.Context) []store.Entry {
	if !r.hasForks() {
		return nil
	}
	forks, err := r.d.store.Forks(ctx, r.doc)
	if err != nil {
		r.d.log.Warn("read fork proofs", "err", err)
	}
	out := make([]store.Entry, 0, len(forks))
	size := 0
	for _, f := range forks {
		if size += len(f.Data); size > maxForkBytes {
			break
		}
		out = append(out, store.Entry{Replica: f.Replica, Seq: f.Seq, Data: f.Data})
	}
	return out
}
