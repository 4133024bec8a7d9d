package engine

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// Snapshot trust: a snapshot carries no author signatures, so a peer
// serving one could claim other writers' sequence numbers or dots — which,
// merged, would delete their data and swallow their next writes. Every
// envelope carries its author's signed dot count (Envelope.Dot), and a
// snapshot travels with heads: signed envelopes that show everything it
// claims — for every author, its envelope with the highest sequence number
// the sender holds, and where another writer's delete covered more of an
// author's dots than that, the deleting envelope. A receiver refuses a
// snapshot claiming more of an author's sequence numbers or dots than the
// heads (or what the receiver itself already holds) show, so a snapshot
// can claim nothing that its authors did not sign. The document keeps its
// heads with its own snapshot, so it can prove what it serves later.

// headBound is what the heads prove of one author.
type headBound struct{ seq, dot uint64 }

// maxHeads bounds the heads of one snapshot (as the sync decoder does).
const maxHeads = 4096

// claimRef names the stored envelope whose delta claims the most dots of
// one replica other than its own author (a delete by another writer covers
// the dots it observed): when the replica's own head does not reach that
// far, the snapshot carries this envelope too, so that what it claims was
// signed by someone (see the README, "Anti-entropy").
type claimRef struct {
	dot    uint64
	origin crdt.ReplicaID
	slot   uint64 // where the envelope is stored (the log slot, or LastSeq for a kept head)
}

// noteClaims records the claims delta, stored at (origin, slot), makes of
// other replicas' dots, and (last, when not 0: the delta's last sequence
// number) how many dots its author had minted by then (tombstones.go).
func (d *Doc) noteClaims(delta *crdt.State, origin crdt.ReplicaID, slot, last uint64) {
	cc := delta.Context()
	d.gc.mark(origin, last, cc.Max(origin))
	for _, rep := range cc.Replicas() {
		if rep == origin {
			continue // proven by the author's own head
		}
		if m := cc.Max(rep); m > d.claims[rep].dot {
			d.claims[rep] = claimRef{m, origin, slot}
		}
	}
}

