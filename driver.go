package concord

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/internal/workpool"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// The driver runs one document's engine (package engine holds the rules):
// callers step the engine under a short lock — never held across I/O —
// and the Ready each step produces goes, in order, into the document's
// bounded work queue. The node's worker pool drains it: appends go to the
// store asynchronously (their outcome comes back as work), then the
// synchronous writes (fork proofs, acknowledgments, snapshots), then
// publishing, announcing and answering. No goroutine is per document.

// storedLimits bound envelopes read from the log or the sync stream.
var storedLimits = engine.StoredLimits

// maxPayload bounds the payload of every envelope this node signs.
var maxPayload = engine.MaxPayload

// driverDeps is what a document's driver needs from its node. Tests build
// drivers from it without libp2p.
type driverDeps struct {
	store         *store.Store
	key           crypto.PrivKey
	self          crdt.ReplicaID
	selfPeer      peer.ID
	writers       map[peer.ID]bool // nil: anyone
	ackPeers      int
	trustAuthor   bool          // skip signature checks of envelopes from their own author
	groupWait     time.Duration // engine.Config.GroupWait
	snapshotAfter int
	compactAfter  int
	retention     time.Duration // peers silent this long do not hold compaction back (0: forever)
	now           func() time.Time
	metrics       *cnet.Metrics
	log           *slog.Logger
	publish       func(*wire.Envelope) // gossip; may be nil
	// onEquivocation, optional, is told of every fork found.
	onEquivocation func(EquivocationEvent)
	// pieceBytes bounds an own delta's payload (0: maxPayload); tests lower it.
	pieceBytes int
	// features are the wire features the document speaks (0: all).
	features wire.Features
	// pool runs the work; nil: a pool of the driver's own (tests).
	pool *workpool.Pool
	// connected reports whether a peer is connected to us (summaries).
	connected func(peer.ID) bool
	// pull starts an exchange with a peer (the engine's pull rules).
	pull func(peer.ID, *driver)
	// inboxBytes, shared by a node's documents, bounds what their inboxes
	// hold together (nil: only each document's own bound).
	inboxBytes *atomic.Int64
}

var _ engine.Storage = store.DocLog{}

// maxWork bounds a document's queued work. Steps that produce work wait
// for room (backpressure on gossip and sync), except the outcomes of
// writes, which are bounded by the writes in flight.
const maxWork = 64

// driver is one document on one node: its engine, the work the engine
// asked for, and whoever waits for answers.
type driver struct {
	doc  string
	d    driverDeps
	logv engine.Storage
	chk  *engine.Checker // gossip validation, outside the engine (concurrent)
	pool *workpool.Pool
	own  bool // the pool is the driver's own

	mu       sync.Mutex // guards eng and the fields below; never held across I/O
	eng      *engine.Doc
	commits  map[uint64]chan error
	tickets  uint64
	advanced chan struct{} // closed and replaced whenever the engine advanced
	timer    *time.Timer   // the engine's next deadline
	timerAt  time.Time
	closed   bool

	qmu         sync.Mutex // guards the work queue
	work        []work
	outcomes    []work     // appends' outcomes (never wait for room)
	room        *sync.Cond // on qmu: work has room, or the queue drained
	scheduled   bool       // the driver is in the pool's queue or running
	inflight    int        // appends handed to the store, outcome not yet applied
	inbox       []inbound  // gossip's messages, waiting for the worker
	inboxBytes  int64      // their inboxCost
	inboxClosed bool

	subMu     sync.Mutex // guards subs and subClosed; taken before mu
	subs      map[*Subscription]struct{}
	subClosed bool
}

