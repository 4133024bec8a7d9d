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

// Errors of an exchange, besides wire's ErrTooLarge, ErrMalformed and
// ErrVersion: wire's own values, so the stream classifies them (the reason
// label of sync_errors_total).
var (
	// ErrSyncProtocol: the peer broke the exchange protocol.
	ErrSyncProtocol = wire.ErrSyncProtocol
	// ErrSnapshotRefused: the peer sent a snapshot the exchange did not
	// call for (see Session.SnapshotAllowed). It wraps ErrSyncProtocol.
	ErrSnapshotRefused = wire.ErrSnapshotRefused
	// ErrTooManySeqs: a Deltas message covers more than wire.MaxSyncSeqs
	// sequence numbers. It wraps wire.ErrTooLarge.
	ErrTooManySeqs = wire.ErrTooManySeqs
	// ErrSyncStorage wraps a failure to read the log or store what was
	// received.
	ErrSyncStorage = wire.ErrSyncStorage
)

// SyncStats counts one exchange.
type SyncStats struct {
	MsgsOut, MsgsIn     int
	DeltasOut, DeltasIn int
	BytesOut, BytesIn   int  // frame payload bytes, both directions (the stream counts them)
	Snapshot            bool // a snapshot was received
	SnapshotOut         bool // a snapshot was sent
}

// Sessions count messages in and deltas; the transport counts what it
// writes and the bytes (MsgsOut, BytesOut, BytesIn).

// Session is one side of an anti-entropy exchange, sans I/O (as automerge's
// sync protocol): feed it the peer's messages with Handle and send what
// Next returns. Both sides start with Hello; each then streams what the
// other lacks and ends with Done, so one exchange repairs both directions
// in one round trip. Done goes out only once everything received is
// durable, so its vector includes it. A Session belongs to its Doc and is
// used on the same thread.
type Session struct {
	d         *Doc
	peer      peer.ID
	lim       wire.SyncLimits
	peerVV    crdt.VersionVector
	gotHello  bool
	gotDone   bool
	snapDone  bool
	noSnap    bool      // the peer refuses our snapshots
	peerWants bool      // the peer asks for a whole state (Hello.WantState)
	helloAt   time.Time // when the peer's Hello arrived
	logDone   bool
	sentDone  bool
	gotDeltas bool
	closed    bool
	hello     *wire.SyncMsg // ours, once built
	cur       store.Cursor
	queue     []queuedEnv // read from the log, not yet sent
	stats     SyncStats
	sent      map[[32]byte]bool // envelopes sent, so an aggregate goes once

	lastBatch uint64 // the last append of what we received
	storing   bool   // a received snapshot is being stored
	storeErr  error
	snapWait  bool // a fresh snapshot is being encoded for the peer
	fresh     *wire.SyncMsg

	peerFeatures wire.Features // announced in the peer's Hello

	deferReads bool     // log reads are left to the caller (PendingRead)
	read       *LogRead // the read asked for
	logRes     *logResult
	snapRes    *snapResult
	freshPend  *freshPending // a fresh snapshot encoded, its heads not read yet
}

type queuedEnv struct {
	data []byte
	seqs uint64
}

// NewSession starts an exchange with peer p.
func (d *Doc) NewSession(p peer.ID, lim wire.SyncLimits) *Session {
	s := &Session{d: d, peer: p, lim: lim}
	d.sessions[s] = struct{}{}
	return s
}

// Close ends the session (it may be interrupted at any point).
func (s *Session) Close() {
	s.closed = true
	delete(s.d.sessions, s)
}

// Hello returns the first message to send. It is built once; later calls
// return the same message.
func (s *Session) Hello() *wire.SyncMsg {
	if s.hello == nil {
		noSnap := !s.d.AcceptsSnapshot(s.peer)
		s.hello = &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: s.d.cfg.Doc, VV: s.d.Version(), NoSnapshot: noSnap, Features: s.d.features(),
			WantState: !noSnap && s.d.state.WantsCollected()}
	}
	return s.hello
}

// SnapshotAllowed reports (nil) whether a snapshot from the peer may come
// next, so that its frame can be refused from its header, before its body
// is read: only as the first message after both Hellos, at most once, when
// our Hello did not refuse snapshots and the peer's vector holds something
// ours lacks (a peer sends one only then). Otherwise it returns an error
// wrapping ErrSnapshotRefused.
func (s *Session) SnapshotAllowed() error {
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
	case s.hello.VV.Covers(s.peerVV) && !s.hello.WantState:
		why = "the peer's vector holds nothing we lack"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrSnapshotRefused, why)
}

