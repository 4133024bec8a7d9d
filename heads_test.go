package concord

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/wire"
)

// writer is an author outside any node, for hand-made envelopes.
type writer struct {
	key    crypto.PrivKey
	id     peer.ID
	origin crdt.ReplicaID
	state  *crdt.State
	seq    uint64
}

func newWriter(t *testing.T) *writer {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &writer{key: key, id: id, origin: wire.ReplicaFor(id, 1), state: crdt.New()}
}

// write applies ops and returns the signed envelope of their delta.
func (w *writer) write(t *testing.T, doc string, ops ...crdt.Op) (*wire.Envelope, *crdt.State) {
	t.Helper()
	d, err := w.state.Apply(w.origin, crdt.MakeHLC(time.Now().UnixMilli(), 0), ops...)
	if err != nil {
		t.Fatal(err)
	}
	w.seq++
	e := &wire.Envelope{Doc: doc, Origin: w.origin, Seq: w.seq, HLC: uint64(crdt.MakeHLC(time.Now().UnixMilli(), 0)),
		Dot: w.state.Context().Max(w.origin), Payload: crdt.EncodeDelta(d, w.origin)}
	if err := wire.SignEnvelope(w.key, e); err != nil {
		t.Fatal(err)
	}
	return e, d
}

func encodeEnvs(t *testing.T, envs ...*wire.Envelope) [][]byte {
	t.Helper()
	var out [][]byte
	for _, e := range envs {
		b, err := wire.EncodeEnvelope(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestSnapshotClaimsCheckedAgainstHeads: a peer serving a snapshot cannot
// claim another writer's sequence numbers or dots beyond what that
// writer's signed heads show — merged, such a claim would delete the
// writer's data and swallow its next writes. An honest snapshot, with its
// heads, is accepted.
func TestSnapshotClaimsCheckedAgainstHeads(t *testing.T) {
	ctx := context.Background()
	n := testNode(t, "")
	d := openDoc(t, n, "heads")
	c := newWriter(t) // the victim
	var cEnvs []*wire.Envelope
	honest := crdt.New()
	for i := range 3 {
		e, delta := c.write(t, "heads", crdt.Set([]string{"c"}, json.RawMessage(`"v`+string(rune('0'+i))+`"`)))
		cEnvs = append(cEnvs, e)
		honest.Merge(delta)
	}
	sender := newWriter(t)

	// Forged: C's dots up to 1000 and its seqs up to 50, with C's real
	// head (seq 3, dot 3).
	forged := honest.Clone()
	forged.Context().AddRange(c.origin, 1, 1000)
	cases := []struct {
		name  string
		state *crdt.State
		vv    crdt.VersionVector
		heads [][]byte
	}{
		{"dots beyond the head", forged, crdt.VersionVector{c.origin: 3}, encodeEnvs(t, cEnvs[2])},
		{"seqs beyond the head", honest, crdt.VersionVector{c.origin: 50}, encodeEnvs(t, cEnvs[2])},
		{"no head", honest, crdt.VersionVector{c.origin: 3}, nil},
	}
	for _, tc := range cases {
		err := d.r.IngestSnapshot(ctx, sender.id, wire.Snapshot{State: crdt.Encode(tc.state), VV: tc.vv, Heads: tc.heads})
		var rej *engine.RejectError
		if !errors.As(err, &rej) || rej.Reason() != "snapshot_unproven" {
			t.Fatalf("%s: err = %v, want snapshot_unproven", tc.name, err)
		}
		if got := string(d.JSON()); got != "{}" {
			t.Fatalf("%s: a refused snapshot changed the document: %s", tc.name, got)
		}
	}
	if got := counterValue(t, n, "concord_messages_rejected_total", map[string]string{"reason": "snapshot_unproven"}); got != 3 {
		t.Fatalf("snapshot_unproven counted %v times, want 3", got)
	}
	// A forged head (not signed by C) proves nothing.
	badHead := *cEnvs[2]
	badHead.Dot = 1000
	if err := d.r.IngestSnapshot(ctx, sender.id, wire.Snapshot{State: crdt.Encode(forged), VV: crdt.VersionVector{c.origin: 3}, Heads: encodeEnvs(t, &badHead)}); err == nil {
		t.Fatal("a snapshot proven by a tampered head was accepted")
	}

	// Honest: accepted, and C's next write is not swallowed.
	if err := d.r.IngestSnapshot(ctx, sender.id, wire.Snapshot{State: crdt.Encode(honest), VV: crdt.VersionVector{c.origin: 3}, Heads: encodeEnvs(t, cEnvs[2])}); err != nil {
		t.Fatalf("honest snapshot refused: %v", err)
	}
	e4, _ := c.write(t, "heads", crdt.Set([]string{"c"}, json.RawMessage(`"v4"`)))
	if err := d.r.Ingest(ctx, c.id, []*wire.Envelope{e4}); err != nil {
		t.Fatal(err)
	}
	if got := string(d.JSON()); got != `{"c":"v4"}` {
		t.Fatalf("after the honest snapshot and C's next write: %s", got)
	}
}

// TestDotCountChecked: an envelope whose payload holds more of its
// author's dots than its signed dot count is refused (snapshot heads rely
// on that count).
func TestDotCountChecked(t *testing.T) {
	n := testNode(t, "")
	d := openDoc(t, n, "dots")
	w := newWriter(t)
	e, _ := w.write(t, "dots", crdt.Set([]string{"a"}, json.RawMessage(`1`)), crdt.Set([]string{"b"}, json.RawMessage(`2`)))
	e.Dot = 1
	if err := wire.SignEnvelope(w.key, e); err != nil {
		t.Fatal(err)
	}
	if err := d.r.Ingest(context.Background(), w.id, []*wire.Envelope{e}); err != nil {
		t.Fatal(err)
	}
	if got := string(d.JSON()); got != "{}" {
		t.Fatalf("envelope with a low dot count applied: %s", got)
	}
	if got := counterValue(t, n, "concord_messages_rejected_total", map[string]string{"reason": "bad_dot_count"}); got != 1 {
		t.Fatalf("bad_dot_count %v, want 1", got)
	}
}

// A snapshot that carries one of our own dots with other content (claiming
// nothing beyond what we hold, so no head is needed) cannot rewrite our
// acknowledged write: a snapshot's writes are unsigned, so a held write is
// never replaced by one.
func TestSnapshotCannotRewriteHeldWrites(t *testing.T) {
	ctx := context.Background()
	n := testNode(t, "")
	d := openDoc(t, n, "rewrite")
	if err := d.Set(ctx, []string{"k"}, "good"); err != nil {
		t.Fatal(err)
	}
	forged := crdt.New()
	if _, err := forged.Apply(n.Replica(), 1, crdt.Set([]string{"k"}, json.RawMessage(`"evil"`))); err != nil {
		t.Fatal(err)
	}
	sender := newWriter(t)
	if err := d.r.IngestSnapshot(ctx, sender.id, wire.Snapshot{State: crdt.Encode(forged), VV: crdt.VersionVector{n.Replica(): 1}}); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if got := string(d.JSON()); got != `{"k":"good"}` {
		t.Fatalf("a snapshot rewrote our write: %s", got)
	}
}
