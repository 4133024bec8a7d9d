package wirespec

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strconv"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// Vector is one test vector: bytes the code produces from fixed inputs.
type Vector struct {
	ID string
	// Kind is the WIRE.md block kind holding it: specdoc.KindHex or
	// specdoc.KindText.
	Kind  string
	Bytes []byte
	// CBOR tells whether Bytes are one CBOR data item (WIRE.md then shows
	// its diagnostic notation too, in a cbor-diag block of the same id).
	CBOR bool
	// Check decodes recorded bytes and compares them with the inputs.
	Check func(b []byte) error
}

// Text kinds of vectors (the others are hex).
const (
	kindHex  = "hex"
	kindText = "text"
)

// Vectors returns every vector built by this package, in WIRE.md order.
func Vectors() ([]Vector, error) {
	in, err := NewInputs()
	if err != nil {
		return nil, err
	}
	var vs []Vector
	add := func(v Vector) { vs = append(vs, v) }
	text := func(id, s string) {
		add(Vector{ID: id, Kind: kindText, Bytes: []byte(s), Check: func(b []byte) error { return same(id, b, []byte(s)) }})
	}

	// Identifiers.
	for _, a := range []struct {
		name string
		au   Author
	}{{"alice", in.Alice}, {"bob", in.Bob}} {
		au := a.au
		text("peer-"+a.name, au.Peer.String())
		add(Vector{ID: "peer-" + a.name + "-bytes", Kind: kindHex, Bytes: []byte(au.Peer), Check: func(b []byte) error {
			return same("peer ID bytes", b, []byte(au.Peer))
		}})
		text("replica-"+a.name, string(au.Replica))
	}
	text("hlc-t0", strconv.FormatUint(uint64(HLC(0, 0)), 10))
	text("hlc-b1", strconv.FormatUint(uint64(HLC(1500, 1)), 10))

	// CRDT payloads.
	addDelta := func(id string, d *crdt.State, origin crdt.ReplicaID) {
		b := crdt.EncodeDelta(d, origin)
		add(Vector{ID: id, Kind: kindHex, Bytes: b, CBOR: true, Check: func(rec []byte) error {
			if crdt.IsCompactDelta(rec) {
				return fmt.Errorf("%s: not in the classic form", id)
			}
			got, err := crdt.DecodeDelta(rec, origin, crdt.DeltaLimits())
			if err != nil {
				return err
			}
			return sameState(id, got, d, func(s *crdt.State) []byte { return crdt.EncodeDelta(s, origin) })
		}})
	}
	addState := func(id string, s *crdt.State) {
		text("view-"+id, string(s.JSON()))
		b := crdt.Encode(s)
		add(Vector{ID: id, Kind: kindHex, Bytes: b, CBOR: true, Check: func(rec []byte) error {
			got, err := crdt.Decode(rec, crdt.DefaultLimits())
			if err != nil {
				return err
			}
			return sameState(id, got, s, crdt.Encode)
		}})
	}
	a, bob := in.Alice.Replica, in.Bob.Replica
	addDelta("delta-a1", in.DeltaA1, a)
	addDelta("delta-b1", in.DeltaB1, bob)
	addDelta("delta-a23", in.AggA23, a)
	addDelta("delta-delete-map", in.DeleteMap, a)
	addState("state-register", in.Register)
	addState("state-counter", in.Counter)
	addState("state-set", in.Set)
	addState("state-map", in.Map)
	addState("state-removal", in.Removal)
	addState("state-full", in.Full)
	sq := in.Seqs
	addState("state-text", sq.Text)
	addState("state-list", sq.List)
	addDelta("delta-splice", sq.Keystroke, a)
	addDelta("delta-splice-replace", sq.Replace, a)
	addDelta("delta-seq-delete", sq.Delete, bob)
	// The compact splice form of the keystroke, the replace, a backspace
	// and a list insert.
	addCompact := func(id string, d *crdt.State, origin crdt.ReplicaID) error {
		b, ok := crdt.EncodeDeltaCompact(d, origin)
		if !ok {
			return fmt.Errorf("%s: no compact form", id)
		}
		add(Vector{ID: id, Kind: kindHex, Bytes: b, CBOR: true, Check: func(rec []byte) error {
			if !crdt.IsCompactDelta(rec) {
				return fmt.Errorf("%s: not in the compact form", id)
			}
			got, err := crdt.DecodeDelta(rec, origin, crdt.DeltaLimits())
			if err != nil {
				return err
			}
			// The state the classic form gives, in both forms.
			if err := sameState(id, got, d, func(s *crdt.State) []byte { return crdt.EncodeDelta(s, origin) }); err != nil {
				return err
			}
			return sameState(id, got, d, func(s *crdt.State) []byte { c, _ := crdt.EncodeDeltaCompact(s, origin); return c })
		}})
		return nil
	}
	for _, c := range []struct {
		id string
		d  *crdt.State
	}{{"compact-splice", sq.Keystroke}, {"compact-splice-replace", sq.Replace}, {"compact-splice-delete", sq.Backspace}, {"compact-splice-list", sq.Tea}} {
		if err := addCompact(c.id, c.d, a); err != nil {
			return nil, err
		}
	}

	// Envelopes.
	envVec := func(id string, e *wire.Envelope) error {
		b, err := wire.EncodeEnvelope(e)
		if err != nil {
			return err
		}
		add(Vector{ID: id, Kind: kindHex, Bytes: b, CBOR: true, Check: func(rec []byte) error {
			got, err := wire.DecodeEnvelope(rec, wire.DefaultLimits())
			if err != nil {
				return err
			}
			return sameEnvelope(id, got, e)
		}})
		return nil
	}
	if err := envVec("envelope-a1", in.EnvA1); err != nil {
		return nil, err
	}
	signed, err := SigningInput(in.EnvA1)
	if err != nil {
		return nil, err
	}
	pub := ed25519PublicKey(in.Alice)
	add(Vector{ID: "envelope-a1-signed", Kind: kindHex, Bytes: signed, Check: func(rec []byte) error {
		if !ed25519.Verify(pub, rec, in.EnvA1.Sig) {
			return fmt.Errorf("envelope-a1-signed: the envelope's signature does not cover these bytes")
		}
		return nil
	}})
	if err := envVec("envelope-a23", in.EnvA23); err != nil {
		return nil, err
	}
	if err := envVec("envelope-b1", in.EnvB1); err != nil {
		return nil, err
	}
	if err := envVec("envelope-seq", sq.EnvKeystroke); err != nil {
		return nil, err
	}
	if err := envVec("envelope-compact", sq.EnvBackspace); err != nil {
		return nil, err
	}
	signedSeq, err := SigningInput(sq.EnvKeystroke)
	if err != nil {
		return nil, err
	}
	add(Vector{ID: "envelope-seq-signed", Kind: kindHex, Bytes: signedSeq, Check: func(rec []byte) error {
		if !ed25519.Verify(pub, rec, sq.EnvKeystroke.Sig) {
			return fmt.Errorf("envelope-seq-signed: the envelope's signature does not cover these bytes")
		}
		return nil
	}})
	marker := wire.EncodeMarker(3)
	add(Vector{ID: "marker", Kind: kindHex, Bytes: marker, CBOR: true, Check: func(rec []byte) error {
		if at, ok := wire.DecodeMarker(rec); !ok || at != 3 {
			return fmt.Errorf("marker: decodes to %d, %v; want 3", at, ok)
		}
		return nil
	}})

	// Gossip messages.
	batch := &wire.DeltaBatch{Envelopes: []wire.Envelope{*in.EnvA1, *in.EnvB1}}
	bb, err := wire.EncodeBatch(batch)
	if err != nil {
		return nil, err
	}
	add(Vector{ID: "batch", Kind: kindHex, Bytes: bb, CBOR: true, Check: func(rec []byte) error {
		got, err := wire.DecodeBatch(rec, wire.DefaultLimits())
		if err != nil {
			return err
		}
		if len(got.Envelopes) != len(batch.Envelopes) {
			return fmt.Errorf("batch: %d envelopes, want %d", len(got.Envelopes), len(batch.Envelopes))
		}
		for i := range got.Envelopes {
			if err := sameEnvelope(fmt.Sprintf("batch envelope %d", i), &got.Envelopes[i], &batch.Envelopes[i]); err != nil {
				return err
			}
		}
		return nil
	}})
	sum := &wire.Summary{Doc: Doc, Origin: a, VV: in.VV(), Beacon: Beacon}
	sb, err := wire.EncodeSummary(sum)
	if err != nil {
		return nil, err
	}
	add(Vector{ID: "summary", Kind: kindHex, Bytes: sb, CBOR: true, Check: func(rec []byte) error {
		got, err := wire.DecodeSummary(rec, wire.DefaultLimits())
		if err != nil {
			return err
		}
		if got.Doc != sum.Doc || got.Origin != sum.Origin || got.Beacon != sum.Beacon || !got.VV.Equal(sum.VV) {
			return fmt.Errorf("summary: decodes to %+v, want %+v", got, sum)
		}
		return nil
	}})

	// Sync messages.
	msgs, err := in.SyncMsgs()
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		m := m
		b, err := wire.EncodeSyncMsg(m.Msg)
		if err != nil {
			return nil, err
		}
		add(Vector{ID: m.ID, Kind: kindHex, Bytes: b, CBOR: true, Check: func(rec []byte) error {
			got, err := wire.DecodeSyncMsg(rec, wire.DefaultSyncLimits())
			if err != nil {
				return err
			}
			return SameSyncMsg(m.ID, got, m.Msg)
		}})
		if m.ID != "sync-deltas" {
			continue
		}
		// Its column form (§10.7): the encoder's choices are recorded,
		// the decoder must rebuild the message byte for byte.
		cols, err := wire.EncodeColumns(b)
		if err != nil {
			return nil, err
		}
		add(Vector{ID: "columns-deltas", Kind: kindHex, Bytes: cols, Check: func(rec []byte) error {
			got, err := wire.DecodeColumns(rec, len(b))
			if err != nil {
				return err
			}
			return same("columns-deltas rebuilt", got, b)
		}})
	}

	// Presence.
	pvs, err := in.presenceVectors()
	if err != nil {
		return nil, err
	}
	return append(vs, pvs...), nil
}

