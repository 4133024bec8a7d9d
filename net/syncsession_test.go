package net

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// The tests of the stream drive exchanges over test replicas: a blocking
// testDoc interface and a session over it (the shape of the engine's
// session, with the replica's calls inline), made an Exchange by
// testExchange.

// testDoc is a document as the sync and gossip layers see it. Tests implement it.
type testDoc interface {
	// Doc returns the document name; Exchange starts a testExchange.
	SyncDoc
	// Version returns the contiguous version vector of the deltas held.
	Version() crdt.VersionVector
	// Missing returns envelopes the holder of have lacks, in bounded
	// batches (see store.Store.Missing); Entry.Data is an encoded envelope,
	// possibly an aggregate covering several sequence numbers.
	Missing(ctx context.Context, have crdt.VersionVector, cur store.Cursor) ([]store.Entry, store.Cursor, bool, error)
	// SnapshotFor returns a snapshot for peer p when the log no longer
	// holds some delta that have lacks (or when it would be cheaper); ok is
	// false when the log suffices.
	SnapshotFor(ctx context.Context, p peer.ID, have crdt.VersionVector) (snap wire.Snapshot, ok bool, err error)
	// Ingest verifies, merges and durably stores envelopes received from
	// peer from. Invalid envelopes are rejected and counted, not returned as
	// an error; an error means the replica could not persist.
	Ingest(ctx context.Context, from peer.ID, envs []*wire.Envelope) error
	// AcceptsSnapshot reports whether a snapshot from peer p would be
	// ingested (snapshots carry no author signatures).
	AcceptsSnapshot(p peer.ID) bool
	// IngestSnapshot merges a snapshot received from peer from.
	IngestSnapshot(ctx context.Context, from peer.ID, snap wire.Snapshot) error
	// Observed records that peer from holds vv (an acknowledgment).
	Observed(from peer.ID, vv crdt.VersionVector)
}

// SyncSession is one side of an anti-entropy exchange, as a state machine
// without I/O: feed it the peer's messages with Handle and send what Next
// returns. Both sides start with Hello; each then streams what the other
// lacks and ends with Done, so one exchange repairs both directions in one
// round trip. The exchange is over when Finished reports true.
//
// A SyncSession is not safe for concurrent use.
type SyncSession struct {
	r         testDoc
	peer      peer.ID
	lim       wire.SyncLimits
	peerVV    crdt.VersionVector
	gotHello  bool
	gotDone   bool
	snapDone  bool
	noSnap    bool // the peer refuses our snapshots
	logDone   bool
	sentDone  bool
	gotDeltas bool
	hello     *wire.SyncMsg // ours, once built
	cur       store.Cursor
	queue     []queuedEnv // read from the log, not yet sent
	stats     SyncStats
	sent      map[[32]byte]bool // envelopes sent, so an aggregate goes once
}

// queuedEnv is an encoded envelope waiting to be sent, with the number of
// sequence numbers it covers.
type queuedEnv struct {
	data []byte
	seqs uint64
}

// NewSyncSession starts an exchange for r with peer p.
func NewSyncSession(r testDoc, p peer.ID, lim wire.SyncLimits) *SyncSession {
	return &SyncSession{r: r, peer: p, lim: lim}
}

// Hello returns the first message to send. It is built once; later calls
// return the same message.
func (s *SyncSession) Hello() *wire.SyncMsg {
	if s.hello == nil {
		s.hello = &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: s.r.Doc(), VV: s.r.Version(), NoSnapshot: !s.r.AcceptsSnapshot(s.peer)}
	}
	return s.hello
}

