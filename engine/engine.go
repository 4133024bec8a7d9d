package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Doc is the replication state machine of one document on one node.
type Doc struct {
	cfg Config
	st  Storage

	state     *crdt.State
	clock     crdt.HLC
	nextSeq   uint64
	signedHLC crdt.HLC // of the last own envelope signed
	snapVV    crdt.VersionVector
	failed    error
	closed    bool
	track     bool // compute the paths of each change (someone listens)

	// Local writes: applied at once, cut into a delta (group commit) when no own delta persists.
	pending    *crdt.State
	pendProps  []uint64
	held       []heldProposal // arrived while a durable encoding was wanted
	nextProp   uint64
	lastNow    time.Time // of the last proposal applied (the clock of signing)
	ownFlight  int       // own appends not yet persisted
	hold       groupHold // the next cut waits for the writers just answered (group.go)
	now        time.Time // the latest time stepped with (Propose, Persisted, Tick)
	holdWrites bool      // an encoding of durable state only is wanted (snapshot, compaction)

	// Appends asked for, not yet reported persisted.
	nextBatch uint64
	flight    map[uint64]*batch
	unstable  map[crdt.Dot][]byte // slots of those appends → entry data
	persisted uint64              // every batch up to it is settled

	verified      *simplelru.LRU[[32]byte, struct{}]
	forks         map[forkKey]bool // stored, or being stored
	forkWrites    map[uint64]*pendingFork
	nextForkWrite uint64
	claims        map[crdt.ReplicaID]claimRef
	gc            tombstoneGC // collection and repair of sequence tombstones (tombstones.go)

	// Acknowledgments.
	peerVV   map[peer.ID]crdt.VersionVector
	peerSeen map[peer.ID]time.Time
	acked    uint64
	ackAsked uint64 // AckUpTo handed out, not yet reported
	waiters  []ackWaiter

	compactOn  bool
	compacting *snapReq
	wantSnap   []*snapReq
	snapCache  struct {
		vv    crdt.VersionVector
		data  []byte
		heads [][]byte
	}

	// Pull rules.
	summaries map[crdt.ReplicaID]seenSummary
	gaps      map[crdt.Dot]peer.ID
	gapAt     time.Time // when the noted gaps are checked; zero: none

	sessions map[*Session]struct{}

	// Changes applied, in order, not yet announced (changes.go).
	changes     []*pendingChange
	pendChanges []*pendingChange // of the pending local writes
	openLocal   *pendingChange   // the last one, while nothing came after it
	seqLost     uint64           // the state's SeqLost already counted
	rebase      rebaseLog        // change numbers, patches kept for rebasing (rebase.go)

	rd Ready
}

type heldProposal struct {
	id    uint64
	ops   []crdt.Op
	bases []uint64
	now   time.Time
}

// batch is one append asked for in a Ready.
type batch struct {
	id      uint64
	entries []store.Entry
	own     bool
	envs    []*wire.Envelope // own: to publish once durable
	props   []uint64         // own: proposals it carries
	cutAt   time.Time        // own: when it was cut
	changes []*pendingChange // announced once durable
}