// decodeHeads decodes encoded envelopes, skipping undecodable ones.
func decodeHeads(heads [][]byte) []*wire.Envelope {
	out := make([]*wire.Envelope, 0, len(heads))
	for _, b := range heads {
		if e, err := wire.DecodeEnvelope(b, StoredLimits); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// boundsOf returns what envelopes (verified by the caller, or our own)
// show: per author its highest sequence number and signed dot count, and
// per replica the most dots any of them claims.
func boundsOf(envs []*wire.Envelope) map[crdt.ReplicaID]headBound {
	out := map[crdt.ReplicaID]headBound{}
	for _, e := range envs {
		hb := out[e.Origin]
		out[e.Origin] = headBound{max(hb.seq, e.LastSeq()), max(hb.dot, e.Dot)}
		d, err := crdt.DecodeDelta(e.Payload, e.Origin, payloadLimits)
		if err != nil {
			continue
		}
		for _, rep := range d.Context().Replicas() {
			if rep != e.Origin {
				hb := out[rep]
				out[rep] = headBound{hb.seq, max(hb.dot, d.Context().Max(rep))}
			}
		}
	}
	return out
}

// envelopeAt returns the envelope stored at (rep, slot) in the log
// (following a marker to its aggregate), or nil.
func (d *headReader) envelopeAt(rep crdt.ReplicaID, slot uint64) *wire.Envelope {
	if slot == 0 {
		return nil
	}
	ent, err := d.st.Get(rep, slot)
	if err != nil {
		return nil // compacted: the snapshot keeps it
	}
	if at, ok := wire.DecodeMarker(ent.Data); ok {
		if ent, err = d.st.Get(rep, at); err != nil {
			return nil
		}
	}
	e, err := wire.DecodeEnvelope(ent.Data, StoredLimits)
	if err != nil {
		return nil
	}
	return e
}

// heads returns the envelopes that prove what a snapshot of the document
// claims: for every author it holds deltas of (or cc names), its envelope
// with the highest sequence number, and for every replica whose dots
// another writer's delta claims beyond that, the claiming envelope. Each
// comes from the log, from kept (the heads stored with the snapshot) or
// from extra (heads just received).
func (d *Doc) heads(kept, extra [][]byte, cc *crdt.CausalContext) [][]byte {
	hr := d.headReader()
	out := hr.heads(kept, extra, cc)
	d.takeReader(hr.lr)
	return out
}

// headReader computes heads from the log and a copy of the claims: it
// touches no engine state, so it may run outside the driver's lock.
type headReader struct {
	st     Storage
	claims map[crdt.ReplicaID]claimRef
	lr     *logReader // fork proofs
}

func (d *Doc) headReader() *headReader {
	return &headReader{st: d.st, claims: maps.Clone(d.claims), lr: d.logReader()}
}

func (d *headReader) heads(kept, extra [][]byte, cc *crdt.CausalContext) [][]byte {
	srcs := append(slices.Clone(kept), extra...)
	for _, f := range d.lr.forkEntries() {
		srcs = append(srcs, f.Data) // both sides of every fork, which the state merged
	}
	all := decodeHeads(srcs)
	best := map[crdt.ReplicaID]*wire.Envelope{}
	consider := func(e *wire.Envelope) {
		if o := best[e.Origin]; o == nil || e.LastSeq() > o.LastSeq() || e.LastSeq() == o.LastSeq() && e.Dot > o.Dot {
			best[e.Origin] = e
		}
	}
	for _, e := range all {
		consider(e)
	}
	reps := d.st.Contiguous()
	if cc != nil {
		for _, rep := range cc.Replicas() {
			reps[rep] = max(reps[rep], 0)
		}
	}
	for rep := range reps {
		if e := d.envelopeAt(rep, d.st.MaxSeq(rep)); e != nil {
			consider(e)
		}
	}
	type key struct {
		origin    crdt.ReplicaID
		seq, last uint64
	}
	picked := map[key]*wire.Envelope{}
	for _, e := range best {
		picked[key{e.Origin, e.Seq, e.Last}] = e
	}
	claims := d.claims
	for rep, c := range claims {
		if o := best[rep]; o != nil && o.Dot >= c.dot {
			continue // the replica's own head proves it
		}
		e := d.envelopeAt(c.origin, c.slot)
		if e != nil && !claimsUpTo(e, rep, c.dot) {
			e = nil // the log's side of a fork: the claim is the other side's
		}
		for _, k := range all {
			if e != nil {
				break
			}
			if k.Origin == c.origin && k.Seq <= c.slot && c.slot <= k.LastSeq() && claimsUpTo(k, rep, c.dot) {
				e = k
			}
		}
		if e != nil {
			picked[key{e.Origin, e.Seq, e.Last}] = e
		}
	}
	keys := slices.SortedFunc(maps.Keys(picked), func(a, b key) int {
		return cmp.Or(strings.Compare(string(a.origin), string(b.origin)), cmp.Compare(a.seq, b.seq), cmp.Compare(a.last, b.last))
	})
	out := make([][]byte, 0, len(keys))
	for _, k := range keys {
		if len(out) == maxHeads {
			break
		}
		b, err := wire.EncodeEnvelope(picked[k])
		if err != nil {
			continue
		}
		out = append(out, b)
	}
	return out
}

// claimsUpTo reports whether e's delta claims dot of rep.
func claimsUpTo(e *wire.Envelope, rep crdt.ReplicaID, dot uint64) bool {
	delta, err := crdt.DecodeDelta(e.Payload, e.Origin, payloadLimits)
	return err == nil && delta.Context().Max(rep) >= dot
}

// checkHeads verifies a received snapshot's heads and that the snapshot
// claims nothing of any author beyond them (or beyond what we hold of it
// already). Our own replica is checked by the caller against what we
// wrote.
func (d *Doc) checkHeads(from peer.ID, st *crdt.State, vv crdt.VersionVector, heads [][]byte) error {
	envs := make([]*wire.Envelope, 0, len(heads))
	for _, b := range heads {
		e, err := wire.DecodeEnvelope(b, StoredLimits)
		if err != nil {
			return reject("bad_snapshot", fmt.Errorf("snapshot head: %w", err))
		}
		if e.Doc != d.cfg.Doc {
			return reject("bad_snapshot", fmt.Errorf("snapshot head for document %q", e.Doc))
		}
		if err := d.checker().Check(from, e); err != nil {
			return err
		}
		envs = append(envs, e)
	}
	bound := boundsOf(envs)
	// What we hold of an author needs no proof.
	for _, rep := range st.Context().Replicas() {
		hb := bound[rep]
		bound[rep] = headBound{max(hb.seq, d.st.MaxSeq(rep)), max(hb.dot, d.state.Context().Max(rep))}
	}
	for rep := range vv {
		hb := bound[rep]
		bound[rep] = headBound{max(hb.seq, d.st.MaxSeq(rep)), hb.dot}
	}
	if err := checkClaims(st.Context(), vv, bound, func(rep crdt.ReplicaID) bool { return rep == d.cfg.Self }); err != nil {
		return reject("snapshot_unproven", err)
	}
	return nil
}

// checkClaims reports the first author (other than those skip names) of
// whom a snapshot with context cc and vector vv claims more sequence
// numbers or dots than bound shows.
func checkClaims(cc *crdt.CausalContext, vv crdt.VersionVector, bound map[crdt.ReplicaID]headBound, skip func(crdt.ReplicaID) bool) error {
	check := func(rep crdt.ReplicaID) error {
		if skip(rep) {
			return nil
		}
		hb := bound[rep]
		if seq, dot := vv[rep], cc.Max(rep); seq > hb.seq || dot > hb.dot {
			return fmt.Errorf("snapshot claims seq %d and dot %d of %s, its heads show %d and %d", seq, dot, rep, hb.seq, hb.dot)
		}
		return nil
	}
	for _, rep := range cc.Replicas() {
		if err := check(rep); err != nil {
			return err
		}
	}
	for rep := range vv {
		if err := check(rep); err != nil {
			return err
		}
	}
	return nil
}
