package wirespec

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// Author is a writer with a fixed key: its Ed25519 seed is 32 bytes of
// Seed.
type Author struct {
	Seed        byte
	Incarnation uint64
	Priv        crypto.PrivKey
	Peer        peer.ID
	Replica     crdt.ReplicaID
}

// NewAuthor derives the author whose Ed25519 seed is 32 bytes of seed.
func NewAuthor(seed byte, incarnation uint64) (Author, error) {
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		return Author{}, fmt.Errorf("wirespec: key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return Author{}, fmt.Errorf("wirespec: peer ID: %w", err)
	}
	return Author{Seed: seed, Incarnation: incarnation, Priv: priv, Peer: id, Replica: wire.ReplicaFor(id, incarnation)}, nil
}

// Fixed inputs of every vector.
const (
	// Doc is the document of every message.
	Doc = "todo"
	// T0 is the physical clock of the first write, in Unix milliseconds
	// (2025-06-15T15:06:40Z).
	T0 int64 = 1_750_000_000_000
	// Beacon numbers the summary vector (a node numbers its beacons from
	// its clock in microseconds).
	Beacon uint64 = 1_750_000_000_000_000
)

// Inputs are the values every vector is built from.
type Inputs struct {
	Alice, Bob Author

	// The message scenario. Alice writes three deltas; Bob, who holds
	// Alice's first, writes one.
	//   A1 (seq 1, T0):        set title "groceries"; add "milk" to items
	//   A2 (seq 2, T0+1s):     inc visits by 2
	//   A3 (seq 3, T0+2s):     inc visits by 3 (her counter dot now holds 5)
	//   B1 (seq 1, T0+1.5s.1): remove "milk" from items; add "eggs"
	DeltaA1, DeltaA2, DeltaA3, DeltaB1 *crdt.State
	// AggA23 is the join of DeltaA2 and DeltaA3 (the payload of the
	// aggregate covering Alice's seqs 2..3).
	AggA23 *crdt.State
	// EnvA1 is Alice's seq 1, EnvA23 her aggregate of seqs 2..3, EnvB1
	// Bob's seq 1; all signed.
	EnvA1, EnvA23, EnvB1 *wire.Envelope
	// Full is the document holding all four deltas (the snapshot's state).
	Full *crdt.State

	// One state per CRDT kind, each built by its own ops (see states.go).
	Register, Counter, Set, Map, Removal *crdt.State
	// DeleteMap is the delta of deleting ["settings","font"] from Map.
	DeleteMap *crdt.State

	// Seqs are the texts and lists (see seqs.go).
	Seqs Seqs
}

// HLC returns the timestamp of physical time T0+ms with logical counter l.
func HLC(ms int64, l uint16) crdt.HLC { return crdt.MakeHLC(T0+ms, l) }

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// NewInputs builds the inputs. Every call returns equal values.
func NewInputs() (*Inputs, error) {
	in := &Inputs{}
	var err error
	if in.Alice, err = NewAuthor(0x01, 0x1); err != nil {
		return nil, err
	}
	if in.Bob, err = NewAuthor(0x02, 0x2a); err != nil {
		return nil, err
	}
	a, b := in.Alice.Replica, in.Bob.Replica
	title, items, visits := []string{"title"}, []string{"items"}, []string{"visits"}

	sa := crdt.New()
	if in.DeltaA1, err = sa.Apply(a, HLC(0, 0), crdt.Set(title, raw(`"groceries"`)), crdt.Add(items, raw(`"milk"`))); err != nil {
		return nil, err
	}
	if in.DeltaA2, err = sa.Apply(a, HLC(1000, 0), crdt.Inc(visits, 2)); err != nil {
		return nil, err
	}
	if in.DeltaA3, err = sa.Apply(a, HLC(2000, 0), crdt.Inc(visits, 3)); err != nil {
		return nil, err
	}
	sb := crdt.New()
	sb.Merge(in.DeltaA1)
	if in.DeltaB1, err = sb.Apply(b, HLC(1500, 1), crdt.Remove(items, raw(`"milk"`)), crdt.Add(items, raw(`"eggs"`))); err != nil {
		return nil, err
	}
	in.AggA23 = crdt.New()
	in.AggA23.Merge(in.DeltaA2)
	in.AggA23.Merge(in.DeltaA3)

	in.EnvA1 = &wire.Envelope{Doc: Doc, Origin: a, Seq: 1, HLC: uint64(HLC(0, 0)), Dot: 2, Payload: crdt.EncodeDelta(in.DeltaA1, a)}
	in.EnvA23 = &wire.Envelope{Doc: Doc, Origin: a, Seq: 2, Last: 3, HLC: uint64(HLC(2000, 0)), Dot: 4, Payload: crdt.EncodeDelta(in.AggA23, a)}
	in.EnvB1 = &wire.Envelope{Doc: Doc, Origin: b, Seq: 1, HLC: uint64(HLC(1500, 1)), Dot: 1, Payload: crdt.EncodeDelta(in.DeltaB1, b)}
	for _, e := range []struct {
		env *wire.Envelope
		key crypto.PrivKey
	}{{in.EnvA1, in.Alice.Priv}, {in.EnvA23, in.Alice.Priv}, {in.EnvB1, in.Bob.Priv}} {
		if err := wire.SignEnvelope(e.key, e.env); err != nil {
			return nil, err
		}
	}
	in.Full = crdt.New()
	for _, d := range []*crdt.State{in.DeltaA1, in.DeltaA2, in.DeltaA3, in.DeltaB1} {
		in.Full.Merge(d)
	}
	if err := in.buildStates(); err != nil {
		return nil, err
	}
	if err := in.buildSeqs(); err != nil {
		return nil, err
	}
	return in, nil
}

// VV returns the version vector of the scenario once every delta is held:
// Alice 3, Bob 1.
func (in *Inputs) VV() crdt.VersionVector {
	return crdt.VersionVector{in.Alice.Replica: 3, in.Bob.Replica: 1}
}
