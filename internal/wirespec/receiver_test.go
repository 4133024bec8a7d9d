package wirespec

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/wire"
)

// newReceiver returns the engine of a third replica, Carol (seed 0x03),
// over an in-memory log.
func newReceiver(t *testing.T) (*engine.Doc, *engine.MemoryLog) {
	t.Helper()
	carol, err := NewAuthor(0x03, 0x7)
	if err != nil {
		t.Fatal(err)
	}
	log := engine.NewMemoryLog()
	d, _, err := engine.New(engine.Config{Doc: Doc, Self: carol.Replica, SelfPeer: carol.Peer, Key: carol.Priv, Storage: log})
	if err != nil {
		t.Fatal(err)
	}
	return d, log
}

// settle applies the receiver's Readys until it has nothing more to do
// and returns the reasons of what it refused.
func settle(d *engine.Doc, log *engine.MemoryLog) []string {
	var rejects []string
	for i := 0; i < 16; i++ {
		rd := d.Ready()
		rejects = append(rejects, rd.Rejects...)
		if len(rd.Appends) == 0 && rd.Compact == nil && rd.AckUpTo == 0 && len(rd.Forks) == 0 {
			break
		}
		log.Apply(d, rd)
	}
	return rejects
}

// TestSpecReceiverAcceptsVectors feeds the envelopes of the vectors to a real
// engine (with every check of the sync path) and their snapshot to
// another: both end with the scenario's document, nothing refused. A
// snapshot claiming one more of Alice's deltas than its heads show is
// refused.
func TestSpecReceiverAcceptsVectors(t *testing.T) {
	in, err := NewInputs()
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(T0 + 10_000)
	d, log := newReceiver(t)
	d.Receive(now, in.Bob.Peer, []*wire.Envelope{in.EnvA1, in.EnvB1, in.EnvA23}, false)
	if rj := settle(d, log); len(rj) > 0 {
		t.Fatalf("envelopes refused: %v", rj)
	}
	if got, want := d.State().JSON(), in.Full.JSON(); !bytes.Equal(got, want) {
		t.Fatalf("after the envelopes: %s, want %s", got, want)
	}
	if !d.Version().Equal(in.VV()) {
		t.Fatalf("version %v, want %v", d.Version(), in.VV())
	}

	msgs, err := in.SyncMsgs()
	if err != nil {
		t.Fatal(err)
	}
	var snap *wire.SyncMsg
	for _, m := range msgs {
		if m.Msg.Type == wire.TypeSyncSnapshot {
			snap = m.Msg
		}
	}
	d, log = newReceiver(t)
	if err := d.ReceiveSnapshot(in.Bob.Peer, wire.Snapshot{State: snap.State, VV: snap.VV, Heads: snap.Heads}, 0); err != nil {
		t.Fatalf("snapshot refused: %v", err)
	}
	if rj := settle(d, log); len(rj) > 0 {
		t.Fatalf("snapshot refused: %v", rj)
	}
	if got, want := d.State().JSON(), in.Full.JSON(); !bytes.Equal(got, want) {
		t.Fatalf("after the snapshot: %s, want %s", got, want)
	}

	forged := in.VV()
	forged[in.Alice.Replica] = 4
	d, _ = newReceiver(t)
	err = d.ReceiveSnapshot(in.Bob.Peer, wire.Snapshot{State: snap.State, VV: forged, Heads: snap.Heads}, 0)
	var rj interface{ Reason() string }
	if !errors.As(err, &rj) || rj.Reason() != "snapshot_unproven" {
		t.Fatalf("a snapshot claiming Alice's seq 4: %v, want snapshot_unproven", err)
	}
}

// TestSpecAggregateIsTheEngines checks that the aggregate vector is what the
// engine signs for Alice's run of seqs 2 and 3.
func TestSpecAggregateIsTheEngines(t *testing.T) {
	in, err := NewInputs()
	if err != nil {
		t.Fatal(err)
	}
	a := in.Alice.Replica
	e2 := &wire.Envelope{Doc: Doc, Origin: a, Seq: 2, HLC: uint64(HLC(1000, 0)), Dot: 3, Payload: crdt.EncodeDelta(in.DeltaA2, a)}
	e3 := &wire.Envelope{Doc: Doc, Origin: a, Seq: 3, HLC: uint64(HLC(2000, 0)), Dot: 4, Payload: crdt.EncodeDelta(in.DeltaA3, a)}
	for _, e := range []*wire.Envelope{e2, e3} {
		if err := wire.SignEnvelope(in.Alice.Priv, e); err != nil {
			t.Fatal(err)
		}
	}
	agg, err := engine.Coalesce(Doc, a, in.Alice.Priv, []*wire.Envelope{e2, e3})
	if err != nil || agg == nil {
		t.Fatalf("Coalesce: %v, %v", agg, err)
	}
	got, _ := wire.EncodeEnvelope(agg)
	want, _ := wire.EncodeEnvelope(in.EnvA23)
	if !bytes.Equal(got, want) {
		t.Fatalf("the engine's aggregate differs:\n engine %x\n vector %x", got, want)
	}
}

