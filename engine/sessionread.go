package engine

import (
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Reads a session leaves to its caller (DeferReads): the log, the stored
// snapshot, a fresh snapshot's heads.

// logReader reads the log as the peer can take it.
func (s *Session) logReader() *logReader {
	lr := s.d.logReader()
	lr.legacy = !s.peerFeatures.Has(wire.FeatureAggregates)
	lr.noSeqs = !s.peerFeatures.Has(wire.FeatureSequences)
	lr.noCompact = !s.peerFeatures.Has(wire.FeatureCompactSplice)
	return lr
}

// DeferReads makes Next leave reading the log to the caller: when it needs
// the next batch, Next says wait and PendingRead returns the read to run —
// outside whatever lock guards the engine (a log read is I/O); Next then
// takes its result. Without it, Next reads inline (a single-threaded
// driver, the simulation).
func (s *Session) DeferReads() { s.deferReads = true }

// PendingRead returns the log read Next waits for, if any.
func (s *Session) PendingRead() *LogRead {
	if s.read == nil || s.read.finished {
		return nil
	}
	return s.read
}

// LogRead is a read of the log a session waits for: a batch to send, or
// the stored snapshot with its heads. It reads only the document's storage
// (and signs aggregates of own runs), touching no engine state, so it may
// run concurrently with the engine.
type LogRead struct {
	fn       func()
	finished bool
}

type logResult struct {
	lr    *logReader
	batch []store.Entry
	next  store.Cursor
	done  bool
	err   error
}

// freshPending is a fresh snapshot's encoded state waiting for its heads.
type freshPending struct {
	enc  []byte
	cc   *crdt.CausalContext
	vv   crdt.VersionVector
	hr   *headReader
	snap wire.Snapshot
	ok   bool
	err  error
}

// finish reads the heads of a fresh snapshot for peer p and checks that
// they prove what it claims (else the peer would refuse it: ok is false).
func (fp *freshPending) finish(st Storage, p peer.ID) (wire.Snapshot, bool, error) {
	old, _, err := st.Snapshot()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return wire.Snapshot{}, false, err
	}
	heads := fp.hr.heads(old.Heads, nil, fp.cc)
	if err := checkClaims(fp.cc, fp.vv, boundsOf(decodeHeads(heads)), func(rep crdt.ReplicaID) bool { q, _ := wire.PeerOf(rep); return q == p }); err != nil {
		return wire.Snapshot{}, false, nil
	}
	return wire.Snapshot{State: fp.enc, VV: fp.vv, Heads: heads}, true, nil
}

type snapResult struct {
	hr   *headReader
	snap wire.Snapshot
	ok   bool
	err  error
}

// Do runs the read.
func (r *LogRead) Do() {
	r.fn()
	r.finished = true
}
