package concord

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Doc is one document hosted by a Node: a JSON-like tree of registers,
// counters, sets and maps that converges on every peer. Writes are durable
// when they return; reads see local writes at once and remote ones as they
// arrive. A Doc is safe for concurrent use.
type Doc struct {
	n     *Node
	name  string
	r     *driver
	topic *cnet.Topic
}

// Name returns the document name.
func (d *Doc) Name() string { return d.name }

// JSON returns the JSON view of the whole document.
func (d *Doc) JSON() (out json.RawMessage) {
	d.r.view(func(st *crdt.State) { out = st.JSON() })
	return out
}

// Get returns the JSON view of what path holds; false when nothing is there.
func (d *Doc) Get(path ...string) (v json.RawMessage, ok bool) {
	d.r.view(func(st *crdt.State) { v, ok = st.Get(path) })
	return v, ok
}

// Kind returns the kind of CRDT at path.
func (d *Doc) Kind(path ...string) (k crdt.Kind) {
	d.r.view(func(st *crdt.State) { k = st.KindAt(path) })
	return k
}

// Conflicts returns every concurrent value of the register at path, the
// shown (winning) one first.
func (d *Doc) Conflicts(path ...string) (vs []crdt.RegisterValue) {
	d.r.view(func(st *crdt.State) { vs = st.Conflicts(path) })
	return vs
}

func toJSON(v any) (json.RawMessage, error) {
	switch v := v.(type) {
	case json.RawMessage:
		return v, nil
	case []byte:
		return json.RawMessage(v), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", crdt.ErrInvalidValue, err)
	}
	return b, nil
}

// Txn collects ops to apply as one transaction (one delta): all or none.
type Txn struct {
	ops   []crdt.Op
	bases []uint64 // bases[i]: the change ops[i] was made after (0: none)
	err   error
}

// value marshals v, keeping the first error for Update to return.
func (t *Txn) value(v any) json.RawMessage {
	b, err := toJSON(v)
	if err != nil && t.err == nil {
		t.err = err
	}
	return b
}

// Set writes v (any JSON-marshalable value, or json.RawMessage) at path.
func (t *Txn) Set(path []string, v any) *Txn {
	t.add(crdt.Set(path, t.value(v)))
	return t
}

// Delete removes what path holds.
func (t *Txn) Delete(path ...string) *Txn {
	t.add(crdt.Delete(path))
	return t
}

// Inc adds by to the counter at path.
func (t *Txn) Inc(path []string, by int64) *Txn {
	t.add(crdt.Inc(path, by))
	return t
}

// Add adds the scalar v to the set at path.
func (t *Txn) Add(path []string, v any) *Txn {
	t.add(crdt.Add(path, t.value(v)))
	return t
}

// Remove removes the scalar v from the set at path.
func (t *Txn) Remove(path []string, v any) *Txn {
	t.add(crdt.Remove(path, t.value(v)))
	return t
}

// Ops returns the collected ops.
func (t *Txn) Ops() []crdt.Op { return t.ops }

// Update builds a transaction with fn and applies it as one delta. Nothing is
// applied when any op is invalid; the error wraps crdt.ErrTypeConflict,
// crdt.ErrInvalidPath, crdt.ErrInvalidValue or crdt.ErrInvalidOp.
func (d *Doc) Update(ctx context.Context, fn func(*Txn)) error {
	var t Txn
	fn(&t)
	if t.err != nil {
		return t.err
	}
	_, err := d.r.applyAt(ctx, t.ops, t.bases)
	return err
}

// Commit is Update that also returns the number of the change that holds
// the transaction (Change.N): a client that reads changes from a stream
// knows its own write by it.
func (d *Doc) Commit(ctx context.Context, fn func(*Txn)) (n uint64, err error) {
	var t Txn
	fn(&t)
	if t.err != nil {
		return 0, t.err
	}
	return d.r.applyAt(ctx, t.ops, t.bases)
}

