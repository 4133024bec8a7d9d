package net

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
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
}

// SyncLimits bounds what a sync decoder accepts.
type SyncLimits struct {
	// MaxFrameBytes bounds one frame other than a snapshot. Default 4 MiB.
	MaxFrameBytes int
	// MaxSnapshotBytes bounds a snapshot frame. Default 64 MiB.
	MaxSnapshotBytes int
	// Envelope limits each carried envelope.
	Envelope Limits
}

// DefaultSyncLimits returns the documented defaults.
func DefaultSyncLimits() SyncLimits {
	return SyncLimits{MaxFrameBytes: 4 << 20, MaxSnapshotBytes: 64 << 20, Envelope: DefaultLimits()}
}

// EncodeSyncMsg returns the deterministic encoding of m.
func EncodeSyncMsg(m *SyncMsg) ([]byte, error) {
	w := syncWire{V: ProtocolVersion, T: m.Type, Doc: m.Doc, Envs: m.Envelopes, State: m.State, VV: wireVV(m.VV), NoSnap: m.NoSnapshot, Heads: m.Heads}
	out, err := encMode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("net: encode sync message: %w", err)
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
	m := &SyncMsg{Type: w.T, Doc: w.Doc, Envelopes: w.Envs, State: w.State, NoSnapshot: w.NoSnap, Heads: w.Heads}
	if len(w.Heads) > lim.Envelope.MaxVVEntries {
		return nil, fmt.Errorf("%w: %d snapshot heads", ErrTooLarge, len(w.Heads))
	}
	switch w.T {
	case TypeSyncHello, TypeSyncDone, TypeSyncSnapshot, TypeSyncDeltas:
	default:
		return nil, fmt.Errorf("%w: sync message type %d", ErrMalformed, w.T)
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

// Replica is a document as the sync and gossip layers see it. The root
// package implements it; the simulation tests implement it too.
type Replica interface {
	// Doc returns the document name.
	Doc() string
	// Version returns the contiguous version vector of the deltas held.
	Version() crdt.VersionVector
	// Missing returns envelopes the holder of have lacks, in bounded
	// batches (see store.Store.Missing); Entry.Data is an encoded envelope,
	// possibly an aggregate covering several sequence numbers.
	Missing(ctx context.Context, have crdt.VersionVector, cur store.Cursor) ([]store.Entry, store.Cursor, bool, error)
	// SnapshotFor returns a snapshot for peer p when the log no longer
	// holds some delta that have lacks (or when it would be cheaper); ok is
	// false when the log suffices.
	SnapshotFor(ctx context.Context, p peer.ID, have crdt.VersionVector) (snap Snapshot, ok bool, err error)
	// Ingest verifies, merges and durably stores envelopes received from
	// peer from. Invalid envelopes are rejected and counted, not returned as
	// an error; an error means the replica could not persist.
	Ingest(ctx context.Context, from peer.ID, envs []*Envelope) error
	// AcceptsSnapshot reports whether a snapshot from peer p would be
	// ingested (snapshots carry no author signatures).
	AcceptsSnapshot(p peer.ID) bool
	// IngestSnapshot merges a snapshot received from peer from.
	IngestSnapshot(ctx context.Context, from peer.ID, snap Snapshot) error
	// Observed records that peer from holds vv (an acknowledgment).
	Observed(from peer.ID, vv crdt.VersionVector)
}

// SyncStats counts one exchange.
type SyncStats struct {
	MsgsOut, MsgsIn     int
	DeltasOut, DeltasIn int
	BytesOut, BytesIn   int  // frame payload bytes, both directions
	Snapshot            bool // a snapshot was received
	SnapshotOut         bool // a snapshot was sent
}

// ErrSyncProtocol is returned when the peer breaks the exchange protocol.
var ErrSyncProtocol = errors.New("net: sync protocol violation")

// SyncSession is one side of an anti-entropy exchange, as a state machine
// without I/O: feed it the peer's messages with Handle and send what Next
// returns. Both sides start with Hello; each then streams what the other
// lacks and ends with Done, so one exchange repairs both directions in one
// round trip. The exchange is over when Finished reports true.
//
// A SyncSession is not safe for concurrent use.
type SyncSession struct {
	r         Replica
	peer      peer.ID
	lim       SyncLimits
	peerVV    crdt.VersionVector
	gotHello  bool
	gotDone   bool
	snapDone  bool
	noSnap    bool // the peer refuses our snapshots
	logDone   bool
	sentDone  bool
	cur       store.Cursor
	batchSize int
	stats     SyncStats
	sent      map[[32]byte]bool // envelopes sent, so an aggregate goes once
}

// NewSyncSession starts an exchange for r with peer p.
func NewSyncSession(r Replica, p peer.ID, lim SyncLimits) *SyncSession {
	return &SyncSession{r: r, peer: p, lim: lim}
}

// Hello returns the first message to send.
func (s *SyncSession) Hello() *SyncMsg {
	return &SyncMsg{Type: TypeSyncHello, Doc: s.r.Doc(), VV: s.r.Version(), NoSnapshot: !s.r.AcceptsSnapshot(s.peer)}
}

// Stats returns the counts so far.
func (s *SyncSession) Stats() SyncStats { return s.stats }

// Finished reports whether both sides have sent Done.
func (s *SyncSession) Finished() bool { return s.sentDone && s.gotDone }

// Handle processes one message from the peer.
func (s *SyncSession) Handle(ctx context.Context, m *SyncMsg) error {
	s.stats.MsgsIn++
	if m.Doc != "" && m.Doc != s.r.Doc() {
		return fmt.Errorf("%w: message for document %q in an exchange for %q", ErrSyncProtocol, m.Doc, s.r.Doc())
	}
	if m.Type != TypeSyncHello && !s.gotHello {
		return fmt.Errorf("%w: type %d before hello", ErrSyncProtocol, m.Type)
	}
	if s.gotDone {
		return fmt.Errorf("%w: type %d after done", ErrSyncProtocol, m.Type)
	}
	switch m.Type {
	case TypeSyncHello:
		if s.gotHello {
			return fmt.Errorf("%w: second hello", ErrSyncProtocol)
		}
		s.gotHello = true
		s.peerVV = m.VV
		s.noSnap = m.NoSnapshot
	case TypeSyncSnapshot:
		if s.stats.Snapshot {
			return fmt.Errorf("%w: second snapshot", ErrSyncProtocol)
		}
		s.stats.Snapshot = true
		if err := s.r.IngestSnapshot(ctx, s.peer, Snapshot{State: m.State, VV: m.VV, Heads: m.Heads}); err != nil {
			return err
		}
	case TypeSyncDeltas:
		envs := make([]*Envelope, 0, len(m.Envelopes))
		var bad error
		for _, b := range m.Envelopes {
			e, err := DecodeEnvelope(b, s.lim.Envelope)
			if err != nil {
				bad = err
				continue
			}
			envs = append(envs, e)
		}
		s.stats.DeltasIn += len(envs)
		if err := s.r.Ingest(ctx, s.peer, envs); err != nil {
			return err
		}
		if bad != nil {
			return fmt.Errorf("%w: undecodable envelope: %w", ErrSyncProtocol, bad)
		}
	case TypeSyncDone:
		s.gotDone = true
		s.r.Observed(s.peer, m.VV)
	default:
		return fmt.Errorf("%w: unknown type %d", ErrSyncProtocol, m.Type)
	}
	return nil
}

// Next returns the next message to send, or nil when there is nothing to
// send now (before the peer's hello, or after our Done).
func (s *SyncSession) Next(ctx context.Context) (*SyncMsg, error) {
	if !s.gotHello || s.sentDone {
		return nil, nil
	}
	if !s.snapDone && !s.noSnap {
		s.snapDone = true
		snap, ok, err := s.r.SnapshotFor(ctx, s.peer, s.peerVV)
		if err != nil {
			return nil, err
		}
		if ok {
			// The peer now holds what the snapshot covers.
			have := s.peerVV.Clone()
			have.Merge(snap.VV)
			s.peerVV = have
			s.stats.SnapshotOut = true
			return &SyncMsg{Type: TypeSyncSnapshot, VV: snap.VV, State: snap.State, Heads: snap.Heads}, nil
		}
	}
	if !s.logDone {
		batch, next, done, err := s.r.Missing(ctx, s.peerVV, s.cur)
		if err != nil {
			return nil, err
		}
		s.cur = next
		s.logDone = done
		m := &SyncMsg{Type: TypeSyncDeltas}
		for _, e := range batch {
			h := sha256.Sum256(e.Data)
			if s.sent[h] {
				continue
			}
			if s.sent == nil {
				s.sent = map[[32]byte]bool{}
			}
			s.sent[h] = true
			m.Envelopes = append(m.Envelopes, e.Data)
		}
		if len(m.Envelopes) > 0 {
			s.stats.DeltasOut += len(m.Envelopes)
			return m, nil
		}
		if !done {
			return s.Next(ctx)
		}
	}
	s.sentDone = true
	return &SyncMsg{Type: TypeSyncDone, VV: s.r.Version()}, nil
}
