package concord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// storedLimits bound envelopes read from the log or the sync stream. They are
// looser than gossip's: a delta holding one value too big for a gossip
// envelope (see maxPayload) travels through the sync stream, as do deltas
// of older versions that did not split.
var storedLimits = wire.Limits{
	MaxMessageBytes: MaxTxnBytes*4 + 64<<10,
	MaxEnvelopes:    1 << 16,
	MaxVVEntries:    4096,
	MaxPayloadBytes: MaxTxnBytes * 4,
}

// payloadLimits bound a decoded delta payload: as large as storedLimits
// allow (a delete of a big map covers many dots), elements bounded by bytes.
var payloadLimits = crdt.Limits{MaxBytes: MaxTxnBytes * 4, MaxElements: MaxTxnBytes * 4}

// maxPayload bounds the payload of every envelope this node signs: each own
// delta, cut into pieces at flush time when it is bigger (see
// crdt.SplitDelta), and each aggregate. It is what one gossip envelope
// carries, so every delta travels on gossip — except a piece holding one
// value bigger than that alone (at most MaxTxnBytes), which the sync stream
// carries (storedLimits).
var maxPayload = wire.DefaultLimits().MaxPayloadBytes

// maxClockLead is how far ahead of our wall clock a remote timestamp may
// pull our HLC: a peer with a wild clock cannot drag everyone's clock into
// the future (its value still counts for its own register writes).
const maxClockLead = time.Minute

// rejectError is a refused envelope with its metrics reason.
type rejectError struct {
	reason string
	err    error
}

func (e *rejectError) Error() string  { return e.reason + ": " + e.err.Error() }
func (e *rejectError) Unwrap() error  { return e.err }
func (e *rejectError) Reason() string { return e.reason }

func reject(reason string, err error) error { return &rejectError{reason, err} }

// replicaDeps is what a replica needs from its node. Tests build replicas
// from it without libp2p.
type replicaDeps struct {
	store         *store.Store
	key           crypto.PrivKey
	self          crdt.ReplicaID
	selfPeer      peer.ID
	writers       map[peer.ID]bool // nil: anyone
	ackPeers      int
	trustAuthor   bool // skip signature checks of envelopes from their own author
	snapshotAfter int
	compactAfter  int
	retention     time.Duration // peers silent this long do not hold compaction back (0: forever)
	now           func() time.Time
	metrics       *cnet.Metrics
	log           *slog.Logger
	publish       func(*wire.Envelope) // gossip; may be nil
	// onEquivocation, optional, is told of every fork found (fork.go).
	onEquivocation func(EquivocationEvent)
	// pieceBytes bounds an own delta's payload (0: maxPayload); tests lower it.
	pieceBytes int
}

// replica is one document on one node: the CRDT state, its durable log and
// outbox, the local write path (group commit into one signed delta per
// flush) and the receive path (verify → merge → persist → notify). It
// implements cnet.Replica for the sync protocol.
type replica struct {
	doc string
	d   replicaDeps

	ingestMu     sync.Mutex         // serialises Ingest and IngestSnapshot
	ingestQ      chan durableChange // gossip changes awaiting durability (bounded: backpressure)
	ingestClosed bool               // under ingestMu
	// placing holds the log slots of received envelopes queued for the
	// store but not yet durable (store.Has does not see them yet), so that
	// a concurrent ingest neither takes them as free nor re-places them.
	placingMu sync.Mutex
	placing   map[crdt.Dot][]byte // slot → the entry's data (an envelope or a marker)
	verified  *verifiedCache
	forkMu    sync.Mutex
	forks     map[forkKey]bool            // fork proofs held (fork.go)
	claims    map[crdt.ReplicaID]claimRef // under mu (heads.go)
	snapCache struct {                    // last fresh snapshot served (under ingestMu)
		vv    crdt.VersionVector
		data  []byte
		heads [][]byte
	}

	mu        sync.Mutex
	state     *crdt.State
	clock     crdt.HLC
	nextSeq   uint64
	signedHLC crdt.HLC // of the last own delta signed
	pending   *crdt.State
	pendPaths [][]string
	waiters   []chan error
	peerVV    map[peer.ID]crdt.VersionVector
	peerSeen  map[peer.ID]time.Time
	acked     uint64
	ackCh     chan struct{}
	subs      map[*Subscription]struct{}
	inflightN int        // own deltas taken from pending, not yet durable
	cutGen    uint64     // flushes taken from pending so far
	seqGen    uint64     // of those, the last whose pieces have sequence numbers
	holdN     int        // encodeDurable calls holding new writes back
	cond      *sync.Cond // on mu: inflightN, holdN or seqGen changed
	failed    error
	closed    bool
	compactOn bool

	kick chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup
}

