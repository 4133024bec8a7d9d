package wire

import (
	"fmt"

	"github.com/concord-p2p/concord/crdt"
)

// Sync message types (field 1 of a sync frame).
const (
	TypeSyncHello    = 10 // the sender's version vector: "this is what I have"
	TypeSyncDeltas   = 11 // a bounded batch of stored envelopes the receiver lacks
	TypeSyncSnapshot = 12 // a compacted state, when the log no longer reaches back
	TypeSyncDone     = 13 // the sender has sent everything; its vector now
)

// SyncMsg is one message of the anti-entropy exchange.
type SyncMsg struct {
	Type      uint64
	Doc       string
	VV        crdt.VersionVector // Hello, Done, Snapshot (the snapshot's vector)
	Envelopes [][]byte           // Deltas: encoded envelopes, verbatim from the log
	State     []byte             // Snapshot: encoded crdt state
	// NoSnapshot (Hello): the sender would refuse a snapshot from this
	// peer; send the log instead, as far as it reaches.
	NoSnapshot bool
	// Heads (Snapshot): encoded envelopes signed by the authors the
	// snapshot covers (see Snapshot.Heads).
	Heads [][]byte
	// Features (Hello): the optional features the sender speaks; the
	// other side sends none it did not announce. Absent: none.
	Features Features
	// WantState (Hello): the sender holds back inserts that name elements
	// it garbage-collected, and asks for a whole state (a snapshot) even
	// though its vector may hold everything the other side's does.
	WantState bool
}

// Snapshot is a compacted state as the sync protocol carries it.
type Snapshot struct {
	State []byte             // encoded crdt state
	VV    crdt.VersionVector // the deltas it covers
	// Heads bound what the snapshot may claim of each author: for each
	// one, the envelope it signed with the highest sequence number the
	// sender holds, whose Dot is the author's own count of the dots it
	// minted. A receiver refuses a snapshot claiming more of an author's
	// sequence numbers or dots than its heads show.
	Heads [][]byte
}

type syncWire struct {
	V      uint64            `cbor:"0,keyasint"`
	T      uint64            `cbor:"1,keyasint"`
	Doc    string            `cbor:"2,keyasint,omitempty"`
	VV     map[string]uint64 `cbor:"3,keyasint,omitempty"`
	Envs   [][]byte          `cbor:"4,keyasint,omitempty"`
	State  []byte            `cbor:"5,keyasint,omitempty"`
	NoSnap bool              `cbor:"6,keyasint,omitempty"`
	Heads  [][]byte          `cbor:"7,keyasint,omitempty"`
	Feat   uint64            `cbor:"8,keyasint,omitempty"`
	Want   bool              `cbor:"9,keyasint,omitempty"`
}

// SyncLimits bounds what a sync decoder accepts.
type SyncLimits struct {
	// MaxFrameBytes bounds one frame other than a snapshot. Default 4 MiB.
	MaxFrameBytes int
	// MaxSnapshotBytes bounds a snapshot frame. Default 64 MiB.
	MaxSnapshotBytes int
	// Envelope limits each carried envelope; its MaxVVEntries also bounds
	// the vector of a Hello (see MaxHelloBytes).
	Envelope Limits
}

// MaxSyncSeqs bounds the sequence numbers the envelopes of one Deltas
// message may cover together (an aggregate makes its receiver store a
// marker for each it covers): the bound of one gossip message.
const MaxSyncSeqs = MaxGossipSeqs

// MaxHelloBytes is the size of the largest legal Hello under lim: a
// version vector of Envelope.MaxVVEntries entries with the longest replica
// IDs and counters, the longest document name, and the fixed fields. The
// first frame of a stream is read within this bound.
func (lim SyncLimits) MaxHelloBytes() int {
	const (
		fixed   = 1 + 2*(1+9) + 2 + 1 + 5 + 1 + 9 + 2 // map, V and T, NoSnapshot, VV key and map header, Features, WantState
		docName = 1 + 3 + maxDocBytes
		entry   = 3 + maxReplicaLen + 9 // text header, replica ID, uint64
	)
	return fixed + docName + max(lim.Envelope.MaxVVEntries, 0)*entry
}