// NamedMsg is a sync message vector's id and message.
type NamedMsg struct {
	ID  string
	Msg *wire.SyncMsg
}

// SyncMsgs returns the sync message vectors: Bob's Hello to Alice,
// Alice's Hello refusing snapshots, a Deltas message relaying Alice's
// envelopes, a Snapshot of the whole scenario with its heads, and a Done.
func (in *Inputs) SyncMsgs() ([]NamedMsg, error) {
	a, b := in.Alice.Replica, in.Bob.Replica
	encode := func(es ...*wire.Envelope) ([][]byte, error) {
		var out [][]byte
		for _, e := range es {
			x, err := wire.EncodeEnvelope(e)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	}
	deltas, err := encode(in.EnvA1, in.EnvA23)
	if err != nil {
		return nil, err
	}
	heads := []*wire.Envelope{in.EnvA23, in.EnvB1} // each author's highest seq
	slices.SortFunc(heads, func(x, y *wire.Envelope) int {
		if x.Origin != y.Origin {
			if x.Origin < y.Origin {
				return -1
			}
			return 1
		}
		return int(x.Seq) - int(y.Seq)
	})
	headBytes, err := encode(heads...)
	if err != nil {
		return nil, err
	}
	return []NamedMsg{
		{"sync-hello", &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: Doc, VV: crdt.VersionVector{a: 1, b: 1}}},
		{"sync-hello-wantstate", &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: Doc, VV: crdt.VersionVector{a: 3}, WantState: true}},
		{"sync-hello-nosnapshot", &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: Doc, VV: crdt.VersionVector{a: 3}, NoSnapshot: true}},
		{"sync-hello-features", &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: Doc, VV: crdt.VersionVector{a: 3}, Features: wire.FeatureAggregates}},
		{"sync-hello-sequences", &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: SeqDoc, VV: crdt.VersionVector{a: 2}, Features: wire.FeatureAggregates | wire.FeatureSequences}},
		{"sync-hello-compact", &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: SeqDoc, VV: crdt.VersionVector{a: 3}, Features: wire.FeatureAggregates | wire.FeatureSequences | wire.FeatureCompactSplice}},
		{"sync-hello-columns", &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: SeqDoc, VV: crdt.VersionVector{a: 3}, Features: wire.SupportedFeatures}},
		{"sync-deltas", &wire.SyncMsg{Type: wire.TypeSyncDeltas, Envelopes: deltas}},
		{"sync-snapshot", &wire.SyncMsg{Type: wire.TypeSyncSnapshot, VV: in.VV(), State: crdt.Encode(in.Full), Heads: headBytes}},
		{"sync-done", &wire.SyncMsg{Type: wire.TypeSyncDone, VV: in.VV()}},
	}, nil
}