var _ cnet.Replica = (*replica)(nil)

// openReplica loads doc from the store (snapshot, then log) and starts its
// flusher.
func openReplica(ctx context.Context, doc string, d replicaDeps) (*replica, error) {
	r := &replica{
		doc: doc, d: d, state: crdt.New(), peerVV: map[peer.ID]crdt.VersionVector{}, peerSeen: map[peer.ID]time.Time{},
		ackCh: make(chan struct{}), subs: map[*Subscription]struct{}{},
		kick: make(chan struct{}, 1), quit: make(chan struct{}),
		verified: newVerifiedCache(1 << 16),
		ingestQ:  make(chan durableChange, 64),
		placing:  map[crdt.Dot][]byte{},
		forks:    map[forkKey]bool{},
		claims:   map[crdt.ReplicaID]claimRef{},
	}
	r.cond = sync.NewCond(&r.mu)
	snap, ok, err := d.store.Snapshot(ctx, doc)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("concord: load snapshot of %q: %w", doc, err)
	}
	if ok {
		st, err := crdt.Decode(snap.State, crdt.DefaultLimits())
		if err != nil {
			return nil, fmt.Errorf("concord: decode snapshot of %q: %w", doc, err)
		}
		r.state = st
		r.clock = crdt.HLC(snap.Clock)
		for _, e := range decodeHeads(snap.Heads) {
			if d, err := crdt.DecodeDelta(e.Payload, e.Origin, payloadLimits); err == nil {
				r.noteClaims(d, e.Origin, e.LastSeq())
			}
		}
	}
	var bad []error
	err = d.store.Entries(ctx, doc, func(e store.Entry) error {
		if _, ok := wire.DecodeMarker(e.Data); ok {
			return nil // covered by an aggregate stored at another seq
		}
		env, err := wire.DecodeEnvelope(e.Data, storedLimits)
		if err != nil {
			bad = append(bad, fmt.Errorf("entry %s/%d: %w", e.Replica, e.Seq, err))
			return nil
		}
		delta, err := crdt.DecodeDelta(env.Payload, env.Origin, payloadLimits)
		if err != nil {
			bad = append(bad, fmt.Errorf("entry %s/%d: %w", e.Replica, e.Seq, err))
			return nil
		}
		r.state.Merge(delta)
		r.noteClaims(delta, e.Replica, e.Seq)
		if h := crdt.HLC(env.HLC); h > r.clock {
			r.clock = h
		}
		return nil
	})
	if err != nil {
		bad = append(bad, err)
	}
	if err := r.loadForks(ctx); err != nil {
		bad = append(bad, err)
	}
	if len(bad) > 0 {
		// Corrupt records are skipped; anti-entropy fetches them again.
		d.log.Warn("skipped unreadable log entries", "doc", doc, "err", errors.Join(bad...))
	}
	r.nextSeq = d.store.MaxSeq(doc, d.self) + 1
	r.acked = r.nextSeq - 1
	if ob := d.store.Outbox(doc); len(ob) > 0 {
		r.acked = ob[0] - 1
	}
	r.updateOutboxMetric()
	r.wg.Add(2)
	go r.flushLoop()
	go r.announceLoop()
	return r, nil
}

// close stops the flusher after it has flushed what is pending.
func (r *replica) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.cond.Broadcast()
	close(r.ackCh) // wake WaitAcked: it returns ErrClosed
	r.ackCh = make(chan struct{})
	for s := range r.subs {
		close(s.c)
	}
	r.subs = map[*Subscription]struct{}{}
	r.mu.Unlock()
	r.ingestMu.Lock()
	r.ingestClosed = true
	close(r.ingestQ)
	r.ingestMu.Unlock()
	close(r.quit)
	r.wg.Wait()
}

// ---- local writes ----

