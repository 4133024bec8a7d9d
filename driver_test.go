package concord

import (
	"context"
	"fmt"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Test helpers that step a document's engine directly.

// ingest hands envs to the engine as gossip (validated) or the sync
// stream would, and waits until what it stored is durable.
func (r *driver) ingest(ctx context.Context, from peer.ID, envs []*wire.Envelope, gossip bool) error {
	var id uint64
	r.step(func(e *engine.Doc) { id = e.Receive(r.d.now(), from, envs, gossip) })
	for {
		r.mu.Lock()
		ok := id == 0 || r.eng.Settled(id)
		err := r.eng.Failed()
		ch := r.advanced
		r.mu.Unlock()
		if ok {
			r.settle() // its Ready carried out: metrics counted
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Ingest is ingest on the sync stream's path.
func (r *driver) Ingest(ctx context.Context, from peer.ID, envs []*wire.Envelope) error {
	return r.ingest(ctx, from, envs, false)
}

// IngestSnapshot checks, merges and stores a snapshot from peer from, as
// an exchange would.
func (r *driver) IngestSnapshot(ctx context.Context, from peer.ID, snap wire.Snapshot) error {
	err := r.ask(ctx, func(e *engine.Doc, t uint64) (uint64, error) {
		t |= 1 << 61
		return t, e.ReceiveSnapshot(from, snap, t)
	})
	r.settle()
	return err
}

// aggregate joins a run of own log entries into one signed aggregate, as
// the engine serves them.
func (r *driver) aggregate(run []store.Entry) (store.Entry, error) {
	envs := make([]*wire.Envelope, len(run))
	for i, e := range run {
		env, err := wire.DecodeEnvelope(e.Data, storedLimits)
		if err != nil {
			return store.Entry{}, err
		}
		envs[i] = env
	}
	env, err := r.coalesce(envs)
	if err != nil || env == nil {
		return store.Entry{}, fmt.Errorf("aggregate: %v", err)
	}
	b, err := wire.EncodeEnvelope(env)
	return store.Entry{Replica: r.d.self, Seq: env.Last, Data: b}, err
}

// snapshotFor returns the snapshot an exchange would send peer p at have
// first, if any.
func (r *driver) snapshotFor(ctx context.Context, p peer.ID, have crdt.VersionVector) (wire.Snapshot, bool, error) {
	x := r.Exchange(p, wire.DefaultSyncLimits())
	defer x.Close()
	if err := x.Handle(ctx, &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: r.doc, VV: have}); err != nil {
		return wire.Snapshot{}, false, err
	}
	m, err := x.Next(ctx)
	if err != nil || m == nil || m.Type != wire.TypeSyncSnapshot {
		return wire.Snapshot{}, false, err
	}
	return wire.Snapshot{State: m.State, VV: m.VV, Heads: m.Heads}, true, nil
}

// missing reads what the engine serves a peer at have.
func (r *driver) missing(have crdt.VersionVector, cur store.Cursor) (out []store.Entry, next store.Cursor, done bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, next, done, err = r.eng.Missing(have, cur)
	r.eng.Ready() // warnings only
	return
}

// settle waits until the driver's queued work is done.
func (r *driver) settle() {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	for r.scheduled || r.inflight > 0 || len(r.work) > 0 || len(r.outcomes) > 0 {
		r.room.Wait()
	}
}

// withEngine runs fn on the engine under the lock and queues its Ready.
func (r *driver) withEngine(fn func(e *engine.Doc)) { r.step(fn) }
