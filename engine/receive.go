package engine

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// RejectError is a refused envelope or snapshot with its metrics reason.
type RejectError struct {
	reason string
	err    error
}

func (e *RejectError) Error() string  { return e.reason + ": " + e.err.Error() }
func (e *RejectError) Unwrap() error  { return e.err }
func (e *RejectError) Reason() string { return e.reason }

func reject(reason string, err error) error { return &RejectError{reason, err} }

// VerifiedCache remembers envelopes whose signature was checked, by a hash
// of their full encoding. golang-lru's Cache (safe for concurrent use) and
// simplelru's LRU both implement it.
type VerifiedCache interface {
	Contains(key [32]byte) bool
	Add(key [32]byte, value struct{}) bool
}

// Checker checks an envelope's document, author, allowlist and signature.
// It is safe for concurrent use when its Cache is: gossip validates on
// many goroutines, outside the engine.
type Checker struct {
	Doc         string
	Writers     map[peer.ID]bool // nil: anyone
	TrustAuthor bool
	Cache       VerifiedCache
}

// Check verifies e as received from peer from. With TrustAuthor, an
// envelope that from (the peer at the other end of an authenticated
// connection) authored itself skips the signature check — the Noise/TLS
// handshake already proved who sent it; third parties it is relayed to
// still check it. Errors are *RejectError.
func (c *Checker) Check(from peer.ID, e *wire.Envelope) error {
	if e.Doc != c.Doc {
		return reject("wrong_doc", fmt.Errorf("envelope for %q", e.Doc))
	}
	p, err := wire.PeerOf(e.Origin)
	if err != nil {
		return reject("bad_replica", err)
	}
	if c.Writers != nil && !c.Writers[p] {
		return reject("not_writer", fmt.Errorf("%s is not an allowed writer of %q", p, c.Doc))
	}
	if p == from && c.TrustAuthor {
		return nil
	}
	h, hashed := envelopeHash(e) // encoded once for both cache lookups
	if hashed && c.Cache.Contains(h) {
		return nil
	}
	if err := e.Verify(); err != nil {
		return reject("bad_signature", err)
	}
	if hashed {
		c.Cache.Add(h, struct{}{})
	}
	return nil
}

// envelopeHash identifies an envelope by the hash of its full encoding
// (signature included); false if it does not encode.
func envelopeHash(e *wire.Envelope) ([32]byte, bool) {
	b, err := wire.EncodeEnvelope(e)
	if err != nil {
		return [32]byte{}, false
	}
	return sha256.Sum256(b), true
}

func (d *Doc) checker() *Checker {
	return &Checker{Doc: d.cfg.Doc, Writers: d.cfg.Writers, TrustAuthor: d.cfg.TrustAuthor, Cache: d.verified}
}