// SnapshotAllowed reports (nil) whether a snapshot from the peer may come
// next, so that its frame can be refused from its header, before its body
// is read: only as the first message after both Hellos, at most once, when
// our Hello did not refuse snapshots and the peer's vector holds something
// ours lacks (a peer sends one only then). Otherwise it returns an error
// wrapping ErrSnapshotRefused.
func (s *SyncSession) SnapshotAllowed() error {
	var why string
	switch {
	case !s.gotHello || s.hello == nil:
		why = "before both hellos"
	case s.hello.NoSnapshot:
		why = "our hello refused snapshots"
	case s.stats.Snapshot:
		why = "second snapshot"
	case s.gotDeltas:
		why = "after deltas"
	case s.hello.VV.Covers(s.peerVV):
		why = "the peer's vector holds nothing we lack"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrSnapshotRefused, why)
}

// Stats returns the counts so far.
func (s *SyncSession) Stats() SyncStats { return s.stats }

// Finished reports whether both sides have sent Done.
func (s *SyncSession) Finished() bool { return s.sentDone && s.gotDone }

// Handle processes one message from the peer.
func (s *SyncSession) Handle(ctx context.Context, m *wire.SyncMsg) error {
	s.stats.MsgsIn++
	if m.Doc != "" && m.Doc != s.r.Doc() {
		return fmt.Errorf("%w: message for document %q in an exchange for %q", ErrSyncProtocol, m.Doc, s.r.Doc())
	}
	if m.Type != wire.TypeSyncHello && !s.gotHello {
		return fmt.Errorf("%w: type %d before hello", ErrSyncProtocol, m.Type)
	}
	if s.gotDone {
		return fmt.Errorf("%w: type %d after done", ErrSyncProtocol, m.Type)
	}
	switch m.Type {
	case wire.TypeSyncHello:
		if s.gotHello {
			return fmt.Errorf("%w: second hello", ErrSyncProtocol)
		}
		s.gotHello = true
		s.peerVV = m.VV
		s.noSnap = m.NoSnapshot
	case wire.TypeSyncSnapshot:
		if err := s.SnapshotAllowed(); err != nil {
			return err
		}
		s.stats.Snapshot = true
		if err := s.r.IngestSnapshot(ctx, s.peer, wire.Snapshot{State: m.State, VV: m.VV, Heads: m.Heads}); err != nil {
			return fmt.Errorf("%w: ingest snapshot: %w", wire.ErrSyncStorage, err)
		}
	case wire.TypeSyncDeltas:
		s.gotDeltas = true
		envs := make([]*wire.Envelope, 0, len(m.Envelopes))
		var bad error
		var seqs uint64
		for _, b := range m.Envelopes {
			e, err := wire.DecodeEnvelope(b, s.lim.Envelope)
			if err != nil {
				bad = err
				continue
			}
			envs = append(envs, e)
			seqs += e.LastSeq() - e.Seq + 1
		}
		if seqs > wire.MaxSyncSeqs {
			// Refused whole, before anything is stored: each covered
			// sequence number would cost the receiver a log entry.
			return fmt.Errorf("%w: %d in one message, limit %d", ErrTooManySeqs, seqs, wire.MaxSyncSeqs)
		}
		s.stats.DeltasIn += len(envs)
		if err := s.r.Ingest(ctx, s.peer, envs); err != nil {
			return fmt.Errorf("%w: ingest: %w", wire.ErrSyncStorage, err)
		}
		if bad != nil {
			return fmt.Errorf("%w: undecodable envelope: %w", ErrSyncProtocol, bad)
		}
	case wire.TypeSyncDone:
		s.gotDone = true
		s.r.Observed(s.peer, m.VV)
	default:
		return fmt.Errorf("%w: unknown type %d", ErrSyncProtocol, m.Type)
	}
	return nil
}