// SigDomain is the prefix of the bytes an author signs (WIRE.md,
// "Signatures").
const SigDomain = "concord/delta-envelope/v1\x00"

// SigningInput returns what e's signature covers, built from the
// specification rather than from wire's unexported code: SigDomain, then
// the canonical encoding of e without field 7.
func SigningInput(e *wire.Envelope) ([]byte, error) {
	unsigned := *e
	unsigned.Sig = nil
	b, err := wire.EncodeEnvelope(&unsigned)
	if err != nil {
		return nil, err
	}
	return append([]byte(SigDomain), b...), nil
}

func ed25519PublicKey(a Author) ed25519.PublicKey {
	raw, err := a.Priv.GetPublic().Raw()
	if err != nil {
		panic(err) // an Ed25519 key always has raw bytes
	}
	return ed25519.PublicKey(raw)
}

func same(what string, got, want []byte) error {
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: got %x, want %x", what, got, want)
	}
	return nil
}

// sameState compares a decoded state with the input it was encoded from:
// the same JSON view, causal context and encoding.
func sameState(id string, got, want *crdt.State, enc func(*crdt.State) []byte) error {
	switch {
	case string(got.JSON()) != string(want.JSON()):
		return fmt.Errorf("%s: view %s, want %s", id, got.JSON(), want.JSON())
	case !got.Context().VV().Equal(want.Context().VV()) || got.Context().CloudSize() != want.Context().CloudSize():
		return fmt.Errorf("%s: causal context differs", id)
	case got.Dots() != want.Dots():
		return fmt.Errorf("%s: %d dots, want %d", id, got.Dots(), want.Dots())
	}
	return same(id+" re-encoded", enc(got), enc(want))
}

