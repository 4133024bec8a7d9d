package concord

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/store"
)

// Doc is one document hosted by a Node: a JSON-like tree of registers,
// counters, sets and maps that converges on every peer. Writes are durable
// when they return; reads see local writes at once and remote ones as they
// arrive. A Doc is safe for concurrent use.
type Doc struct {
	n     *Node
	name  string
	r     *replica
	topic *cnet.Topic

	gapMu    sync.Mutex
	gapTimer *time.Timer          // pending gap check, at most one
	gaps     map[crdt.Dot]peer.ID // deltas whose predecessor was missing → who sent them
	gapDone  bool

	sumMu     sync.Mutex
	summaries map[crdt.ReplicaID]seenSummary // last summary per origin
}

type seenSummary struct {
	vv crdt.VersionVector
	at time.Time
}

// maxSummaryOrigins bounds the remembered summaries per document. Past it,
// origins not heard from for summaryStale are forgotten first, so a flood of
// made-up origins does not push out the peers that keep beaconing.
const (
	maxSummaryOrigins = 4096
	summaryStale      = 30 * time.Second
)

// swapSummary stores vv as origin's latest summary and returns the one
// before it (nil for the first).
func (d *Doc) swapSummary(origin crdt.ReplicaID, vv crdt.VersionVector) crdt.VersionVector {
	d.sumMu.Lock()
	defer d.sumMu.Unlock()
	now := time.Now()
	if d.summaries == nil {
		d.summaries = map[crdt.ReplicaID]seenSummary{}
	}
	if _, ok := d.summaries[origin]; !ok && len(d.summaries) >= maxSummaryOrigins {
		for o, s := range d.summaries {
			if now.Sub(s.at) > summaryStale {
				delete(d.summaries, o)
			}
		}
		if len(d.summaries) >= maxSummaryOrigins {
			d.n.metrics.Drop("summaries", "full")
			return nil // remembered origins are all live: ignore a new one
		}
	}
	prev := d.summaries[origin]
	d.summaries[origin] = seenSummary{vv: vv, at: now}
	return prev.vv
}

// gapGrace is how long a gap in a replica's deltas may last before an
// anti-entropy exchange is started to fill it.
const gapGrace = 150 * time.Millisecond

// maxGaps bounds the gaps remembered until the next check; more are
// dropped (and counted): the summary beacons repair them too.
const maxGaps = 256

// checkGapLater notes that seq of origin arrived before seq-1; after
// gapGrace, an exchange with its sender repairs every noted gap still open.
func (d *Doc) checkGapLater(from peer.ID, origin crdt.ReplicaID, seq uint64) {
	d.gapMu.Lock()
	defer d.gapMu.Unlock()
	if d.gapDone {
		return
	}
	if d.gaps == nil {
		d.gaps = map[crdt.Dot]peer.ID{}
	}
	if len(d.gaps) >= maxGaps {
		d.n.metrics.Drop("gap_checks", "full")
		return
	}
	d.gaps[crdt.Dot{Replica: origin, Counter: seq}] = from
	if d.gapTimer == nil {
		d.gapTimer = time.AfterFunc(gapGrace, d.repairGaps)
	}
}

// repairGaps runs an exchange with the sender of each gap still open.
func (d *Doc) repairGaps() {
	d.gapMu.Lock()
	gaps := d.gaps
	d.gaps, d.gapTimer = nil, nil
	done := d.gapDone
	d.gapMu.Unlock()
	if done {
		return
	}
	senders := map[peer.ID]bool{}
	for g, from := range gaps {
		if !d.n.st.Has(d.name, g.Replica, g.Counter-1) {
			senders[from] = true
		}
	}
	for p := range senders {
		d.n.syncer.Trigger(p, d.r)
	}
}

// stopGapChecks cancels a pending gap check; called on close.
func (d *Doc) stopGapChecks() {
	d.gapMu.Lock()
	defer d.gapMu.Unlock()
	d.gapDone = true
	if d.gapTimer != nil {
		d.gapTimer.Stop()
		d.gapTimer = nil
	}
}

// Name returns the document name.
func (d *Doc) Name() string { return d.name }

// JSON returns the JSON view of the whole document.
func (d *Doc) JSON() json.RawMessage {
	d.r.mu.Lock()
	defer d.r.mu.Unlock()
	return d.r.state.JSON()
}

// Get returns the JSON view of what path holds; false when nothing is there.
func (d *Doc) Get(path ...string) (json.RawMessage, bool) {
	d.r.mu.Lock()
	defer d.r.mu.Unlock()
	return d.r.state.Get(path)
}

// Kind returns the kind of CRDT at path.
func (d *Doc) Kind(path ...string) crdt.Kind {
	d.r.mu.Lock()
	defer d.r.mu.Unlock()
	return d.r.state.KindAt(path)
}

// Conflicts returns every concurrent value of the register at path, the
// shown (winning) one first.
func (d *Doc) Conflicts(path ...string) []crdt.RegisterValue {
	d.r.mu.Lock()
	defer d.r.mu.Unlock()
	return d.r.state.Conflicts(path)
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
	ops []crdt.Op
	err error
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
	t.ops = append(t.ops, crdt.Set(path, t.value(v)))
	return t
}

// Delete removes what path holds.
func (t *Txn) Delete(path ...string) *Txn {
	t.ops = append(t.ops, crdt.Delete(path))
	return t
}

// Inc adds by to the counter at path.
func (t *Txn) Inc(path []string, by int64) *Txn {
	t.ops = append(t.ops, crdt.Inc(path, by))
	return t
}

// Add adds the scalar v to the set at path.
func (t *Txn) Add(path []string, v any) *Txn {
	t.ops = append(t.ops, crdt.Add(path, t.value(v)))
	return t
}

// Remove removes the scalar v from the set at path.
func (t *Txn) Remove(path []string, v any) *Txn {
	t.ops = append(t.ops, crdt.Remove(path, t.value(v)))
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
	return d.Apply(ctx, t.ops...)
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