// Next returns the next message to send, or nil when there is nothing to
// send now (before the peer's hello, or after our Done).
func (s *SyncSession) Next(ctx context.Context) (*wire.SyncMsg, error) {
	if !s.gotHello || s.sentDone {
		return nil, nil
	}
	if !s.snapDone && !s.noSnap {
		s.snapDone = true
		snap, ok, err := s.r.SnapshotFor(ctx, s.peer, s.peerVV)
		if err != nil {
			return nil, fmt.Errorf("%w: snapshot: %w", wire.ErrSyncStorage, err)
		}
		if ok {
			// The peer now holds what the snapshot covers.
			have := s.peerVV.Clone()
			have.Merge(snap.VV)
			s.peerVV = have
			s.stats.SnapshotOut = true
			return &wire.SyncMsg{Type: wire.TypeSyncSnapshot, VV: snap.VV, State: snap.State, Heads: snap.Heads}, nil
		}
	}
	for len(s.queue) == 0 && !s.logDone {
		batch, next, done, err := s.r.Missing(ctx, s.peerVV, s.cur)
		if err != nil {
			return nil, fmt.Errorf("%w: read the log: %w", wire.ErrSyncStorage, err)
		}
		s.cur = next
		s.logDone = done
		for _, e := range batch {
			h := sha256.Sum256(e.Data)
			if s.sent[h] {
				continue
			}
			if s.sent == nil {
				s.sent = map[[32]byte]bool{}
			}
			s.sent[h] = true
			s.queue = append(s.queue, queuedEnv{e.Data, envelopeSeqs(e.Data, s.lim.Envelope)})
		}
	}
	if len(s.queue) > 0 {
		// As many queued envelopes as cover at most MaxSyncSeqs sequence
		// numbers (always one: an aggregate covers at most MaxAggregateRun).
		m := &wire.SyncMsg{Type: wire.TypeSyncDeltas}
		var seqs uint64
		n := 0
		for ; n < len(s.queue); n++ {
			q := s.queue[n]
			if n > 0 && seqs+q.seqs > wire.MaxSyncSeqs {
				break
			}
			seqs += q.seqs
			m.Envelopes = append(m.Envelopes, q.data)
		}
		s.queue = s.queue[n:]
		s.stats.DeltasOut += len(m.Envelopes)
		return m, nil
	}
	s.sentDone = true
	return &wire.SyncMsg{Type: wire.TypeSyncDone, VV: s.r.Version()}, nil
}

// envelopeSeqs returns how many sequence numbers the encoded envelope b
// covers; 1 when it does not decode (the receiver refuses it anyway).
func envelopeSeqs(b []byte, lim wire.Limits) uint64 {
	e, err := wire.DecodeEnvelope(b, lim)
	if err != nil {
		return 1
	}
	return e.LastSeq() - e.Seq + 1
}

func (f *fakeReplica) Exchange(p peer.ID, lim wire.SyncLimits) Exchange {
	return &testExchange{s: NewSyncSession(f, p, lim)}
}

func (b *batchReplica) Exchange(p peer.ID, lim wire.SyncLimits) Exchange {
	return &testExchange{s: NewSyncSession(b, p, lim)}
}

// testExchange is a SyncSession as an Exchange, its calls serialised.
type testExchange struct {
	mu sync.Mutex
	s  *SyncSession
}

func (x *testExchange) Hello() *wire.SyncMsg { x.mu.Lock(); defer x.mu.Unlock(); return x.s.Hello() }
func (x *testExchange) SnapshotAllowed() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.s.SnapshotAllowed()
}
func (x *testExchange) Handle(ctx context.Context, m *wire.SyncMsg) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.s.Handle(ctx, m)
}
func (x *testExchange) Next(ctx context.Context) (*wire.SyncMsg, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.s.Next(ctx)
}
func (x *testExchange) GotHello() bool   { x.mu.Lock(); defer x.mu.Unlock(); return x.s.gotHello }
func (x *testExchange) GotDone() bool    { x.mu.Lock(); defer x.mu.Unlock(); return x.s.gotDone }
func (x *testExchange) Finished() bool   { x.mu.Lock(); defer x.mu.Unlock(); return x.s.Finished() }
func (x *testExchange) Stats() SyncStats { x.mu.Lock(); defer x.mu.Unlock(); return x.s.stats }
func (x *testExchange) Close()           {}