// openDriver loads doc from the store (snapshot, then log) outside any
// node lock.
func openDriver(doc string, d driverDeps) (*driver, error) {
	cache, err := lru.New[[32]byte, struct{}](1 << 16)
	if err != nil {
		return nil, err
	}
	r := &driver{
		doc: doc, d: d, logv: store.DocLog{St: d.store, Doc: doc},
		chk:      &engine.Checker{Doc: doc, Writers: d.writers, TrustAuthor: d.trustAuthor, Cache: cache},
		commits:  map[uint64]chan error{},
		advanced: make(chan struct{}),
		subs:     map[*Subscription]struct{}{},
		pool:     d.pool,
	}
	r.room = sync.NewCond(&r.qmu)
	if r.pool == nil {
		r.pool, r.own = workpool.New(1), true
	}
	eng, warn, err := engine.New(engine.Config{
		Doc: doc, Self: d.self, SelfPeer: d.selfPeer, Key: d.key, Writers: d.writers,
		AckPeers: d.ackPeers, TrustAuthor: d.trustAuthor, GroupWait: d.groupWait, SnapshotAfter: d.snapshotAfter,
		CompactAfter: d.compactAfter, Retention: d.retention, PieceBytes: d.pieceBytes,
		Features: d.features, Storage: r.logv,
		// Change numbers from the boot time (ms), so that a number from
		// before a restart is never one after it (a safe JS integer).
		FirstChange: uint64(time.Now().UnixMilli()) << 10,
	})
	if err != nil {
		if r.own {
			r.pool.Close()
		}
		return nil, err
	}
	if warn != nil {
		// Corrupt records are skipped; anti-entropy fetches them again.
		d.log.Warn("skipped unreadable log entries", "doc", doc, "err", warn)
	}
	r.eng = eng
	r.updateOutboxMetric()
	return r, nil
}

// step runs fn on the engine under the lock and queues the Ready it
// produced, in the order steps happen (it waits for room in the queue
// first: backpressure on gossip and sync). After close it does nothing.
func (r *driver) step(fn func(e *engine.Doc)) {
	r.waitRoom()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	fn(r.eng)
	r.queueLocked(r.takeLocked(true))
}

// stepFromWork is step for the worker itself (outcomes of writes, also
// after close): the Ready joins the queue without waiting for room (only
// the worker makes room).
func (r *driver) stepFromWork(fn func(e *engine.Doc)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r.eng)
	r.queueLocked(r.takeLocked(true))
}

// takeLocked takes the engine's Ready (nil when empty) and re-arms its
// timer; with advanced, it wakes whoever waits for the engine to advance
// (a session waiting for durability). Caller holds r.mu.
func (r *driver) takeLocked(advanced bool) *engine.Ready {
	if advanced {
		close(r.advanced)
		r.advanced = make(chan struct{})
	}
	if at, ok := r.eng.Deadline(); ok && !r.closed && (r.timer == nil || !at.Equal(r.timerAt)) {
		if r.timer != nil {
			r.timer.Stop()
		}
		r.timerAt = at
		r.timer = time.AfterFunc(max(at.Sub(r.d.now()), 0), func() {
			r.step(func(e *engine.Doc) {
				r.timerAt = time.Time{} // re-armed after the tick, whatever the clock says
				e.Tick(r.d.now())
			})
		})
	}
	if !r.eng.HasReady() {
		return nil
	}
	rd := r.eng.Ready()
	return &rd
}

// waitRoom waits until the work queue has room.
func (r *driver) waitRoom() {
	r.qmu.Lock()
	for len(r.work) >= maxWork {
		r.room.Wait()
	}
	r.qmu.Unlock()
}

// queueLocked appends rd to the work and schedules the driver. Caller
// holds r.mu (so Readys queue in the order the engine produced them).
func (r *driver) queueLocked(rd *engine.Ready) {
	if rd == nil {
		return
	}
	r.qmu.Lock()
	r.work = append(r.work, work{rd: rd})
	r.scheduleLocked()
	r.qmu.Unlock()
}

