package concord

import (
	"context"
	"fmt"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Serving the log to a peer catching up: markers resolved, and runs of
// this node's own deltas joined into aggregates.

// Missing implements cnet.Replica. It reads the log and rewrites what it
// sends: a marker becomes the aggregate it points to, and a run of this
// node's own deltas becomes one aggregate — their join, signed once — so a
// peer catching up receives the net effect of the run, not its history.
func (r *replica) Missing(ctx context.Context, have crdt.VersionVector, cur store.Cursor) ([]store.Entry, store.Cursor, bool, error) {
	batch, next, done, err := r.d.store.Missing(ctx, r.doc, have, cur)
	if err != nil {
		return batch, next, done, err
	}
	if done && len(batch) == 0 {
		// The fork proofs follow the log, in a batch of their own.
		return r.forkEntries(ctx), next, true, nil
	}
	if done && r.hasForks() {
		done = false // the next call, past the end, serves the proofs
	}
	out := make([]store.Entry, 0, len(batch))
	var run []store.Entry
	flushRun := func() {
		if len(run) == 0 {
			return
		}
		if len(run) == 1 {
			out = append(out, run[0])
		} else if agg, err := r.aggregate(run); err == nil {
			out = append(out, agg)
		} else {
			r.d.log.Warn("aggregate failed; sending the run", "doc", r.doc, "err", err)
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
			target, err := r.d.store.Get(ctx, r.doc, e.Replica, at)
			if err != nil {
				continue // compacted meanwhile: the snapshot covers it
			}
			if _, isMarker := wire.DecodeMarker(target.Data); isMarker {
				r.d.log.Warn("marker points at a marker", "doc", r.doc, "replica", e.Replica, "seq", e.Seq)
				continue
			}
			out = append(out, target)
			if sent == nil {
				sent = map[crdt.Dot]bool{}
			}
			sent[crdt.Dot{Replica: e.Replica, Counter: at}] = true
			continue
		}
		if e.Replica == r.d.self && len(run) < wire.MaxAggregateRun && (len(run) == 0 || run[len(run)-1].Seq+1 == e.Seq) {
			run = append(run, e)
			continue
		}
		flushRun()
		if e.Replica == r.d.self {
			run = append(run, e)
			continue
		}
		out = append(out, e)
	}
	flushRun()
	return out, next, done, nil
}

// aggregate joins a run of consecutive own deltas from the log into one
// signed envelope (errAggregateTooLarge when the join would exceed
// maxPayload).
func (r *replica) aggregate(run []store.Entry) (store.Entry, error) {
	envs := make([]*wire.Envelope, len(run))
	for i, e := range run {
		env, err := wire.DecodeEnvelope(e.Data, storedLimits)
		if err != nil {
			return store.Entry{}, err
		}
		envs[i] = env
	}
	env, err := r.coalesce(envs)
	if err != nil {
		return store.Entry{}, err
	}
	if env == nil {
		return store.Entry{}, fmt.Errorf("%w: the join of %d deltas is over %d bytes", errAggregateTooLarge, len(run), maxPayload)
	}
	b, err := wire.EncodeEnvelope(env)
	if err != nil {
		return store.Entry{}, err
	}
	return store.Entry{Replica: r.d.self, Seq: env.Last, Data: b}, nil
}

// coalesce joins a run of this node's deltas with consecutive sequence
// numbers into one aggregate: their join, signed once. It returns nil, and
// no error, when the join's payload would exceed maxPayload: the run then
// travels as it is (each of its deltas fits).
func (r *replica) coalesce(run []*wire.Envelope) (*wire.Envelope, error) {
	if len(run) < 2 || len(run) > wire.MaxAggregateRun {
		return nil, fmt.Errorf("aggregate of %d deltas", len(run))
	}
	joined := crdt.New()
	var hlc, dot uint64
	for i, env := range run {
		switch {
		case env.Origin != r.d.self:
			return nil, fmt.Errorf("aggregate of a delta by %s", env.Origin)
		case env.Last != 0:
			return nil, fmt.Errorf("own aggregate in the run at %d", env.Seq)
		case i > 0 && env.Seq != run[i-1].Seq+1:
			return nil, fmt.Errorf("run not consecutive at %d", env.Seq)
		}
		d := env.Delta
		if d == nil {
			var err error
			if d, err = crdt.DecodeDelta(env.Payload, env.Origin, payloadLimits); err != nil {
				return nil, err
			}
		}
		joined.Merge(d)
		hlc, dot = max(hlc, env.HLC), max(dot, env.Dot)
	}
	payload := crdt.EncodeDelta(joined, r.d.self)
	if len(payload) > maxPayload {
		return nil, nil
	}
	env := &wire.Envelope{Doc: r.doc, Origin: r.d.self, Seq: run[0].Seq, Last: run[len(run)-1].Seq, HLC: hlc, Dot: dot, Payload: payload}
	if err := wire.SignEnvelope(r.d.key, env); err != nil {
		return nil, err
	}
	return env, nil
}
