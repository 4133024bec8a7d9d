package wire

import (
	"fmt"

	"github.com/concord-p2p/concord/crdt"
)

// Summary is the beacon a replica publishes for a document: the version
// vector of what Origin (the sender's replica) has applied.
type Summary struct {
	Doc    string
	Origin crdt.ReplicaID
	VV     crdt.VersionVector
	// Beacon numbers the sender's beacons. GossipSub identifies messages
	// by content here, so without it a repeated, unchanged summary would be
	// dropped as a duplicate of the previous one.
	Beacon uint64
}

type summaryWire struct {
	V      uint64            `cbor:"0,keyasint"`
	T      uint64            `cbor:"1,keyasint"`
	Doc    string            `cbor:"2,keyasint"`
	Origin string            `cbor:"3,keyasint"`
	VV     map[string]uint64 `cbor:"4,keyasint,omitempty"`
	Beacon uint64            `cbor:"5,keyasint,omitempty"`
}

// EncodeSummary returns the deterministic CBOR encoding of s. Zero entries of
// the version vector are omitted (a missing entry means zero).
func EncodeSummary(s *Summary) ([]byte, error) {
	w := summaryWire{V: ProtocolVersion, T: TypeSummary, Doc: s.Doc, Origin: string(s.Origin), Beacon: s.Beacon, VV: wireVV(s.VV)}
	out, err := encMode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("wire: encode summary: %w", err)
	}
	return out, nil
}

// DecodeSummary parses a summary within lim. The returned VV is never nil.
// Errors wrap ErrTooLarge, ErrMalformed or ErrVersion.
func DecodeSummary(b []byte, lim Limits) (*Summary, error) {
	if len(b) > lim.MaxMessageBytes {
		return nil, fmt.Errorf("%w: summary is %d bytes, limit %d", ErrTooLarge, len(b), lim.MaxMessageBytes)
	}
	var w summaryWire
	if err := unmarshal(b, lim, &w); err != nil {
		return nil, err
	}
	if err := checkHeader(w.V, w.T, TypeSummary); err != nil {
		return nil, err
	}
	switch {
	case w.Doc == "" || len(w.Doc) > maxDocBytes:
		return nil, fmt.Errorf("%w: summary doc name length %d", ErrMalformed, len(w.Doc))
	case w.Origin == "" || len(w.Origin) > maxReplicaLen:
		return nil, fmt.Errorf("%w: summary origin length %d", ErrMalformed, len(w.Origin))
	case len(w.VV) > lim.MaxVVEntries:
		return nil, fmt.Errorf("%w: version vector has %d entries, limit %d", ErrTooLarge, len(w.VV), lim.MaxVVEntries)
	}
	vv := make(crdt.VersionVector, len(w.VV))
	for r, n := range w.VV {
		if r == "" || len(r) > maxReplicaLen || n == 0 || n > crdt.MaxCounter {
			return nil, fmt.Errorf("%w: version vector entry %q=%d", ErrMalformed, r, n)
		}
		vv[crdt.ReplicaID(r)] = n
	}
	return &Summary{Doc: w.Doc, Origin: crdt.ReplicaID(w.Origin), VV: vv, Beacon: w.Beacon}, nil
}