// TestSpecReceiverSequences feeds Alice's text envelopes to a real
// engine: it ends with her text, the compact backspace included. The keystroke signed without its f (or
// with f on a payload holding no sequence) is refused as bad_features, and
// an envelope whose f holds a bit this version does not speak does not
// decode (ErrVersion).
func TestSpecReceiverSequences(t *testing.T) {
	in, err := NewInputs()
	if err != nil {
		t.Fatal(err)
	}
	sq := in.Seqs
	now := time.UnixMilli(T0 + 10_000)
	recv := func(envs ...*wire.Envelope) (*engine.Doc, []string) {
		carol, err := NewAuthor(0x03, 0x7)
		if err != nil {
			t.Fatal(err)
		}
		log := engine.NewMemoryLog()
		d, _, err := engine.New(engine.Config{Doc: SeqDoc, Self: carol.Replica, SelfPeer: carol.Peer, Key: carol.Priv, Storage: log})
		if err != nil {
			t.Fatal(err)
		}
		d.Receive(now, in.Bob.Peer, envs, false)
		return d, settle(d, log)
	}
	d, rj := recv(sq.EnvCreate, sq.EnvKeystroke)
	if len(rj) > 0 {
		t.Fatalf("sequence envelopes refused: %v", rj)
	}
	if got, ok := d.State().Text([]string{"note"}); !ok || got != "hello!" {
		t.Fatalf("after the envelopes: %q, %v; want \"hello!\"", got, ok)
	}

	resign := func(e *wire.Envelope, f wire.Features) *wire.Envelope {
		c := *e
		c.Doc, c.Features = SeqDoc, f // Alice's seq 1 of todo, as if of notes
		if err := wire.SignEnvelope(in.Alice.Priv, &c); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	if _, rj := recv(sq.EnvCreate, resign(sq.EnvKeystroke, 0)); len(rj) != 1 || rj[0] != "bad_features" {
		t.Fatalf("a keystroke without f: refused as %v, want [bad_features]", rj)
	}
	if _, rj := recv(resign(in.EnvA1, wire.FeatureSequences)); len(rj) != 1 || rj[0] != "bad_features" {
		t.Fatalf("f on a payload without sequences: refused as %v, want [bad_features]", rj)
	}
	// The backspace, compact: taken after the keystroke; refused when its
	// f does not say compact, or says it of a classic payload.
	d, rj = recv(sq.EnvCreate, sq.EnvKeystroke, sq.EnvBackspace)
	if got, _ := d.State().Text([]string{"note"}); len(rj) > 0 || got != "hello" {
		t.Fatalf("after the compact backspace: %q, refused %v; want \"hello\"", got, rj)
	}
	if _, rj := recv(sq.EnvCreate, sq.EnvKeystroke, resign(sq.EnvBackspace, wire.FeatureSequences)); len(rj) != 1 || rj[0] != "bad_features" {
		t.Fatalf("a compact payload without the compact bit: refused as %v, want [bad_features]", rj)
	}
	if _, rj := recv(sq.EnvCreate, resign(sq.EnvKeystroke, wire.FeatureSequences|wire.FeatureCompactSplice)); len(rj) != 1 || rj[0] != "bad_features" {
		t.Fatalf("the compact bit on a classic payload: refused as %v, want [bad_features]", rj)
	}
	// A receiver that does not speak the form (as one of an earlier
	// version) refuses it.
	carol, err := NewAuthor(0x03, 0x7)
	if err != nil {
		t.Fatal(err)
	}
	old := engine.NewMemoryLog()
	od, _, err := engine.New(engine.Config{Doc: SeqDoc, Self: carol.Replica, SelfPeer: carol.Peer, Key: carol.Priv, Storage: old, Features: wire.FeatureAggregates | wire.FeatureSequences})
	if err != nil {
		t.Fatal(err)
	}
	od.Receive(now, in.Bob.Peer, []*wire.Envelope{sq.EnvCreate, sq.EnvKeystroke, sq.EnvBackspace}, false)
	if rj := settle(od, old); len(rj) != 1 || rj[0] != "bad_features" {
		t.Fatalf("a receiver without the compact form: refused %v, want [bad_features]", rj)
	}
	odd := *sq.EnvKeystroke
	odd.Features |= 1 << 40
	b, err := wire.EncodeEnvelope(&odd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wire.DecodeEnvelope(b, wire.DefaultLimits()); !errors.Is(err, wire.ErrVersion) {
		t.Fatalf("f with an unknown bit: %v, want ErrVersion", err)
	}
}