// Apply applies ops as one transaction. It returns once the delta is on
// disk (synced); it is then gossiped and kept in the outbox until a peer
// acknowledges it.
func (d *Doc) Apply(ctx context.Context, ops ...crdt.Op) error { return d.r.apply(ctx, ops) }

// Set writes v at path.
func (d *Doc) Set(ctx context.Context, path []string, v any) error {
	return d.Update(ctx, func(t *Txn) { t.Set(path, v) })
}

// Delete removes what path holds.
func (d *Doc) Delete(ctx context.Context, path ...string) error {
	return d.Apply(ctx, crdt.Delete(path))
}

// Inc adds by to the counter at path.
func (d *Doc) Inc(ctx context.Context, path []string, by int64) error {
	return d.Apply(ctx, crdt.Inc(path, by))
}

// Add adds the scalar v to the set at path.
func (d *Doc) Add(ctx context.Context, path []string, v any) error {
	return d.Update(ctx, func(t *Txn) { t.Add(path, v) })
}

// Remove removes the scalar v from the set at path.
func (d *Doc) Remove(ctx context.Context, path []string, v any) error {
	return d.Update(ctx, func(t *Txn) { t.Remove(path, v) })
}

// Subscribe returns a subscription to the document's changes with a buffer
// of the given size (default 64).
func (d *Doc) Subscribe(buffer int) *Subscription { return d.r.subscribe(buffer) }

// DocStatus is a document's synchronisation state.
type DocStatus struct {
	// Version is the contiguous version vector of the deltas held.
	Version crdt.VersionVector
	// Outbox is the number of own deltas no peer has acknowledged yet.
	Outbox int
	// Peers are the peers known to subscribe to the document's topic.
	Peers []peer.ID
}

// Status returns the document's synchronisation state.
func (d *Doc) Status() DocStatus {
	return DocStatus{Version: d.r.Version(), Outbox: d.n.st.OutboxDepth(d.name), Peers: d.topic.Peers()}
}

// WaitAcked returns once peers (as many as the ack count) hold every delta
// written so far, or when ctx ends.
func (d *Doc) WaitAcked(ctx context.Context) error { return d.r.waitAcked(ctx) }

// Sync runs one anti-entropy exchange with p now and returns its counts.
func (d *Doc) Sync(ctx context.Context, p peer.ID) (cnet.SyncStats, error) {
	return d.n.syncer.Sync(ctx, p, d.r)
}

// Compact folds into the snapshot every log entry that all peers known to
// hold the document have (the same rule as automatic compaction, without
// its threshold).
func (d *Doc) Compact(ctx context.Context) error { return d.r.compactNow(ctx) }

// LackingSizes reports, for each stored delta a peer holding version have
// lacks from this node's log, the bytes of its encoded envelope and of its
// payload (the encoded delta). It is a diagnostic, as Lacking is.
func (d *Doc) LackingSizes(ctx context.Context, have crdt.VersionVector) (envelope, payload []int, err error) {
	var cur store.Cursor
	for {
		batch, next, done, err := d.n.st.Missing(ctx, d.name, have, cur)
		if err != nil {
			return envelope, payload, err
		}
		for _, e := range batch {
			env, err := wire.DecodeEnvelope(e.Data, storedLimits)
			if err != nil {
				continue // a marker: its aggregate is counted where it is stored
			}
			envelope, payload = append(envelope, len(e.Data)), append(payload, len(env.Payload))
		}
		cur = next
		if done {
			return envelope, payload, nil
		}
	}
}

// Lacking reports how many stored deltas, and how many bytes of encoded
// envelopes, a peer holding version have lacks from this node's log. It is a
// diagnostic (benchmarks use it to relate sync traffic to the data owed).
func (d *Doc) Lacking(ctx context.Context, have crdt.VersionVector) (deltas, bytes int, err error) {
	var cur store.Cursor
	for {
		batch, next, done, err := d.n.st.Missing(ctx, d.name, have, cur)
		if err != nil {
			return deltas, bytes, err
		}
		for _, e := range batch {
			deltas++
			bytes += len(e.Data)
		}
		cur = next
		if done {
			return deltas, bytes, nil
		}
	}
}