// Receive merges envelopes received from peer from at time now and asks
// for them to be stored; the change is announced once they are durable.
// With gossip, they come validated from gossip (Checker.Check ran): they
// are not checked again, their delay is observed, and a gap they show (a
// delta whose predecessor we do not hold) is pulled after a grace period.
// Otherwise (the sync stream) each is checked here. Refused envelopes are
// counted (Ready.Rejects), not returned. It returns the Append holding
// them (0: nothing to store).
func (d *Doc) Receive(now time.Time, from peer.ID, envs []*wire.Envelope, gossip bool) uint64 {
	type item struct {
		env   *wire.Envelope
		delta *crdt.State
		data  []byte
		fork  *wire.Envelope // the log's side, when env is the other side of a fork
		// refused: the state could not hold back all of its sequence
		// changes (past their bound) and did not claim those; the envelope
		// is not stored, so it is not acknowledged and comes again.
		refused bool
	}
	items := make([]item, 0, len(envs))
	var forks []item
	claimed := map[crdt.Dot]bool{} // seqs taken by earlier items of this batch
	chk := d.checker()
	for _, e := range envs {
		var fork *wire.Envelope
		if d.holdsAll(e, claimed) {
			if fork = d.newFork(e); fork == nil {
				continue
			}
		}
		if !gossip || fork != nil {
			if err := chk.Check(from, e); err != nil {
				d.reject(err.(*RejectError).reason)
				continue
			}
		}
		if e.Features&^d.features() != 0 {
			// A feature this document does not speak (it was told so
			// through Features, as a peer of an older version would be).
			d.reject("bad_features")
			continue
		}
		delta, err := crdt.DecodeDelta(e.Payload, e.Origin, payloadLimits)
		if err != nil {
			d.reject("bad_payload")
			continue
		}
		if delta.Foreign(e.Origin) {
			// Values or sequence elements dotted as another replica: no
			// honest writer signs one (WIRE.md §14).
			d.reject("foreign_dots")
			continue
		}
		if delta.HasSequences() != e.Features.Has(wire.FeatureSequences) || crdt.IsCompactDelta(e.Payload) != e.Features.Has(wire.FeatureCompactSplice) {
			// The flags are what keep sequences, and the compact form,
			// from peers that cannot read them: they must say what the
			// payload holds and how.
			d.reject("bad_features")
			continue
		}
		if e.Dot != 0 && delta.Context().Max(e.Origin) > e.Dot {
			// Dot is the author's signed dot count, which snapshot heads
			// rely on (heads.go).
			d.reject("bad_dot_count")
			continue
		}
		if fork != nil {
			forks = append(forks, item{env: e, delta: delta, fork: fork})
			continue
		}
		data, err := wire.EncodeEnvelope(e)
		if err != nil {
			d.reject("malformed")
			continue
		}
		for seq := e.Seq; seq <= e.LastSeq(); seq++ {
			claimed[crdt.Dot{Replica: e.Origin, Counter: seq}] = true
		}
		items = append(items, item{env: e, delta: delta, data: data})
	}
	for _, f := range forks {
		d.ingestFork(from, f.env, f.fork, f.delta)
	}
	if len(items) == 0 {
		return 0
	}
	var paths [][]string
	var patches []crdt.SeqPatch
	var maxHLC crdt.HLC
	for i := range items {
		it := &items[i]
		refused := d.state.SeqRefused()
		if d.track {
			ps, es := d.state.MergeEdits(it.delta)
			paths, patches = append(paths, ps...), append(patches, es...)
		} else {
			d.state.Merge(it.delta)
		}
		if d.state.SeqRefused() != refused {
			it.refused = true
			d.drop("seq_pending", "full")
		}
		if h := crdt.HLC(it.env.HLC); h > maxHLC {
			maxHLC = h
		}
	}
	if ceiling := crdt.MakeHLC(now.Add(maxClockLead).UnixMilli(), 0); maxHLC > ceiling {
		maxHLC = ceiling
	}
	d.clock = d.clock.Observe(maxHLC, now.UnixMilli())
	entries := make([]store.Entry, 0, len(items))
	placed := map[crdt.Dot]bool{}
	for _, it := range items {
		if it.refused {
			continue
		}
		es := d.entriesFor(it.env, it.data, placed)
		if len(es) > 0 {
			d.noteClaims(it.delta, it.env.Origin, es[0].Seq, it.env.LastSeq()) // es[0] holds the envelope
		}
		entries = append(entries, es...)
	}
	if gossip {
		// Propagation latency is a gossip figure: deltas caught up by sync
		// were written long before and would only blur it.
		for _, it := range items {
			d.rd.Propagation = append(d.rd.Propagation, now.Sub(time.UnixMilli(crdt.HLC(it.env.HLC).Physical())))
		}
		for _, it := range items {
			if e := it.env; e.Seq > 1 && !d.holds(crdt.Dot{Replica: e.Origin, Counter: e.Seq - 1}) {
				d.noteGap(now, from, e.Origin, e.Seq)
			}
		}
	}
	d.noteSeqLost()
	change := d.newChange(Change{Origin: items[0].env.Origin, Peer: from, Paths: paths, Patches: patches})
	if len(entries) == 0 {
		d.settle(change)
		return 0
	}
	b := d.append(entries, false)
	b.changes = []*pendingChange{change}
	d.step()
	return b.id
}

// Holds reports whether every sequence number e covers is held, durably
// or in an append not yet reported.
func (d *Doc) Holds(e *wire.Envelope) bool { return d.holdsAll(e, nil) }

// holdsAll reports whether every sequence number e covers is held, or
// claimed by an earlier envelope of the same batch.
func (d *Doc) holdsAll(e *wire.Envelope, claimed map[crdt.Dot]bool) bool {
	for seq := e.Seq; seq <= e.LastSeq(); seq++ {
		if dt := (crdt.Dot{Replica: e.Origin, Counter: seq}); !claimed[dt] && !d.holds(dt) {
			return false
		}
	}
	return true
}

// holds reports whether the log holds dt's slot or an unreported append
// fills it.
func (d *Doc) holds(dt crdt.Dot) bool {
	_, ok := d.unstable[dt]
	return ok || d.st.Has(dt.Replica, dt.Counter)
}

// entriesFor returns the log entries that store e: the envelope itself at
// its seq, or, for an aggregate, the envelope at the highest seq of its
// range not yet held and markers pointing there at the other unheld ones.
// Seqs already held, or placed by earlier envelopes of the batch (placed,
// updated here), are left alone.
func (d *Doc) entriesFor(e *wire.Envelope, data []byte, placed map[crdt.Dot]bool) []store.Entry {
	free := func(seq uint64) bool {
		dt := crdt.Dot{Replica: e.Origin, Counter: seq}
		return !placed[dt] && !d.holds(dt)
	}
	take := func(seq uint64) { placed[crdt.Dot{Replica: e.Origin, Counter: seq}] = true }
	if e.Last == 0 {
		if !free(e.Seq) {
			return nil
		}
		take(e.Seq)
		return []store.Entry{{Replica: e.Origin, Seq: e.Seq, Data: data}}
	}
	var slot uint64
	for seq := e.Last; seq >= e.Seq; seq-- {
		if free(seq) {
			slot = seq
			break
		}
	}
	if slot == 0 {
		return nil
	}
	take(slot)
	out := []store.Entry{{Replica: e.Origin, Seq: slot, Data: data}}
	marker := wire.EncodeMarker(slot)
	for seq := e.Seq; seq <= e.Last; seq++ {
		if free(seq) {
			take(seq)
			out = append(out, store.Entry{Replica: e.Origin, Seq: seq, Data: marker})
		}
	}
	return out
}
