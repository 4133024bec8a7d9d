package engine

import (
	"errors"

	"github.com/libp2p/go-libp2p/core/crypto"

	"fmt"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Serving the log to a peer catching up: markers resolved, and runs of
// this node's own deltas joined into aggregates.

// Missing reads the log and rewrites what it
// sends: a marker becomes the aggregate it points to, and a run of this
// node's own deltas becomes one aggregate — their join, signed once — so a
// peer catching up receives the net effect of the run, not its history.
func (d *Doc) Missing(have crdt.VersionVector, cur store.Cursor) ([]store.Entry, store.Cursor, bool, error) {
	lr := d.logReader()
	out, next, done, err := lr.missing(have, cur)
	d.rd.Warnings = append(d.rd.Warnings, lr.warns...)
	return out, next, done, err
}

// takeReader folds what a finished logReader noticed into the Ready.
func (d *Doc) takeReader(lr *logReader) {
	d.rd.Warnings = append(d.rd.Warnings, lr.warns...)
	for range lr.skipped {
		d.drop("sync_out", "needs_aggregates")
	}
	for range lr.seqsLeft {
		d.drop("sync_out", "needs_sequences")
	}
	for range lr.compactLeft {
		d.drop("sync_out", "needs_compact_splice")
	}
}

// logReader reads the log for a peer catching up. It holds no engine
// state, only the document's storage, identity and whether it has fork
// proofs, so a driver may run it outside its lock (Session.DeferReads).
type logReader struct {
	st       Storage
	doc      string
	self     crdt.ReplicaID
	key      crypto.PrivKey
	hasForks bool
	legacy   bool // the peer takes no aggregates (it did not announce them)
	noSeqs   bool // the peer takes no sequences (it did not announce them)
	// noCompact: the peer takes no compact splices (it did not announce
	// them).
	noCompact bool
	warns     []error
	skipped   int // aggregates and markers left out for a legacy peer
	seqsLeft  int // envelopes holding sequences left out for a peer without them
	// compactLeft counts the compact envelopes left out for a peer
	// without them.
	compactLeft int
}

func (d *Doc) logReader() *logReader {
	return &logReader{st: d.st, doc: d.cfg.Doc, self: d.cfg.Self, key: d.cfg.Key, hasForks: len(d.forks) > 0}
}

func (d *logReader) missing(have crdt.VersionVector, cur store.Cursor) ([]store.Entry, store.Cursor, bool, error) {
	batch, next, done, err := d.st.Missing(have, cur)
	if err != nil {
		return batch, next, done, err
	}
	if done && len(batch) == 0 {
		// The fork proofs follow the log, in a batch of their own.
		return d.forkEntries(), next, true, nil
	}
	if done && d.hasForks {
		done = false // the next call, past the end, serves the proofs
	}
	if d.legacy {
		return d.withoutSeqs(d.singles(batch)), next, done, nil
	}
	out := make([]store.Entry, 0, len(batch))
	var run []store.Entry
	flushRun := func() {
		if len(run) == 0 {
			return
		}
		if len(run) == 1 {
			out = append(out, d.readableOwn(run[0]))
		} else if agg, err := d.aggregate(run); err == nil {
			out = append(out, agg)
		} else {
			d.warns = append(d.warns, fmt.Errorf("aggregate failed; sending the run: %w", err))
			out = append(out, run...)
		}
		run = run[:0]
	}
	// Markers point at the slot of their aggregate, which follows them:
	// send each aggregate once per batch.
	var sent map[crdt.Dot]bool
	for _, e := range batch {
		if sent[crdt.Dot{Replica: e.Replica, Counter: e.Seq}] {
			continue // the aggregate a marker already sent
		}
		if at, ok := wire.DecodeMarker(e.Data); ok {
			flushRun()
			if sent[crdt.Dot{Replica: e.Replica, Counter: at}] {
				continue
			}
			target, err := d.st.Get(e.Replica, at)
			if err != nil {
				continue // compacted meanwhile: the snapshot covers it
			}
			if _, isMarker := wire.DecodeMarker(target.Data); isMarker {
				d.warns = append(d.warns, fmt.Errorf("marker points at a marker: %s/%d", e.Replica, e.Seq))
				continue
			}
			out = append(out, target)
			if sent == nil {
				sent = map[crdt.Dot]bool{}
			}
			sent[crdt.Dot{Replica: e.Replica, Counter: at}] = true
			continue
		}
		if e.Replica == d.self && len(run) < wire.MaxAggregateRun && (len(run) == 0 || run[len(run)-1].Seq+1 == e.Seq) {
			run = append(run, e)
			continue
		}
		flushRun()
		if e.Replica == d.self {
			run = append(run, e)
			continue
		}
		out = append(out, e)
	}
	flushRun()
	return d.withoutSeqs(out), next, done, nil
}

// withoutSeqs leaves out, for a peer that did not announce
// wire.FeatureSequences, the envelopes whose payloads hold sequences (it
// would refuse them): such a peer cannot hold a document that has them.
// For a peer that did not announce wire.FeatureCompactSplice it leaves
// out the compact envelopes (see readableOwn for this node's own).
func (d *logReader) withoutSeqs(batch []store.Entry) []store.Entry {
	if !d.noSeqs && !d.noCompact {
		return batch
	}
	out := batch[:0]
	for _, e := range batch {
		if env, err := wire.DecodeEnvelope(e.Data, StoredLimits); err == nil {
			switch {
			case d.noSeqs && env.Features.Has(wire.FeatureSequences):
				d.seqsLeft++
				continue
			case d.noCompact && env.Features.Has(wire.FeatureCompactSplice):
				d.compactLeft++
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// singles returns the entries of batch a peer that did not announce
// wire.FeatureAggregates can take: single deltas. Aggregates (and the
// markers pointing at them) are left out, and counted: such a peer gets
// those sequence numbers from a peer holding them one by one, or not at
// all.
func (d *logReader) singles(batch []store.Entry) []store.Entry {
	out := make([]store.Entry, 0, len(batch))
	for _, e := range batch {
		if _, ok := wire.DecodeMarker(e.Data); ok {
			d.skipped++
			continue
		}
		if env, err := wire.DecodeEnvelope(e.Data, StoredLimits); err != nil || env.Last != 0 {
			d.skipped++
			continue
		}
		out = append(out, e)
	}
	return out
}

// aggregate joins a run of consecutive own deltas from the log into one
// signed envelope (errAggregateTooLarge when the join would exceed
// MaxPayload).
func (d *logReader) aggregate(run []store.Entry) (store.Entry, error) {
	envs := make([]*wire.Envelope, len(run))
	for i, e := range run {
		env, err := wire.DecodeEnvelope(e.Data, StoredLimits)
		if err != nil {
			return store.Entry{}, err
		}
		envs[i] = env
	}
	env, err := Coalesce(d.doc, d.self, d.key, envs)
	if err != nil {
		return store.Entry{}, err
	}
	if env == nil {
		return store.Entry{}, fmt.Errorf("%w: the join of %d deltas is over %d bytes", errAggregateTooLarge, len(run), MaxPayload)
	}
	b, err := wire.EncodeEnvelope(env)
	if err != nil {
		return store.Entry{}, err
	}
	return store.Entry{Replica: d.self, Seq: env.Last, Data: b}, nil
}

// Coalesce joins a run of self's deltas with consecutive sequence
// numbers into one aggregate: their join, signed once. It returns nil, and
// no error, when the join's payload would exceed MaxPayload: the run then
// travels as it is (each of its deltas fits).
// It is a pure function, safe for concurrent use (gossip coalesces the runs
// it queues on its shared publish workers).
func Coalesce(doc string, self crdt.ReplicaID, key crypto.PrivKey, run []*wire.Envelope) (*wire.Envelope, error) {
	if len(run) < 2 || len(run) > wire.MaxAggregateRun {
		return nil, fmt.Errorf("aggregate of %d deltas", len(run))
	}
	var hlc, dot uint64
	payloads := make([][]byte, len(run))
	for i, env := range run {
		switch {
		case env.Origin != self:
			return nil, fmt.Errorf("aggregate of a delta by %s", env.Origin)
		case env.Last != 0:
			return nil, fmt.Errorf("own aggregate in the run at %d", env.Seq)
		case i > 0 && env.Seq != run[i-1].Seq+1:
			return nil, fmt.Errorf("run not consecutive at %d", env.Seq)
		}
		payloads[i] = env.Payload
		hlc, dot = max(hlc, env.HLC), max(dot, env.Dot)
	}
	// Fresh register sets that touch none of one another's keys (a bulk
	// load) join without being decoded: the same bytes, a fraction of the
	// work.
	if payload, ok := crdt.JoinDisjointDeltas(self, payloads, payloadLimits); ok {
		return signAggregate(doc, self, key, run, hlc, dot, 0, payload)
	}
	joined := crdt.New()
	for _, env := range run {
		d := env.Delta
		if d == nil {
			var err error
			if d, err = crdt.DecodeDelta(env.Payload, env.Origin, payloadLimits); err != nil {
				return nil, err
			}
		}
		joined.JoinDelta(d)
	}
	return signAggregate(doc, self, key, run, hlc, dot, deltaFeatures(joined), crdt.EncodeDelta(joined, self))
}

// signAggregate returns the aggregate of run with the joined payload, signed;
// nil when the payload is over MaxPayload.
func signAggregate(doc string, self crdt.ReplicaID, key crypto.PrivKey, run []*wire.Envelope, hlc, dot uint64, f wire.Features, payload []byte) (*wire.Envelope, error) {
	if len(payload) > MaxPayload {
		return nil, nil
	}
	env := &wire.Envelope{Doc: doc, Origin: self, Seq: run[0].Seq, Last: run[len(run)-1].Seq, HLC: hlc, Dot: dot, Features: f, Payload: payload}
	if err := wire.SignEnvelope(key, env); err != nil {
		return nil, err
	}
	return env, nil
}

// errAggregateTooLarge: a run's join is too big for one envelope; the run
// is sent as it is.
var errAggregateTooLarge = errors.New("concord: aggregate too large")