func txnBytes(ops []crdt.Op) int {
	n := 0
	for _, op := range ops {
		n += len(op.Value) + 16
		for _, k := range op.Path {
			n += len(k)
		}
	}
	return n
}

// apply applies ops locally as one transaction and returns once the delta
// that carries them is durable.
func (r *replica) apply(ctx context.Context, ops []crdt.Op) error {
	if n := txnBytes(ops); n > MaxTxnBytes {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	r.mu.Lock()
	for r.holdN > 0 && !r.closed && r.failed == nil {
		r.cond.Wait() // a snapshot is being taken of durable state only
	}
	switch {
	case r.closed:
		r.mu.Unlock()
		return ErrClosed
	case r.failed != nil:
		r.mu.Unlock()
		return r.failed
	case r.d.writers != nil && !r.d.writers[r.d.selfPeer]:
		r.mu.Unlock()
		return ErrNotWriter
	}
	ts := r.clock.Now(r.d.now().UnixMilli())
	if r.pending == nil {
		r.pending = crdt.New()
	}
	if err := r.state.ApplyTo(r.pending, r.d.self, ts, ops...); err != nil {
		if r.pending.IsEmpty() {
			r.pending = nil
		}
		r.mu.Unlock()
		return err
	}
	r.clock = ts
	if len(r.subs) > 0 {
		for _, op := range ops {
			r.pendPaths = append(r.pendPaths, op.Path)
		}
	}
	ch := make(chan error, 1)
	r.waiters = append(r.waiters, ch)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err() // the write may still become durable
	}
}

// inflightFlush is an own delta queued for commit: one envelope, or
// several when the delta was too big for one (consecutive sequence numbers,
// appended in one synced batch).
type inflightFlush struct {
	envs      []*wire.Envelope
	done      <-chan error
	err       error
	waiters   []chan error
	paths     [][]string
	synced    chan struct{} // closed once the delta is durable (or failed)
	completed chan struct{} // closed once complete has run
}

// pipelineMin is how many writes a delta must carry before, once durable,
// it is completed (published, announced, its writers answered) in the
// background while the next delta is cut and synced. A lone writer's deltas
// (one write each) complete inline: with a goroutine handoff for every delta
// the 8-writer convergence benchmark measured 0.98–1.18 s instead of
// 0.14–0.16 s.
const pipelineMin = 8

// flushLoop turns pending writes into deltas: while one is being synced,
// the writes arriving meanwhile gather into the next (group commit). The
// next delta is cut once the previous one is durable, not before: cutting
// while the store is busy makes small deltas that each cost a sync of
// their own. One goroutine completes the deltas (publish, notify, answer
// writers), in order, while the next is cut and synced.
func (r *replica) flushLoop() {
	defer r.wg.Done()
	// At most two deltas are with the completer: one being completed and
	// the next, durable or being synced.
	q := make(chan *inflightFlush, 1)
	completer := make(chan struct{})
	go func() {
		defer close(completer)
		for f := range q {
			r.complete(f)
			close(f.completed)
		}
	}()
	defer func() {
		close(q)
		<-completer
	}()
	var last *inflightFlush // the latest delta handed to the completer
	for {
		quit := false
		select {
		case <-r.kick:
		case <-r.quit:
			quit = true
		}
		f := r.startFlush()
		switch {
		case f == nil:
		case len(f.waiters) >= pipelineMin && !quit:
			f.synced, f.completed = make(chan struct{}), make(chan struct{})
			q <- f
			last = f
			<-f.synced
		default:
			// A small delta completes here: no goroutine handoff, which
			// costs more than it saves when CPU is scarce. Completions stay
			// in order.
			if last != nil {
				<-last.completed
				last = nil
			}
			r.complete(f)
		}
		if quit {
			return
		}
	}
}

// startFlush turns every pending transaction into one signed delta (or
// several, see queueOwn) and queues it for commit. It returns nil when
// nothing is pending.
func (r *replica) startFlush() *inflightFlush {
	r.mu.Lock()
	delta, waiters, paths := r.pending, r.waiters, r.pendPaths
	r.pending, r.waiters, r.pendPaths = nil, nil, nil
	if delta == nil {
		r.mu.Unlock()
		return nil
	}
	ts := r.clock
	dot := r.state.Context().Max(r.d.self) // pending writes are applied to state already
	failed := r.failed
	r.inflightN++
	r.cutGen++
	gen := r.cutGen
	r.mu.Unlock()
	f := &inflightFlush{waiters: waiters, paths: paths, err: failed}
	if f.err == nil {
		f.envs, f.done, f.err = r.queueOwn(gen, ts, dot, delta)
	}
	return f
}