// DefaultSyncLimits returns the documented defaults.
func DefaultSyncLimits() SyncLimits {
	return SyncLimits{MaxFrameBytes: 4 << 20, MaxSnapshotBytes: 64 << 20, Envelope: DefaultLimits()}
}

// EncodeSyncMsg returns the deterministic encoding of m.
func EncodeSyncMsg(m *SyncMsg) ([]byte, error) {
	w := syncWire{V: ProtocolVersion, T: m.Type, Doc: m.Doc, Envs: m.Envelopes, State: m.State, VV: wireVV(m.VV), NoSnap: m.NoSnapshot, Heads: m.Heads, Feat: uint64(m.Features), Want: m.WantState}
	out, err := encMode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("wire: encode sync message: %w", err)
	}
	return out, nil
}

// DecodeSyncMsg parses one sync frame. Errors wrap ErrTooLarge, ErrMalformed
// or ErrVersion.
func DecodeSyncMsg(b []byte, lim SyncLimits) (*SyncMsg, error) {
	if len(b) > lim.MaxSnapshotBytes {
		return nil, fmt.Errorf("%w: sync frame is %d bytes", ErrTooLarge, len(b))
	}
	el := lim.Envelope
	el.MaxMessageBytes = len(b)
	el.MaxEnvelopes = max(el.MaxEnvelopes, 1<<16)
	var w syncWire
	if err := unmarshal(b, el, &w); err != nil {
		return nil, err
	}
	if w.V < ProtocolVersionMin || w.V > ProtocolVersionMax {
		return nil, fmt.Errorf("%w: version %d", ErrVersion, w.V)
	}
	if w.T != TypeSyncSnapshot && len(b) > lim.MaxFrameBytes {
		return nil, fmt.Errorf("%w: sync frame is %d bytes, limit %d", ErrTooLarge, len(b), lim.MaxFrameBytes)
	}
	m := &SyncMsg{Type: w.T, Doc: w.Doc, Envelopes: w.Envs, State: w.State, NoSnapshot: w.NoSnap, Heads: w.Heads, Features: Features(w.Feat), WantState: w.Want}
	if (w.Feat != 0 || w.Want) && w.T != TypeSyncHello {
		return nil, fmt.Errorf("%w: sync message type %d carries hello fields", ErrMalformed, w.T)
	}
	if len(w.Heads) > lim.Envelope.MaxVVEntries {
		return nil, fmt.Errorf("%w: %d snapshot heads", ErrTooLarge, len(w.Heads))
	}
	switch w.T {
	case TypeSyncHello, TypeSyncDone:
		if len(w.Envs) > 0 || len(w.State) > 0 || len(w.Heads) > 0 {
			return nil, fmt.Errorf("%w: sync message type %d carries envelopes, a state or heads", ErrMalformed, w.T)
		}
	case TypeSyncSnapshot, TypeSyncDeltas:
	default:
		return nil, fmt.Errorf("%w: sync message type %d", ErrMalformed, w.T)
	}
	if w.T == TypeSyncHello && len(b) > lim.MaxHelloBytes() {
		return nil, fmt.Errorf("%w: hello is %d bytes, limit %d", ErrTooLarge, len(b), lim.MaxHelloBytes())
	}
	if len(w.Doc) > maxDocBytes {
		return nil, fmt.Errorf("%w: doc name of %d bytes", ErrMalformed, len(w.Doc))
	}
	if len(w.VV) > lim.Envelope.MaxVVEntries {
		return nil, fmt.Errorf("%w: version vector has %d entries", ErrTooLarge, len(w.VV))
	}
	m.VV = make(crdt.VersionVector, len(w.VV))
	for r, n := range w.VV {
		if r == "" || len(r) > maxReplicaLen || n > crdt.MaxCounter {
			return nil, fmt.Errorf("%w: version vector entry %q=%d", ErrMalformed, r, n)
		}
		m.VV[crdt.ReplicaID(r)] = n
	}
	return m, nil
}
