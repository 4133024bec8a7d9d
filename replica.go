package concord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/store"
)

// storedLimits bound envelopes read from the log or the sync stream. They are
// looser than gossip's: a delta holding one value too big for a gossip
// envelope (see maxPayload) travels through the sync stream, as do deltas
// of older versions that did not split.
var storedLimits = cnet.Limits{
	MaxMessageBytes: MaxTxnBytes*4 + 64<<10,
	MaxEnvelopes:    1 << 16,
	MaxVVEntries:    4096,
	MaxPayloadBytes: MaxTxnBytes * 4,
}

// payloadLimits bound a decoded delta payload: as large as storedLimits
// allow (a delete of a big map covers many dots), elements bounded by bytes.
var payloadLimits = crdt.Limits{MaxBytes: MaxTxnBytes * 4, MaxElements: MaxTxnBytes * 4}

// errUnproven: the state claims more of an author than the signed heads
// we hold show (heads.go); it cannot be folded into a snapshot yet.
var errUnproven = errors.New("concord: state not provable by the heads held")

// maxPayload bounds the payload of every envelope this node signs: each own
// delta, cut into pieces at flush time when it is bigger (see
// crdt.SplitDelta), and each aggregate. It is what one gossip envelope
// carries, so every delta travels on gossip — except a piece holding one
// value bigger than that alone (at most MaxTxnBytes), which the sync stream
// carries (storedLimits).
var maxPayload = cnet.DefaultLimits().MaxPayloadBytes

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
	publish       func(*cnet.Envelope) // gossip; may be nil
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
		if _, ok := cnet.DecodeMarker(e.Data); ok {
			return nil // covered by an aggregate stored at another seq
		}
		env, err := cnet.DecodeEnvelope(e.Data, storedLimits)
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
	envs      []*cnet.Envelope
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
func (r *replica) queueOwn(gen uint64, ts crdt.HLC, dot uint64, delta *crdt.State) ([]*cnet.Envelope, <-chan error, error) {
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
	envs := make([]*cnet.Envelope, len(pieces))
	entries := make([]store.Entry, len(pieces))
	for i, p := range pieces {
		env := &cnet.Envelope{Doc: r.doc, Origin: r.d.self, Seq: seq + uint64(i), HLC: uint64(hlcs[i]), Dot: dot, Payload: payloads[i], Delta: p}
		if err := cnet.SignEnvelope(r.d.key, env); err != nil {
			return nil, nil, err
		}
		b, err := cnet.EncodeEnvelope(env)
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
func (r *replica) check(from peer.ID, e *cnet.Envelope) error {
	if e.Doc != r.doc {
		return reject("wrong_doc", fmt.Errorf("envelope for %q", e.Doc))
	}
	p, err := cnet.PeerOf(e.Origin)
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
func (r *replica) Validate(from peer.ID, e *cnet.Envelope) error {
	if e.Last == 0 {
		if r.holdsAll(e, nil) && r.newFork(e) == nil {
			return cnet.ErrDuplicate
		}
		return r.check(from, e) // a new fork is relayed (fork.go)
	}
	// An aggregate is authenticated before its range is looked at, so a
	// forged one costs a signature check, not a thousand lookups (gossip
	// bounds its range to cnet.MaxGossipRun).
	if err := r.check(from, e); err != nil {
		return err
	}
	if r.holdsAll(e, nil) {
		return cnet.ErrDuplicate
	}
	return nil
}

// Deliver implements cnet.Handler: validated envelopes from gossip.
func (r *replica) Deliver(from peer.ID, envs []*cnet.Envelope) {
	if err := r.ingest(context.Background(), from, envs, true); err != nil {
		r.d.log.Warn("ingest failed", "doc", r.doc, "err", err)
	}
}

// Ingest implements cnet.Replica: envelopes from the sync stream.
func (r *replica) Ingest(ctx context.Context, from peer.ID, envs []*cnet.Envelope) error {
	return r.ingest(ctx, from, envs, false)
}

func (r *replica) ingest(ctx context.Context, from peer.ID, envs []*cnet.Envelope, verified bool) error {
	r.ingestMu.Lock()
	defer r.ingestMu.Unlock()
	type item struct {
		env   *cnet.Envelope
		delta *crdt.State
		data  []byte
		fork  *cnet.Envelope // the log's side, when env is the other side of a fork
	}
	items := make([]item, 0, len(envs))
	var forks []item
	claimed := map[crdt.Dot]bool{} // seqs taken by earlier items of this batch
	for _, e := range envs {
		var fork *cnet.Envelope
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
		data, err := cnet.EncodeEnvelope(e)
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
func (r *replica) holdsAll(e *cnet.Envelope, claimed map[crdt.Dot]bool) bool {
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
func (r *replica) entriesFor(e *cnet.Envelope, data []byte, placed map[crdt.Dot]bool) []store.Entry {
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
	marker := cnet.EncodeMarker(slot)
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
		if at, ok := cnet.DecodeMarker(e.Data); ok {
			flushRun()
			if sent[crdt.Dot{Replica: e.Replica, Counter: at}] {
				continue
			}
			target, err := r.d.store.Get(ctx, r.doc, e.Replica, at)
			if err != nil {
				continue // compacted meanwhile: the snapshot covers it
			}
			if _, isMarker := cnet.DecodeMarker(target.Data); isMarker {
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
		if e.Replica == r.d.self && len(run) < cnet.MaxAggregateRun && (len(run) == 0 || run[len(run)-1].Seq+1 == e.Seq) {
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

// errAggregateTooLarge: a run's join is too big for one envelope; the run
// is sent as it is.
var errAggregateTooLarge = errors.New("concord: aggregate too large")

// aggregate joins a run of consecutive own deltas from the log into one
// signed envelope (errAggregateTooLarge when the join would exceed
// maxPayload).
func (r *replica) aggregate(run []store.Entry) (store.Entry, error) {
	envs := make([]*cnet.Envelope, len(run))
	for i, e := range run {
		env, err := cnet.DecodeEnvelope(e.Data, storedLimits)
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
	b, err := cnet.EncodeEnvelope(env)
	if err != nil {
		return store.Entry{}, err
	}
	return store.Entry{Replica: r.d.self, Seq: env.Last, Data: b}, nil
}

// coalesce joins a run of this node's deltas with consecutive sequence
// numbers into one aggregate: their join, signed once. It returns nil, and
// no error, when the join's payload would exceed maxPayload: the run then
// travels as it is (each of its deltas fits).
func (r *replica) coalesce(run []*cnet.Envelope) (*cnet.Envelope, error) {
	if len(run) < 2 || len(run) > cnet.MaxAggregateRun {
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
	env := &cnet.Envelope{Doc: r.doc, Origin: r.d.self, Seq: run[0].Seq, Last: run[len(run)-1].Seq, HLC: hlc, Dot: dot, Payload: payload}
	if err := cnet.SignEnvelope(r.d.key, env); err != nil {
		return nil, err
	}
	return env, nil
}

// SnapshotFor implements cnet.Replica: the stored snapshot when the log no
// longer reaches back to have, or a fresh one for a peer that has nothing
// of a long log (cheaper than replaying every delta).
func (r *replica) SnapshotFor(ctx context.Context, p peer.ID, have crdt.VersionVector) (cnet.Snapshot, bool, error) {
	if r.d.store.NeedsSnapshot(r.doc, have) {
		snap, ok, err := r.d.store.Snapshot(ctx, r.doc)
		if err != nil || !ok {
			return cnet.Snapshot{}, false, err
		}
		return cnet.Snapshot{State: snap.State, VV: snap.VV, Heads: r.heads(ctx, snap.Heads, nil, nil)}, true, nil
	}
	if len(have) > 0 || (r.d.writers != nil && (!r.d.writers[r.d.selfPeer] || !r.d.writers[p])) {
		// With an allowlist, snapshots travel only between writers: ours
		// would be refused by a peer that shares the allowlist if we are
		// not one, and a peer that is not one is better served the log,
		// which it can pass on (its own snapshots would be refused).
		return cnet.Snapshot{}, false, nil
	}
	r.ingestMu.Lock()
	defer r.ingestMu.Unlock()
	vv := r.d.store.Contiguous(r.doc)
	var total uint64
	for _, n := range vv {
		total += n
	}
	if total <= uint64(r.d.snapshotAfter) {
		return cnet.Snapshot{}, false, nil
	}
	if r.snapCache.data != nil && r.snapCache.vv.Equal(vv) {
		return cnet.Snapshot{State: r.snapCache.data, VV: vv, Heads: r.snapCache.heads}, true, nil // nothing new: no re-encoding
	}
	b, _, cc, err := r.encodeDurable() // covers vv: merges precede appends
	if err != nil {
		return cnet.Snapshot{}, false, err
	}
	old, _, err := r.d.store.Snapshot(ctx, r.doc)
	if err != nil {
		return cnet.Snapshot{}, false, err
	}
	heads := r.heads(ctx, old.Heads, nil, cc)
	if err := checkClaims(cc, vv, boundsOf(decodeHeads(heads)), func(rep crdt.ReplicaID) bool { q, _ := cnet.PeerOf(rep); return q == p }); err != nil {
		// Our state holds dots of an author we hold no signed head for
		// (a delete by another writer covered them): the peer would
		// refuse the snapshot, so it gets the log.
		r.d.log.Debug("fresh snapshot not offered", "err", err)
		return cnet.Snapshot{}, false, nil
	}
	r.snapCache.vv, r.snapCache.data, r.snapCache.heads = vv, b, heads
	return cnet.Snapshot{State: b, VV: vv, Heads: heads}, true, nil
}

// IngestSnapshot implements cnet.Replica.
// AcceptsSnapshot implements cnet.Replica: with a writer allowlist, only
// writers are trusted with snapshots.
func (r *replica) AcceptsSnapshot(p peer.ID) bool { return r.d.writers == nil || r.d.writers[p] }

func (r *replica) IngestSnapshot(ctx context.Context, from peer.ID, snap cnet.Snapshot) error {
	state, vv := snap.State, snap.VV
	if !r.AcceptsSnapshot(from) {
		// A snapshot carries no author signatures: its causal context could
		// claim other writers' dots, deleting their data and swallowing
		// their next writes. With an allowlist only its writers are trusted
		// with that; anyone else's deltas are checked one by one.
		r.d.metrics.Reject("snapshot_not_writer")
		return reject("snapshot_not_writer", fmt.Errorf("snapshot from %s, not a writer of %q", from, r.doc))
	}
	st, err := crdt.Decode(state, crdt.DefaultLimits())
	if err != nil {
		r.d.metrics.Reject("bad_snapshot")
		return reject("bad_snapshot", err)
	}
	if r.d.writers != nil {
		for _, rep := range st.Context().Replicas() {
			if p, err := cnet.PeerOf(rep); err != nil || !r.d.writers[p] {
				r.d.metrics.Reject("not_writer")
				return reject("not_writer", fmt.Errorf("snapshot holds writes of %s", rep))
			}
		}
	}
	if r.d.writers != nil {
		for rep := range vv {
			if p, err := cnet.PeerOf(rep); err != nil || !r.d.writers[p] {
				r.d.metrics.Reject("not_writer")
				return reject("not_writer", fmt.Errorf("snapshot vector names %s", rep))
			}
		}
	}
	r.ingestMu.Lock()
	defer r.ingestMu.Unlock()
	r.mu.Lock()
	mine := r.nextSeq - 1
	myDots := r.state.Context().Max(r.d.self)
	r.mu.Unlock()
	if vv[r.d.self] > mine {
		// Nobody can hold more of our deltas than we wrote.
		r.d.metrics.Reject("bad_snapshot")
		return reject("bad_snapshot", fmt.Errorf("snapshot claims our seq %d, we wrote %d", vv[r.d.self], mine))
	}
	if n := st.Context().Max(r.d.self); n > myDots {
		// Nor has anyone seen dots we never minted: merging that would
		// swallow our next writes.
		r.d.metrics.Reject("bad_snapshot")
		return reject("bad_snapshot", fmt.Errorf("snapshot claims our dot %d, we minted %d", n, myDots))
	}
	if err := r.checkHeads(from, st, vv, snap.Heads); err != nil {
		var rj *rejectError
		if errors.As(err, &rj) {
			r.d.metrics.Reject(rj.reason)
		}
		return err
	}
	r.mu.Lock()
	paths := r.state.MergeUnverifiedChanges(st) // a snapshot cannot rewrite what we hold
	for _, e := range decodeHeads(snap.Heads) {
		if d, err := crdt.DecodeDelta(e.Payload, e.Origin, payloadLimits); err == nil {
			r.noteClaims(d, e.Origin, e.LastSeq())
		}
	}
	r.mu.Unlock()
	if err := r.snapshotLocked(ctx, vv, snap.Heads, false); err != nil {
		return fmt.Errorf("concord: store received snapshot: %w", err)
	}
	r.notify(Change{Doc: r.doc, Peer: from, Paths: paths})
	return nil
}

// Observed implements cnet.Replica: peer p holds vv. It acknowledges own
// deltas (outbox) and may trigger compaction.
func (r *replica) Observed(p peer.ID, vv crdt.VersionVector) {
	if p == r.d.selfPeer {
		return
	}
	r.mu.Lock()
	pv := r.peerVV[p]
	if pv == nil {
		if len(r.peerVV) >= maxPeersPerDoc {
			r.evictOldestPeerLocked()
		}
		pv = crdt.VersionVector{}
		r.peerVV[p] = pv
	}
	pv.Merge(vv)
	r.peerSeen[p] = r.d.now()
	var held []uint64
	for _, v := range r.peerVV {
		held = append(held, v[r.d.self])
	}
	slices.Sort(held)
	slices.Reverse(held)
	var upTo uint64
	if len(held) >= r.d.ackPeers {
		upTo = min(held[r.d.ackPeers-1], r.nextSeq-1)
	}
	advance := upTo > r.acked
	r.mu.Unlock()
	if advance {
		if err := r.d.store.Ack(context.Background(), r.doc, upTo); err != nil {
			r.d.log.Warn("ack failed", "doc", r.doc, "err", err)
			return
		}
		r.mu.Lock()
		if upTo > r.acked {
			r.acked = upTo
			close(r.ackCh)
			r.ackCh = make(chan struct{})
		}
		r.mu.Unlock()
		r.updateOutboxMetric()
	}
	r.maybeCompact()
}

// maxPeersPerDoc bounds the peers whose holdings a document remembers
// (for acknowledgments and the compaction floor); past it the peer heard
// from least recently is forgotten.
const maxPeersPerDoc = 1024

func (r *replica) evictOldestPeerLocked() {
	var oldest peer.ID
	var at time.Time
	for p, t := range r.peerSeen {
		if oldest == "" || t.Before(at) {
			oldest, at = p, t
		}
	}
	delete(r.peerVV, oldest)
	delete(r.peerSeen, oldest)
}

// maybeCompact folds into the snapshot the log entries every known peer
// holds, once there are at least compactAfter of them.
func (r *replica) maybeCompact() {
	r.mu.Lock()
	if r.compactOn || r.closed || len(r.peerVV) == 0 {
		r.mu.Unlock()
		return
	}
	floor := r.compactionFloorLocked()
	r.mu.Unlock()
	snap, _, err := r.d.store.Snapshot(context.Background(), r.doc)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return
	}
	var gain uint64
	for rep, n := range floor {
		if n > snap.VV[rep] {
			gain += n - snap.VV[rep]
		}
	}
	if gain < uint64(r.d.compactAfter) {
		return
	}
	r.mu.Lock()
	if r.compactOn || r.closed {
		r.mu.Unlock()
		return
	}
	r.compactOn = true
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer func() { r.mu.Lock(); r.compactOn = false; r.mu.Unlock() }()
		if err := r.compact(context.Background(), floor); errors.Is(err, errUnproven) {
			r.d.log.Debug("compaction deferred", "doc", r.doc, "err", err)
		} else if err != nil {
			r.d.log.Warn("compaction failed", "doc", r.doc, "err", err)
		}
	}()
}

// compactionFloorLocked returns what every peer known to hold the document
// (and we) hold: the log below it may be folded. Peers silent for longer
// than the retention are left out. Caller holds r.mu.
func (r *replica) compactionFloorLocked() crdt.VersionVector {
	floor := r.d.store.Contiguous(r.doc)
	now := r.d.now()
	for p, v := range r.peerVV {
		if r.d.retention > 0 && now.Sub(r.peerSeen[p]) > r.d.retention {
			continue // gone too long: it will catch up by snapshot
		}
		for rep, n := range floor {
			floor[rep] = min(n, v[rep])
		}
	}
	return floor
}

// compact folds log entries covered by upTo into the snapshot.
func (r *replica) compact(ctx context.Context, upTo crdt.VersionVector) error {
	r.ingestMu.Lock()
	defer r.ingestMu.Unlock()
	return r.snapshotLocked(ctx, upTo, nil, true)
}

// compactNow compacts up to the compaction floor, without a threshold.
func (r *replica) compactNow(ctx context.Context) error {
	r.mu.Lock()
	floor := r.compactionFloorLocked()
	r.mu.Unlock()
	return r.compact(ctx, floor)
}

// snapshotLocked stores the durable state as the snapshot, covering the old
// snapshot's vector and upTo, and drops the log it covers. It keeps with
// it every author's head (from the log, the old snapshot and extraHeads,
// heads received with a snapshot). With proven, a state claiming more of
// some author than its heads prove is not folded (the compaction waits for
// the author's deltas): a snapshot that cannot be proven could not be
// served. Caller holds ingestMu.
func (r *replica) snapshotLocked(ctx context.Context, upTo crdt.VersionVector, extraHeads [][]byte, proven bool) error {
	old, _, err := r.d.store.Snapshot(ctx, r.doc)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	vv := crdt.VersionVector{}
	vv.Merge(old.VV)
	vv.Merge(upTo)
	enc, clock, cc, err := r.encodeDurable()
	if err != nil {
		return err
	}
	heads := r.heads(ctx, old.Heads, extraHeads, cc)
	if proven {
		if err := checkClaims(cc, vv, boundsOf(decodeHeads(heads)), func(crdt.ReplicaID) bool { return false }); err != nil {
			return fmt.Errorf("%w: %w", errUnproven, err)
		}
	}
	return r.d.store.Compact(ctx, r.doc, store.Snapshot{State: enc, VV: vv, Clock: uint64(clock), Heads: heads})
}

func (r *replica) updateOutboxMetric() {
	if m := r.d.metrics; m != nil {
		m.OutboxDepth.WithLabelValues(r.doc).Set(float64(r.d.store.OutboxDepth(r.doc)))
	}
}

// waitAcked blocks until every own delta written so far is acknowledged.
func (r *replica) waitAcked(ctx context.Context) error {
	r.mu.Lock()
	// Writes pending or being cut have no sequence numbers yet (a split
	// delta takes several): wait until they have, then aim past them.
	gen := r.cutGen
	if r.pending != nil {
		gen++
	}
	for r.seqGen < gen && r.failed == nil && !r.closed {
		r.cond.Wait()
	}
	target := r.nextSeq - 1
	for r.acked < target {
		if r.failed != nil || r.closed {
			err := r.failed
			if err == nil {
				err = ErrClosed
			}
			r.mu.Unlock()
			return err
		}
		ch := r.ackCh
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.mu.Lock()
	}
	r.mu.Unlock()
	return nil
}