// complete waits until f is durable, then publishes it and answers its
// writers; a failure marks the replica failed.
func (r *replica) complete(f *inflightFlush) {
	err := f.err
	if err == nil {
		err = <-f.done
	}
	if f.synced != nil {
		close(f.synced)
	}
	if err != nil {
		r.mu.Lock()
		if r.failed == nil {
			r.failed = fmt.Errorf("%w: %w", ErrStorage, err)
			close(r.ackCh) // wake WaitAcked: it returns the failure
			r.ackCh = make(chan struct{})
		}
		err = r.failed
		r.mu.Unlock()
	} else {
		// Persist before publish: a delta peers may hold is always in our log.
		if r.d.publish != nil {
			for _, e := range f.envs {
				r.d.publish(e)
			}
		}
		r.updateOutboxMetric()
		r.notify(Change{Doc: r.doc, Local: true, Origin: r.d.self, Paths: dedupPaths(f.paths)})
	}
	r.mu.Lock()
	r.inflightN--
	r.cond.Broadcast()
	r.mu.Unlock()
	for _, w := range f.waiters {
		w <- err
	}
}

// encodeDurable encodes the state once every own write in it is durable:
// it holds new writes back, lets pending and in-flight ones commit, and
// encodes. A snapshot so never holds an own write without a durable delta
// (which, after a crash, would be kept locally but never sent, or reused).
func (r *replica) encodeDurable() ([]byte, crdt.HLC, *crdt.CausalContext, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holdN++
	defer func() { r.holdN--; r.cond.Broadcast() }()
	for (r.pending != nil || r.inflightN > 0) && r.failed == nil && !r.closed {
		select {
		case r.kick <- struct{}{}:
		default:
		}
		r.cond.Wait()
	}
	if r.failed != nil {
		return nil, 0, nil, r.failed
	}
	if r.pending != nil || r.inflightN > 0 {
		return nil, 0, nil, ErrClosed
	}
	return crdt.Encode(r.state), r.clock, r.state.Context().Clone(), nil
}

// queueOwn signs an own delta and queues it for a synced append. A delta
// whose payload would exceed the bound (a delete of a big map whose values'
// dots are scattered, a group commit of many writes) is split into pieces
// that each fit (crdt.SplitDelta), at consecutive sequence numbers, each
// signed with dot, the author's dot count once the whole delta is applied;
// all are appended (log and outbox) in one synced batch, so they become
// durable together and the delta's writers are answered once. Receivers may
// merge the pieces apart, in any order; together they are the delta.
func (r *replica) queueOwn(gen uint64, ts crdt.HLC, dot uint64, delta *crdt.State) ([]*wire.Envelope, <-chan error, error) {
	bound := r.d.pieceBytes
	if bound <= 0 {
		bound = maxPayload
	}
	pieces := []*crdt.State{delta}
	var payloads [][]byte
	// Each context interval and each value costs at least two bytes: a
	// delta over the bound by that count alone is not encoded whole.
	if 2*(delta.Context().CloudSize()+delta.Dots()) <= bound {
		payloads = append(payloads, crdt.EncodeDelta(delta, r.d.self))
	}
	if len(payloads) == 0 || len(payloads[0]) > bound {
		pieces = crdt.SplitDelta(delta, r.d.self, crdt.Limits{MaxBytes: bound, MaxElements: payloadLimits.MaxElements})
		payloads = payloads[:0]
		for _, p := range pieces {
			payloads = append(payloads, crdt.EncodeDelta(p, r.d.self))
		}
	}
	// Sequence numbers are taken here, once the count is known (only the
	// flusher takes them). Each piece has a timestamp of its own: an
	// author's envelopes never share one, and never go back.
	hlcs := make([]crdt.HLC, len(pieces))
	r.mu.Lock()
	seq := r.nextSeq
	r.nextSeq += uint64(len(pieces))
	for i, p := range pieces {
		if i > 0 || ts <= r.signedHLC {
			r.clock = r.clock.Now(r.d.now().UnixMilli())
			ts = r.clock
		}
		hlcs[i], r.signedHLC = ts, ts
		r.noteClaims(p, r.d.self, seq+uint64(i))
	}
	r.seqGen = gen // waitAcked now knows how far this flush reaches
	r.cond.Broadcast()
	r.mu.Unlock()
	envs := make([]*wire.Envelope, len(pieces))
	entries := make([]store.Entry, len(pieces))
	for i, p := range pieces {
		env := &wire.Envelope{Doc: r.doc, Origin: r.d.self, Seq: seq + uint64(i), HLC: uint64(hlcs[i]), Dot: dot, Payload: payloads[i], Delta: p}
		if err := wire.SignEnvelope(r.d.key, env); err != nil {
			return nil, nil, err
		}
		b, err := wire.EncodeEnvelope(env)
		if err != nil {
			return nil, nil, err
		}
		envs[i] = env
		entries[i] = store.Entry{Replica: r.d.self, Seq: env.Seq, Data: b}
	}
	done, err := r.d.store.AppendAsync(context.Background(), r.doc, r.d.self, entries)
	return envs, done, err
}