// Stats returns the counts so far.
func (s *Session) Stats() SyncStats { return s.stats }

// GotHello reports whether the peer's Hello arrived.
func (s *Session) GotHello() bool { return s.gotHello }

// GotDone reports whether the peer's Done arrived.
func (s *Session) GotDone() bool { return s.gotDone }

// Settled reports whether the deltas received so far are durable.
func (s *Session) Settled() bool { return s.d.settled(s.lastBatch) }

// Finished reports whether both sides have sent Done.
func (s *Session) Finished() bool { return s.sentDone && s.gotDone }

// Handle processes one message from the peer at time now.
func (s *Session) Handle(now time.Time, m *wire.SyncMsg) error {
	s.stats.MsgsIn++
	d := s.d
	if m.Doc != "" && m.Doc != d.cfg.Doc {
		return fmt.Errorf("%w: message for document %q in an exchange for %q", ErrSyncProtocol, m.Doc, d.cfg.Doc)
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
		s.Hello()
		s.gotHello = true
		s.peerVV = m.VV
		s.noSnap = m.NoSnapshot
		s.peerFeatures = m.Features
		s.peerWants, s.helloAt = m.WantState, now
	case wire.TypeSyncSnapshot:
		if err := s.SnapshotAllowed(); err != nil {
			return err
		}
		s.stats.Snapshot = true
		if d.failed != nil {
			return fmt.Errorf("%w: ingest snapshot: %w", ErrSyncStorage, d.failed)
		}
		s.storing = true
		if err := d.receiveSnapshot(s.peer, wire.Snapshot{State: m.State, VV: m.VV, Heads: m.Heads}, s, 0); err != nil {
			s.storing = false
			return fmt.Errorf("%w: ingest snapshot: %w", ErrSyncStorage, err)
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
		if d.failed != nil {
			return fmt.Errorf("%w: ingest: %w", ErrSyncStorage, d.failed)
		}
		if id := d.Receive(now, s.peer, envs, false); id != 0 {
			s.lastBatch = id
		}
		if bad != nil {
			return fmt.Errorf("%w: undecodable envelope: %w", ErrSyncProtocol, bad)
		}
	case wire.TypeSyncDone:
		s.gotDone = true
		d.Observe(now, s.peer, m.VV)
	default:
		return fmt.Errorf("%w: unknown type %d", ErrSyncProtocol, m.Type)
	}
	return nil
}

// Next returns the next message to send. It returns nil when there is
// nothing to send now: before the peer's hello, after our Done, or — with
// wait set — until the engine has advanced (a fresh snapshot is being
// encoded, or what was received is not durable yet): call it again after
// the next Ready is handled.
func (s *Session) Next() (m *wire.SyncMsg, wait bool, err error) {
	d := s.d
	if !s.gotHello || s.sentDone {
		return nil, false, nil
	}
	if s.fresh != nil {
		m, s.fresh = s.fresh, nil
		s.snapWait = false
		return m, false, nil
	}
	if s.snapWait {
		return nil, true, nil
	}
	if fp := s.freshPend; fp != nil {
		if s.read == nil {
			fp.hr = d.headReader()
			st, p := d.st, s.peer
			s.read = &LogRead{fn: func() { fp.snap, fp.ok, fp.err = fp.finish(st, p) }}
		}
		if !s.read.finished {
			return nil, true, nil
		}
		s.read, s.freshPend = nil, nil
		d.takeReader(fp.hr.lr)
		if fp.err != nil {
			return nil, false, fmt.Errorf("%w: snapshot: %w", ErrSyncStorage, fp.err)
		}
		if fp.ok {
			d.snapCache.vv, d.snapCache.data, d.snapCache.heads = fp.snap.VV, fp.snap.State, fp.snap.Heads
			return s.snapshotMsg(fp.snap), false, nil
		}
		// The peer would refuse it: the log instead.
	}
	if !s.snapDone && !s.noSnap && s.deferReads && d.st.NeedsSnapshot(s.peerVV) {
		// The stored snapshot, read (with the heads that prove it) by the
		// caller, outside its lock.
		if s.read == nil {
			res := &snapResult{hr: d.headReader()}
			st := d.st
			s.snapRes = res
			s.read = &LogRead{fn: func() {
				stored, ok, err := st.Snapshot()
				if err == nil && ok {
					res.snap, res.ok = wire.Snapshot{State: stored.State, VV: stored.VV, Heads: res.hr.heads(stored.Heads, nil, nil)}, true
				}
				res.err = err
			}}
		}
		if !s.read.finished {
			return nil, true, nil
		}
		res := s.snapRes
		s.read, s.snapRes, s.snapDone = nil, nil, true
		d.takeReader(res.hr.lr)
		if res.err != nil {
			return nil, false, fmt.Errorf("%w: snapshot: %w", ErrSyncStorage, res.err)
		}
		if res.ok {
			return s.snapshotMsg(res.snap), false, nil
		}
	}
	if !s.snapDone && !s.noSnap {
		s.snapDone = true
		snap, ok, wait, err := d.snapshotFor(s, s.peer, s.peerVV)
		if err != nil {
			return nil, false, fmt.Errorf("%w: snapshot: %w", ErrSyncStorage, err)
		}
		if wait {
			s.snapWait = true
			d.step() // encodes at once when no own write is in flight
			return s.Next()
		}
		if ok {
			return s.snapshotMsg(snap), false, nil
		}
	}
	for len(s.queue) == 0 && !s.logDone {
		var (
			batch []store.Entry
			next  store.Cursor
			done  bool
			err   error
		)
		if s.deferReads {
			if s.read == nil {
				res := &logResult{lr: s.logReader()}
				have, cur := s.peerVV.Clone(), s.cur
				s.logRes = res
				s.read = &LogRead{fn: func() { res.batch, res.next, res.done, res.err = res.lr.missing(have, cur) }}
			}
			if !s.read.finished {
				return nil, true, nil // the caller runs PendingRead
			}
			r := s.logRes
			s.read, s.logRes = nil, nil
			d.takeReader(r.lr)
			batch, next, done, err = r.batch, r.next, r.done, r.err
		} else {
			lr := s.logReader()
			batch, next, done, err = lr.missing(s.peerVV, s.cur)
			d.takeReader(lr)
		}
		if err != nil {
			return nil, false, fmt.Errorf("%w: read the log: %w", ErrSyncStorage, err)
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
		return m, false, nil
	}
	// Done carries our vector, which must include what we received.
	if s.storing || !d.settled(s.lastBatch) {
		return nil, true, nil
	}
	if s.storeErr != nil {
		return nil, false, fmt.Errorf("%w: store snapshot: %w", ErrSyncStorage, s.storeErr)
	}
	if s.lastBatch != 0 && d.failed != nil {
		return nil, false, fmt.Errorf("%w: persist received deltas: %w", ErrSyncStorage, d.failed)
	}
	s.sentDone = true
	return &wire.SyncMsg{Type: wire.TypeSyncDone, VV: d.Version()}, false, nil
}

func (s *Session) snapshotMsg(snap wire.Snapshot) *wire.SyncMsg {
	// The peer now holds what the snapshot covers.
	have := s.peerVV.Clone()
	have.Merge(snap.VV)
	s.peerVV = have
	s.stats.SnapshotOut = true
	return &wire.SyncMsg{Type: wire.TypeSyncSnapshot, VV: snap.VV, State: snap.State, Heads: snap.Heads}
}

// freshSnapshot is called with the encoded durable state once a fresh
// snapshot asked for by snapshotFor can be built.
func (s *Session) freshSnapshot(enc []byte, cc *crdt.CausalContext) {
	if s.closed {
		return
	}
	s.snapWait = false
	if s.deferReads {
		// The heads are read outside the caller's lock; the vector is the
		// one the encoding covers (merges precede appends), taken now.
		s.freshPend = &freshPending{enc: enc, cc: cc.Clone(), vv: s.d.st.Contiguous()}
		return
	}
	snap, ok := s.d.freshFor(s.peer, enc, cc)
	if ok {
		s.fresh = s.snapshotMsg(snap)
	} // else the log instead

}

func (s *Session) snapshotFailed(err error) {
	s.snapWait = false
	if err != nil {
		s.storeErr = err
	}
}

func (s *Session) snapshotStored(err error) {
	s.storing = false
	if err != nil {
		s.storeErr = err
	}
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