// sameEnvelope compares a decoded envelope with its input and verifies it.
func sameEnvelope(id string, got, want *wire.Envelope) error {
	if got.Doc != want.Doc || got.Origin != want.Origin || got.Seq != want.Seq || got.Last != want.Last ||
		got.HLC != want.HLC || got.Dot != want.Dot || got.Features != want.Features || !bytes.Equal(got.Payload, want.Payload) || !bytes.Equal(got.Sig, want.Sig) {
		return fmt.Errorf("%s: decodes to %+v, want %+v", id, got, want)
	}
	if err := got.Verify(); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	return nil
}

// SameSyncMsg compares two sync messages field by field.
func SameSyncMsg(id string, got, want *wire.SyncMsg) error {
	eq := func(x, y [][]byte) bool {
		return slices.EqualFunc(x, y, func(p, q []byte) bool { return bytes.Equal(p, q) })
	}
	if got.Type != want.Type || got.Doc != want.Doc || !got.VV.Equal(want.VV) || got.NoSnapshot != want.NoSnapshot || got.WantState != want.WantState || got.Features != want.Features ||
		!bytes.Equal(got.State, want.State) || !eq(got.Envelopes, want.Envelopes) || !eq(got.Heads, want.Heads) {
		return fmt.Errorf("%s: decodes to %+v, want %+v", id, got, want)
	}
	return nil
}