// ---- receive path ----

// check verifies an envelope's author, allowlist and signature. With
// trustAuthor, an envelope that from (the peer at the other end of an
// authenticated connection) authored itself skips the signature check — the
// Noise/TLS handshake already proved who sent it; third parties it is
// relayed to still check it.
func (r *replica) check(from peer.ID, e *wire.Envelope) error {
	if e.Doc != r.doc {
		return reject("wrong_doc", fmt.Errorf("envelope for %q", e.Doc))
	}
	p, err := wire.PeerOf(e.Origin)
	if err != nil {
		return reject("bad_replica", err)
	}
	if r.d.writers != nil && !r.d.writers[p] {
		return reject("not_writer", fmt.Errorf("%s is not an allowed writer of %q", p, r.doc))
	}
	if p == from && r.d.trustAuthor {
		return nil
	}
	h, hashed := envelopeHash(e) // encoded once for both cache lookups
	if hashed && r.verified.has(h) {
		return nil
	}
	if err := e.Verify(); err != nil {
		return reject("bad_signature", err)
	}
	if hashed {
		r.verified.add(h)
	}
	return nil
}

// Validate implements cnet.Handler's check for gossip.
func (r *replica) Validate(from peer.ID, e *wire.Envelope) error {
	if e.Last == 0 {
		if r.holdsAll(e, nil) && r.newFork(e) == nil {
			return wire.ErrDuplicate
		}
		return r.check(from, e) // a new fork is relayed (fork.go)
	}
	// An aggregate is authenticated before its range is looked at, so a
	// forged one costs a signature check, not a thousand lookups (gossip
	// bounds its range to wire.MaxGossipRun).
	if err := r.check(from, e); err != nil {
		return err
	}
	if r.holdsAll(e, nil) {
		return wire.ErrDuplicate
	}
	return nil
}

// Deliver implements cnet.Handler: validated envelopes from gossip.
func (r *replica) Deliver(from peer.ID, envs []*wire.Envelope) {
	if err := r.ingest(context.Background(), from, envs, true); err != nil {
		r.d.log.Warn("ingest failed", "doc", r.doc, "err", err)
	}
}

// Ingest implements cnet.Replica: envelopes from the sync stream.
func (r *replica) Ingest(ctx context.Context, from peer.ID, envs []*wire.Envelope) error {
	return r.ingest(ctx, from, envs, false)
}

