package wire

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestAggregateEnvelope(t *testing.T) {
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(priv)
	e := &Envelope{Doc: "d", Origin: ReplicaFor(id, 7), Seq: 3, Last: 9, HLC: 1, Payload: []byte{0xa0}}
	if err := SignEnvelope(priv, e); err != nil {
		t.Fatal(err)
	}
	b, err := EncodeEnvelope(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEnvelope(b, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got.Last != 9 || got.LastSeq() != 9 || got.Verify() != nil {
		t.Fatalf("aggregate round trip: %+v", got)
	}
	// The range is signed: widening it breaks the signature.
	got.Last = 10
	if err := got.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("widened aggregate verified: %v", err)
	}
	// Last ≤ Seq is malformed.
	bad := *e
	bad.Last = 3
	bb, _ := EncodeEnvelope(&bad)
	if _, err := DecodeEnvelope(bb, DefaultLimits()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Last == Seq accepted: %v", err)
	}
	single := &Envelope{Seq: 5}
	if single.LastSeq() != 5 {
		t.Fatal("single LastSeq")
	}
}

func TestMarker(t *testing.T) {
	m := EncodeMarker(42)
	if at, ok := DecodeMarker(m); !ok || at != 42 {
		t.Fatalf("marker round trip: %d %v", at, ok)
	}
	for _, b := range [][]byte{nil, {0xa3}, {0xa0}, EncodeMarker(42)[:3]} {
		if _, ok := DecodeMarker(b); ok {
			t.Fatalf("%x taken for a marker", b)
		}
	}
	e := &Envelope{Doc: "d", Origin: "x", Seq: 1}
	b, _ := EncodeEnvelope(e)
	if _, ok := DecodeMarker(b); ok {
		t.Fatal("an envelope taken for a marker")
	}
}

func TestAggregateRunCapped(t *testing.T) {
	priv, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(priv)
	e := &Envelope{Doc: "d", Origin: ReplicaFor(id, 1), Seq: 1, Last: 1 << 40, Payload: []byte{0xa0}}
	if err := SignEnvelope(priv, e); err != nil {
		t.Fatal(err)
	}
	b, _ := EncodeEnvelope(e)
	if _, err := DecodeEnvelope(b, DefaultLimits()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("aggregate of 2^40 deltas: %v", err)
	}
}