// New loads a document's engine from its storage: the snapshot, then the
// log, then the fork proofs. Unreadable entries are skipped (anti-entropy
// fetches them again) and reported in the returned warning.
func New(cfg Config) (d *Doc, warn error, err error) {
	if cfg.AckPeers < 1 {
		cfg.AckPeers = 1
	}
	if cfg.VerifiedCache <= 0 {
		cfg.VerifiedCache = 1 << 16
	}
	cache, err := simplelru.NewLRU[[32]byte, struct{}](cfg.VerifiedCache, nil)
	if err != nil {
		return nil, nil, err
	}
	d = &Doc{
		cfg: cfg, st: cfg.Storage, state: crdt.New(),
		flight: map[uint64]*batch{}, unstable: map[crdt.Dot][]byte{},
		verified: cache, forks: map[forkKey]bool{}, forkWrites: map[uint64]*pendingFork{}, claims: map[crdt.ReplicaID]claimRef{},
		peerVV: map[peer.ID]crdt.VersionVector{}, peerSeen: map[peer.ID]time.Time{},
		summaries: map[crdt.ReplicaID]seenSummary{}, sessions: map[*Session]struct{}{},
		snapVV: crdt.VersionVector{},
	}
	d.rebase.startNumbers(cfg.FirstChange)
	snap, ok, err := d.st.Snapshot()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("concord: load snapshot of %q: %w", cfg.Doc, err)
	}
	if ok {
		st, err := crdt.Decode(snap.State, crdt.DefaultLimits())
		if err != nil {
			return nil, nil, fmt.Errorf("concord: decode snapshot of %q: %w", cfg.Doc, err)
		}
		d.state = st
		d.clock = crdt.HLC(snap.Clock)
		d.snapVV = snap.VV.Clone()
		for _, e := range decodeHeads(snap.Heads) {
			if delta, err := crdt.DecodeDelta(e.Payload, e.Origin, payloadLimits); err == nil {
				d.noteClaims(delta, e.Origin, e.LastSeq(), e.LastSeq())
			}
		}
	}
	var bad []error
	err = d.st.Entries(func(e store.Entry) error {
		if _, ok := wire.DecodeMarker(e.Data); ok {
			return nil // covered by an aggregate stored at another seq
		}
		env, err := wire.DecodeEnvelope(e.Data, StoredLimits)
		if err != nil {
			bad = append(bad, fmt.Errorf("entry %s/%d: %w", e.Replica, e.Seq, err))
			return nil
		}
		delta, err := crdt.DecodeDelta(env.Payload, env.Origin, payloadLimits)
		if err != nil {
			bad = append(bad, fmt.Errorf("entry %s/%d: %w", e.Replica, e.Seq, err))
			return nil
		}
		d.state.MergeStored(delta) // the log's order may hold back what arrived in order
		d.noteClaims(delta, e.Replica, e.Seq, env.LastSeq())
		if h := crdt.HLC(env.HLC); h > d.clock {
			d.clock = h
		}
		return nil
	})
	if err != nil {
		bad = append(bad, err)
	}
	if err := d.loadForks(); err != nil {
		bad = append(bad, err)
	}
	d.nextSeq = d.st.MaxSeq(cfg.Self) + 1
	d.acked = d.nextSeq - 1
	if ob := d.st.Outbox(); len(ob) > 0 {
		d.acked = ob[0] - 1
	}
	return d, errors.Join(bad...), nil
}

// Ready is what the caller must do after a step, in this order: persist
// Appends (each one synced batch, in order, reporting each with
// Persisted), store Forks, run AckUpTo (then report Acknowledged), store
// Compact (then report Compacted); then publish, announce, answer and pull.
// Everything in Publish, Changes and Committed depends only on writes
// already reported durable.
type Ready struct {
	Appends []Append
	// Forks are fork proofs to store (store.AddFork), each write reported
	// with ForksStored.
	Forks []ForkWrite
	// AckUpTo, when non-zero: own deltas up to it leave the outbox
	// (store.Ack), then Acknowledged(AckUpTo, err).
	AckUpTo uint64
	// Compact, when set: store the snapshot, drop the log it covers
	// (store.Compact), then Compacted.
	Compact *Compaction
	// Publish are own envelopes, durable, to gossip.
	Publish []*wire.Envelope
	// Changes to announce to subscribers, in order.
	Changes []Change
	// Committed are local transactions now durable, or failed.
	Committed []Commit
	// AckWaits are WaitAcked tickets now satisfied, or failed.
	AckWaits []Commit
	// Compacted are RequestCompaction tickets done, or failed.
	Compacted []Commit
	// Pulls are peers to run an anti-entropy exchange with.
	Pulls []peer.ID
	// Equivocations found (see Doc's fork rules).
	Equivocations []Equivocation
	// Rejects are the reasons of refused envelopes and snapshots, for
	// metrics; Drops the queues that dropped something (queue, reason).
	Rejects []string
	Drops   [][2]string
	// Propagation are the gossip delays observed (now minus the HLC of each
	// delta received on gossip).
	Propagation []time.Duration
	// Warnings worth a log line.
	Warnings []error
}

