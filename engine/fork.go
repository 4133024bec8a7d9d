package engine

import (
	"bytes"
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
//     MaxForkProofsPerAuthor per author; past that a fork is counted but
//     neither merged nor stored.

// MaxForkProofsPerAuthor bounds the proofs one author's forks may take of
// the document's store.MaxForks: 8 forks, both sides each.
const MaxForkProofsPerAuthor = 16

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
// slot whose log entry (durable, or in an unreported append) is a single
// delta with other content, and e is not a fork already known; nil
// otherwise. It does not check e's signature: the caller does, before
// acting on it.
func (d *Doc) newFork(e *wire.Envelope) *wire.Envelope {
	if e.Last != 0 || d.forks[forkKey{e.Origin, e.Seq, forkID(e)}] {
		return nil
	}
	data := d.unstable[crdt.Dot{Replica: e.Origin, Counter: e.Seq}]
	if data == nil {
		stored, err := d.st.Get(e.Origin, e.Seq)
		if err != nil {
			return nil // not in the log: compacted
		}
		data = stored.Data
	}
	return ForkOf(data, e)
}

// ForkOf returns the envelope stored as data when it and e are two sides
// of a fork: single deltas for one slot with different content. Nil
// otherwise (a marker, an aggregate, the same delta).
func ForkOf(data []byte, e *wire.Envelope) *wire.Envelope {
	if _, ok := wire.DecodeMarker(data); ok || e.Last != 0 {
		return nil
	}
	se, err := wire.DecodeEnvelope(data, StoredLimits)
	if err != nil || se.Last != 0 || se.HLC == e.HLC && bytes.Equal(se.Payload, e.Payload) {
		return nil
	}
	return se
}

// pendingFork is a fork whose proofs are being stored: its new side is
// merged once they are (ForksStored).
type pendingFork struct {
	keys   []forkKey // marked known meanwhile
	delta  *crdt.State
	origin crdt.ReplicaID
	seq    uint64
	from   peer.ID
}

// ForkWrite is fork proofs to store (store.AddFork, in order), reported
// with ForksStored.
type ForkWrite struct {
	ID     uint64
	Proofs []store.Fork
}

// ingestFork asks for both sides of a fork to be stored as proofs; the new
// side is merged once they are. e's signature has been checked.
func (d *Doc) ingestFork(from peer.ID, e, logSide *wire.Envelope, delta *crdt.State) {
	d.rd.Equivocations = append(d.rd.Equivocations, Equivocation{Origin: e.Origin, Seq: e.Seq, Peer: from})
	n := 0
	for k := range d.forks {
		if k.origin == e.Origin {
			n++
		}
	}
	if n >= MaxForkProofsPerAuthor {
		// One author may not fill the document's proofs and hide the
		// forks of others.
		d.drop("forks", "author_full")
		return
	}
	pf := &pendingFork{delta: delta, origin: e.Origin, seq: e.Seq, from: from}
	var proofs []store.Fork
	for _, side := range []*wire.Envelope{logSide, e} {
		k := forkKey{side.Origin, side.Seq, forkID(side)}
		if d.forks[k] {
			continue
		}
		data, err := wire.EncodeEnvelope(side)
		if err != nil || len(d.forks) >= store.MaxForks {
			for _, k := range pf.keys {
				delete(d.forks, k)
			}
			d.drop("forks", "full")
			return
		}
		d.forks[k] = true
		pf.keys = append(pf.keys, k)
		proofs = append(proofs, store.Fork{Replica: k.origin, Seq: k.seq, ID: k.id, Data: data})
	}
	d.nextForkWrite++
	d.forkWrites[d.nextForkWrite] = pf
	d.rd.Forks = append(d.rd.Forks, ForkWrite{ID: d.nextForkWrite, Proofs: proofs})
}

// ForksStored reports the outcome of Ready.Forks' write id: added tells
// whether the store kept the new side (it holds at most store.MaxForks).
// Stored, the new side is merged and announced; otherwise the fork is
// counted and neither merged nor known.
func (d *Doc) ForksStored(id uint64, added bool, err error) {
	pf := d.forkWrites[id]
	if pf == nil {
		return
	}
	delete(d.forkWrites, id)
	if err != nil || !added {
		for _, k := range pf.keys {
			delete(d.forks, k)
		}
		if err != nil {
			d.rd.Warnings = append(d.rd.Warnings, fmt.Errorf("store fork proofs: %w", err))
		} else {
			d.drop("forks", "full")
		}
		return
	}
	d.noteClaims(pf.delta, pf.origin, pf.seq, 0) // its proof is served as a head (heads.go); a fork proves no dot count
	var paths [][]string
	var patches []crdt.SeqPatch
	if d.track {
		paths, patches = d.state.MergeEdits(pf.delta)
	} else {
		d.state.Merge(pf.delta)
	}
	d.noteSeqLost()
	d.settle(d.newChange(Change{Origin: pf.origin, Peer: pf.from, Paths: paths, Patches: patches}))
}

// loadForks merges the stored fork proofs into the state (at open).
func (d *Doc) loadForks() error {
	forks, err := d.st.Forks()
	for _, f := range forks {
		env, derr := wire.DecodeEnvelope(f.Data, StoredLimits)
		if derr != nil {
			continue
		}
		delta, derr := crdt.DecodeDelta(env.Payload, env.Origin, payloadLimits)
		if derr != nil {
			continue
		}
		d.state.MergeStored(delta) // stored proofs, as the log
		d.noteClaims(delta, env.Origin, env.Seq, 0)
		d.forks[forkKey{f.Replica, f.Seq, f.ID}] = true
	}
	return err
}

// maxForkBytes bounds the fork proofs served in one sync exchange (one
// batch, well within a sync frame).
const maxForkBytes = 2 << 20

// forkEntries returns the stored fork proofs as entries to serve after the
// log in a sync exchange, at most maxForkBytes of them.
func (d *Doc) forkEntries() []store.Entry {
	lr := d.logReader()
	out := lr.forkEntries()
	d.rd.Warnings = append(d.rd.Warnings, lr.warns...)
	return out
}

func (d *logReader) forkEntries() []store.Entry {
	if !d.hasForks {
		return nil
	}
	forks, err := d.st.Forks()
	if err != nil {
		d.warns = append(d.warns, fmt.Errorf("read fork proofs: %w", err))
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