// ask steps the engine with fn, which returns a ticket (0: none) whose
// answer is awaited, or an error at once.
func (r *driver) ask(ctx context.Context, fn func(e *engine.Doc, ticket uint64) (uint64, error)) error {
	ch := make(chan error, 1)
	r.waitRoom()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.tickets++
	id, err := fn(r.eng, r.tickets)
	if err == nil && id != 0 {
		r.commits[id] = ch
	}
	r.queueLocked(r.takeLocked(true))
	r.mu.Unlock()
	if err != nil || id == 0 {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err() // the write may still become durable
	}
}

// apply applies ops locally as one transaction and returns once the delta
// that carries them is durable.
func (r *driver) apply(ctx context.Context, ops []crdt.Op) error {
	_, err := r.applyAt(ctx, ops, nil)
	return err
}

// applyAt is apply with bases for rebased splices (engine.ProposeAt); it
// returns the number of the change that holds the write.
func (r *driver) applyAt(ctx context.Context, ops []crdt.Op, bases []uint64) (n uint64, err error) {
	err = r.ask(ctx, func(e *engine.Doc, _ uint64) (uint64, error) {
		id, ch, err := e.ProposeAt(r.d.now(), ops, bases)
		n = ch
		return id, err
	})
	if err == nil && n == 0 {
		// Held back while a snapshot was taken: a later change, at most.
		r.mu.Lock()
		n = r.eng.Position()
		r.mu.Unlock()
	}
	return n, err
}

// position runs fn on the state with the number of the change its view
// follows (engine.Doc.Position).
func (r *driver) position(fn func(st *crdt.State, n uint64)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r.eng.State(), r.eng.Position())
}

// waitAcked blocks until every own delta written so far is acknowledged.
func (r *driver) waitAcked(ctx context.Context) error {
	return r.ask(ctx, func(e *engine.Doc, t uint64) (uint64, error) {
		t |= 1 << 63 // tickets apart from proposals
		e.WaitAcked(t)
		return t, nil
	})
}

// compactNow compacts up to the compaction floor, without a threshold.
func (r *driver) compactNow(ctx context.Context) error {
	return r.ask(ctx, func(e *engine.Doc, t uint64) (uint64, error) {
		t |= 1 << 62
		e.RequestCompaction(r.d.now(), t)
		return t, nil
	})
}

// close answers every waiter, lets the writes asked for finish and stops
// the timer.
func (r *driver) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.eng.Close()
	r.queueLocked(r.takeLocked(true))
	r.mu.Unlock()
	r.qmu.Lock()
	r.closeInboxLocked()
	for r.scheduled || r.inflight > 0 || len(r.work) > 0 || len(r.outcomes) > 0 {
		r.room.Wait()
	}
	r.qmu.Unlock()
	r.mu.Lock()
	for id, ch := range r.commits {
		ch <- ErrClosed
		delete(r.commits, id)
	}
	r.mu.Unlock()
	r.subMu.Lock()
	r.subClosed = true
	for s := range r.subs {
		close(s.c)
	}
	r.subs = map[*Subscription]struct{}{}
	r.subMu.Unlock()
	if r.own {
		r.pool.Close()
	}
}

// ---- receive path ----

// Validate is gossip's check (many goroutines, outside the engine).
func (r *driver) Validate(from peer.ID, e *wire.Envelope) error {
	return engine.Validate(r.logv, r.chk, from, e)
}

// Doc implements cnet.SyncDoc.
func (r *driver) Doc() string { return r.doc }

// Version returns the contiguous vector of held deltas.
func (r *driver) Version() crdt.VersionVector { return r.d.store.Contiguous(r.doc) }

// coalesce joins a run of own deltas queued for gossip into one aggregate.
func (r *driver) coalesce(run []*wire.Envelope) (*wire.Envelope, error) {
	return engine.Coalesce(r.doc, r.d.self, r.d.key, run)
}

// view runs fn on the document's state under the lock.
func (r *driver) view(fn func(st *crdt.State)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r.eng.State())
}