// Append is one batch of log entries to persist atomically and durably.
type Append struct {
	ID      uint64
	Entries []store.Entry
	// Own is set for the engine's own deltas (they go to the outbox too).
	// Their envelopes are signed by Seal, which the caller runs before
	// persisting, outside any lock it holds around the engine.
	Own bool

	envs []*wire.Envelope // own: to sign into Entries
	key  crypto.PrivKey
}

// Seal signs an own Append's envelopes and fills its entries (a no-op for
// others). It is pure computation, safe to run outside the engine's lock
// before the entries are persisted; the envelopes the engine publishes
// once they are durable are the ones it signs.
func (a *Append) Seal() error {
	for i, e := range a.envs {
		if e.Sig != nil {
			continue
		}
		if err := wire.SignEnvelope(a.key, e); err != nil {
			return err
		}
		b, err := wire.EncodeEnvelope(e)
		if err != nil {
			return err
		}
		a.Entries[i].Data = b
	}
	return nil
}

// Compaction is a snapshot to store, covering VV.
type Compaction struct {
	Snapshot store.Snapshot
}

// Commit answers a proposal (or an ack wait) by ID.
type Commit struct {
	ID  uint64
	Err error
}

// Change describes one change of the document: a local transaction once
// durable, or received deltas once merged and stored.
type Change struct {
	// N is the change's number: one more than the change applied before
	// it (see Config.FirstChange).
	N      uint64
	Local  bool
	Origin crdt.ReplicaID
	Peer   peer.ID
	Paths  [][]string
	// Patches are the change's sequence edits, in order (computed, like
	// Paths, only while Track is on).
	Patches []crdt.SeqPatch
}

// Equivocation is one fork found: two different deltas signed by Origin
// for Seq, the second delivered by Peer.
type Equivocation struct {
	Origin crdt.ReplicaID
	Seq    uint64
	Peer   peer.ID
}

// HasReady reports whether Ready holds anything.
func (d *Doc) HasReady() bool {
	r := &d.rd
	return len(r.Appends)+len(r.Forks)+len(r.Publish)+len(r.Changes)+len(r.Committed)+len(r.AckWaits)+len(r.Compacted)+
		len(r.Pulls)+len(r.Equivocations)+len(r.Rejects)+len(r.Drops)+len(r.Propagation)+len(r.Warnings) > 0 ||
		r.AckUpTo != 0 || r.Compact != nil
}

// Ready returns what the caller must do now and clears it: the next call
// returns only what later steps produce (raft's Ready and Advance in one,
// since every write the engine waits for is reported back by its own
// step).
func (d *Doc) Ready() Ready {
	rd := d.rd
	d.rd = Ready{}
	return rd
}

// State returns the document's CRDT state. It must not be modified; it is
// valid until the next step.
func (d *Doc) State() *crdt.State { return d.state }

// Version returns the contiguous version vector of the durable log.
func (d *Doc) Version() crdt.VersionVector { return d.st.Contiguous() }

// Track sets whether changes carry the paths they touched.
func (d *Doc) Track(on bool) { d.track = on }

// Failed returns the storage failure that stopped writes, if any.
func (d *Doc) Failed() error { return d.failed }

// NextSeq returns the sequence number the next own envelope takes.
func (d *Doc) NextSeq() uint64 { return d.nextSeq }

// Close fails every waiting proposal and ack wait with ErrClosed. Writes
// already asked for may still be reported.
func (d *Doc) Close() {
	if d.closed {
		return
	}
	d.closed = true
	for _, h := range d.held {
		d.rd.Committed = append(d.rd.Committed, Commit{h.id, ErrClosed})
	}
	d.held = nil
	for _, w := range d.waiters {
		d.rd.AckWaits = append(d.rd.AckWaits, Commit{w.id, ErrClosed})
	}
	d.waiters = nil
	reqs := d.wantSnap
	d.wantSnap, d.holdWrites = nil, false
	for _, r := range reqs {
		d.finishSnap(r, ErrClosed)
	}
	for s := range d.sessions {
		s.closed = true
	}
	d.cut() // writes waiting for their group are persisted still
}