func (r *replica) ingest(ctx context.Context, from peer.ID, envs []*wire.Envelope, verified bool) error {
	r.ingestMu.Lock()
	defer r.ingestMu.Unlock()
	type item struct {
		env   *wire.Envelope
		delta *crdt.State
		data  []byte
		fork  *wire.Envelope // the log's side, when env is the other side of a fork
	}
	items := make([]item, 0, len(envs))
	var forks []item
	claimed := map[crdt.Dot]bool{} // seqs taken by earlier items of this batch
	for _, e := range envs {
		var fork *wire.Envelope
		if r.holdsAll(e, claimed) {
			if fork = r.newFork(e); fork == nil {
				continue
			}
		}
		if !verified || fork != nil {
			if err := r.check(from, e); err != nil {
				r.d.metrics.Reject(err.(*rejectError).reason)
				r.d.log.Debug("rejected envelope", "doc", r.doc, "from", from, "err", err)
				continue
			}
		}
		delta, err := crdt.DecodeDelta(e.Payload, e.Origin, payloadLimits)
		if err != nil {
			r.d.metrics.Reject("bad_payload")
			continue
		}
		if e.Dot != 0 && delta.Context().Max(e.Origin) > e.Dot {
			// Dot is the author's signed dot count, which snapshot heads
			// rely on (heads.go).
			r.d.metrics.Reject("bad_dot_count")
			continue
		}
		if fork != nil {
			forks = append(forks, item{env: e, delta: delta, fork: fork})
			continue
		}
		data, err := wire.EncodeEnvelope(e)
		if err != nil {
			r.d.metrics.Reject("malformed")
			continue
		}
		for seq := e.Seq; seq <= e.LastSeq(); seq++ {
			claimed[crdt.Dot{Replica: e.Origin, Counter: seq}] = true
		}
		items = append(items, item{env: e, delta: delta, data: data})
	}
	var forkPaths [][]string
	for _, f := range forks {
		paths, err := r.ingestFork(ctx, from, f.env, f.fork, f.delta)
		if err != nil {
			return err
		}
		forkPaths = append(forkPaths, paths...)
	}
	if len(items) == 0 {
		if len(forks) > 0 {
			r.notify(Change{Doc: r.doc, Origin: forks[0].env.Origin, Peer: from, Paths: dedupPaths(forkPaths)})
		}
		return nil
	}
	now := r.d.now()
	r.mu.Lock()
	paths := forkPaths
	var maxHLC crdt.HLC
	track := len(r.subs) > 0
	for _, it := range items {
		if track {
			paths = append(paths, r.state.MergeChanges(it.delta)...)
		} else {
			r.state.Merge(it.delta)
		}
		if h := crdt.HLC(it.env.HLC); h > maxHLC {
			maxHLC = h
		}
	}
	if ceiling := crdt.MakeHLC(now.Add(maxClockLead).UnixMilli(), 0); maxHLC > ceiling {
		maxHLC = ceiling
	}
	r.clock = r.clock.Observe(maxHLC, now.UnixMilli())
	r.mu.Unlock()
	entries := make([]store.Entry, 0, len(items))
	placed := map[crdt.Dot]bool{}
	r.mu.Lock()
	for _, it := range items {
		es := r.entriesFor(it.env, it.data, placed)
		if len(es) > 0 {
			r.noteClaims(it.delta, it.env.Origin, es[0].Seq) // es[0] holds the envelope
		}
		entries = append(entries, es...)
	}
	r.mu.Unlock()
	r.setPlacing(entries, true)
	done, err := r.d.store.AppendAsync(ctx, r.doc, r.d.self, entries)
	if err != nil {
		r.setPlacing(entries, false)
		return fmt.Errorf("concord: persist received deltas: %w", err)
	}
	change := Change{Doc: r.doc, Origin: items[0].env.Origin, Peer: from, Paths: dedupPaths(paths)}
	if verified && !r.ingestClosed {
		// Gossip: the next message may be merged while this one syncs; the
		// change is announced once it is durable (in order).
		r.ingestQ <- durableChange{done: done, change: change, placed: entries}
	} else {
		// Sync: the exchange's final vector must include what it received.
		err := <-done
		r.setPlacing(entries, false)
		if err != nil {
			return fmt.Errorf("concord: persist received deltas: %w", err)
		}
		r.notify(change)
	}
	if m := r.d.metrics; m != nil && verified {
		// Propagation latency is a gossip figure: deltas caught up by sync
		// were written long before and would only blur it.
		for _, it := range items {
			lat := now.Sub(time.UnixMilli(crdt.HLC(it.env.HLC).Physical()))
			m.DeltaPropagation.Observe(max(lat.Seconds(), 0))
		}
	}
	return nil
}