// Persisted reports the outcome of Append id, known at now. A failure
// marks the engine failed: every later write is refused.
func (d *Doc) Persisted(now time.Time, id uint64, err error) {
	d.now = now
	b := d.flight[id]
	if b == nil {
		return
	}
	delete(d.flight, id)
	for _, e := range b.entries {
		delete(d.unstable, crdt.Dot{Replica: e.Replica, Counter: e.Seq})
	}
	if id > d.persisted {
		d.persisted = id
	}
	if err != nil {
		d.fail(err)
	}
	// The state holds the changes even when their writes failed: they are
	// announced either way, so the stream of changes stays whole.
	d.settle(b.changes...)
	if b.own {
		d.ownFlight--
		if err == nil {
			d.rd.Publish = append(d.rd.Publish, b.envs...)
		}
		cerr := err
		if cerr != nil {
			cerr = d.failed
		}
		for _, p := range b.props {
			d.rd.Committed = append(d.rd.Committed, Commit{p, cerr})
		}
		d.holdCut(now, b)
	} else if err != nil {
		d.rd.Warnings = append(d.rd.Warnings, fmt.Errorf("persist received deltas: %w", err))
	}
	d.step()
}

func (d *Doc) fail(err error) {
	if d.failed != nil {
		return
	}
	d.failed = fmt.Errorf("%w: %w", ErrStorage, err)
	for _, w := range d.waiters {
		d.rd.AckWaits = append(d.rd.AckWaits, Commit{w.id, d.failed})
	}
	d.waiters = nil
	d.failHeld()
}

// failHeld answers the writes held back for a snapshot with the failure:
// they will never be applied.
func (d *Doc) failHeld() {
	for _, h := range d.held {
		d.rd.Committed = append(d.rd.Committed, Commit{h.id, d.failed})
	}
	d.held = nil
}

// settled reports whether every append up to id is reported.
func (d *Doc) settled(id uint64) bool {
	for fid := range d.flight {
		if fid <= id {
			return false
		}
	}
	return true
}

// step runs what every input may unblock: cutting pending writes, held
// proposals, compactions, sessions waiting for durability.
func (d *Doc) step() {
	d.cut()
	d.serveSnapshots()
	if d.failed != nil {
		d.failHeld()
	}
	if !d.holdWrites && len(d.held) > 0 && d.failed == nil {
		held := d.held
		d.held = nil
		for _, h := range held {
			d.propose(h.id, h.now, h.ops, h.bases)
		}
		d.cut()
	}
	d.checkWaiters()
}

// append queues entries for persistence and returns the batch.
func (d *Doc) append(entries []store.Entry, own bool) *batch {
	d.nextBatch++
	b := &batch{id: d.nextBatch, entries: entries, own: own}
	d.flight[b.id] = b
	for _, e := range entries {
		d.unstable[crdt.Dot{Replica: e.Replica, Counter: e.Seq}] = e.Data
	}
	d.rd.Appends = append(d.rd.Appends, Append{ID: b.id, Entries: entries, Own: own})
	return b
}

func (d *Doc) reject(reason string) { d.rd.Rejects = append(d.rd.Rejects, reason) }

func (d *Doc) drop(queue, reason string) { d.rd.Drops = append(d.rd.Drops, [2]string{queue, reason}) }

func dedupPaths(paths [][]string) [][]string {
	if len(paths) < 2 {
		return paths
	}
	slices.SortFunc(paths, slices.Compare[[]string])
	return slices.CompactFunc(paths, func(a, b []string) bool { return slices.Equal(a, b) })
}

// Settled reports whether Append id (and every one before it) has been
// reported, so what it holds is durable or failed.
func (d *Doc) Settled(id uint64) bool { return d.settled(id) }

// ForkProofs returns how many fork proofs the document holds of origin.
func (d *Doc) ForkProofs(origin crdt.ReplicaID) int {
	n := 0
	for k := range d.forks {
		if k.origin == origin {
			n++
		}
	}
	return n
}

// PeerHolds returns what peer p is known to hold (nil: nothing heard).
func (d *Doc) PeerHolds(p peer.ID) crdt.VersionVector { return d.peerVV[p].Clone() }

// Pending returns how many local transactions wait for their delta to be
// durable.
func (d *Doc) Pending() int {
	n := len(d.pendProps) + len(d.held)
	for _, b := range d.flight {
		n += len(b.props)
	}
	return n
}