// durableChange is a received change waiting for its synced append.
type durableChange struct {
	done    <-chan error
	change  Change
	placed  []store.Entry // slots to clear from placing once done
	settled chan struct{} // settle's marker: closed when reached
}

// settle waits until every gossip-received change queued so far is durable
// and announced.
func (r *replica) settle() {
	r.ingestMu.Lock()
	if r.ingestClosed {
		r.ingestMu.Unlock()
		return
	}
	done := make(chan error, 1)
	done <- nil
	mark := make(chan struct{})
	r.ingestQ <- durableChange{done: done, settled: mark}
	r.ingestMu.Unlock()
	<-mark
}

// announceLoop notifies subscribers of gossip-received changes once their
// deltas are durable, in arrival order.
func (r *replica) announceLoop() {
	defer r.wg.Done()
	for dc := range r.ingestQ {
		if dc.settled != nil {
			close(dc.settled)
			continue
		}
		err := <-dc.done
		r.setPlacing(dc.placed, false)
		if err != nil {
			r.d.log.Warn("persist received deltas failed", "doc", r.doc, "err", err)
			continue
		}
		r.notify(dc.change)
	}
}

// holdsAll reports whether every sequence number e covers is held, or
// claimed by an earlier envelope of the same batch.
func (r *replica) holdsAll(e *wire.Envelope, claimed map[crdt.Dot]bool) bool {
	for seq := e.Seq; seq <= e.LastSeq(); seq++ {
		if d := (crdt.Dot{Replica: e.Origin, Counter: seq}); !claimed[d] && !r.holds(d) {
			return false
		}
	}
	return true
}

// holds reports whether the log holds d's slot or a queued write fills it.
func (r *replica) holds(d crdt.Dot) bool {
	// placing first: a slot leaves it only after the store holds it, so
	// one of the two checks always sees a queued slot.
	r.placingMu.Lock()
	_, ok := r.placing[d]
	r.placingMu.Unlock()
	return ok || r.d.store.Has(r.doc, d.Replica, d.Counter)
}

// setPlacing marks (on) or clears the slots of entries as queued.
func (r *replica) setPlacing(entries []store.Entry, on bool) {
	r.placingMu.Lock()
	defer r.placingMu.Unlock()
	for _, e := range entries {
		d := crdt.Dot{Replica: e.Replica, Counter: e.Seq}
		if on {
			r.placing[d] = e.Data
		} else {
			delete(r.placing, d)
		}
	}
}

// entriesFor returns the log entries that store e: the envelope itself at
// its seq, or, for an aggregate, the envelope at the highest seq of its range
// not yet held and markers pointing there at the other unheld ones.
// Seqs already held, or placed by earlier envelopes of the batch (placed,
// updated here), are left alone.
func (r *replica) entriesFor(e *wire.Envelope, data []byte, placed map[crdt.Dot]bool) []store.Entry {
	free := func(seq uint64) bool {
		d := crdt.Dot{Replica: e.Origin, Counter: seq}
		return !placed[d] && !r.holds(d)
	}
	take := func(seq uint64) { placed[crdt.Dot{Replica: e.Origin, Counter: seq}] = true }
	if e.Last == 0 {
		if !free(e.Seq) {
			return nil
		}
		take(e.Seq)
		return []store.Entry{{Replica: e.Origin, Seq: e.Seq, Data: data}}
	}
	var slot uint64
	for seq := e.Last; seq >= e.Seq; seq-- {
		if free(seq) {
			slot = seq
			break
		}
	}
	if slot == 0 {
		return nil
	}
	take(slot)
	out := []store.Entry{{Replica: e.Origin, Seq: slot, Data: data}}
	marker := wire.EncodeMarker(slot)
	for seq := e.Seq; seq <= e.Last; seq++ {
		if free(seq) {
			take(seq)
			out = append(out, store.Entry{Replica: e.Origin, Seq: seq, Data: marker})
		}
	}
	return out
}

// Doc implements cnet.Replica.
func (r *replica) Doc() string { return r.doc }

// Version implements cnet.Replica: the contiguous vector of held deltas.
func (r *replica) Version() crdt.VersionVector { return r.d.store.Contiguous(r.doc) }

// errAggregateTooLarge: a run's join is too big for one envelope; the run
// is sent as it is.
var errAggregateTooLarge = errors.New("concord: aggregate too large")
