package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/concord-p2p/concord/crdt"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// Store is Concord's durable state: per-document delta logs, snapshots and
// outboxes, and per-node records. It is safe for concurrent use. Every write
// method returns only after its data is synced (unless Options.NoSync).
type Store struct {
	ds    datastore.Batching
	pdb   *pebble.DB // set when ds is go-ds-pebble: Missing then range-scans
	owned bool
	opts  Options
	codec codec

	incarnation uint64

	mu   sync.RWMutex // guards docs and everything reachable from it
	docs map[string]*docIndex

	problems []error // corrupt records found at Open (immutable after Open)

	reqs     chan *writeReq
	loopDone chan struct{}
	groups   atomic.Uint64 // group commits performed (for tests and stats)

	closeMu   sync.RWMutex // held for reading while enqueuing a request
	closed    bool
	closeOnce sync.Once
	closeErr  error

	failMu  sync.Mutex
	failErr error

	keyMu     sync.Mutex // serialises LoadOrCreateKey
	compactMu sync.Mutex // one compaction at a time
}

// OpenMemory returns a Store over an in-memory datastore
// (sync.MutexWrap(datastore.NewMapDatastore())). Nothing survives Close.
func OpenMemory(opts Options) (*Store, error) {
	s, err := Open(context.Background(), dssync.MutexWrap(datastore.NewMapDatastore()), opts)
	if err != nil {
		return nil, err
	}
	s.owned = true
	return s, nil
}

// OpenPebble opens (creating if needed) a Pebble database in dir via
// go-ds-pebble. The Store owns it and closes it on Close.
func OpenPebble(dir string, opts Options) (*Store, error) {
	pds, err := pebbleds.NewDatastore(dir)
	if err != nil {
		return nil, fmt.Errorf("store: open pebble %s: %w", dir, err)
	}
	s, err := Open(context.Background(), pds, opts)
	if err != nil {
		return nil, errors.Join(err, pds.Close())
	}
	s.owned = true
	return s, nil
}

// Open returns a Store over ds, recovering its state: it checks the schema
// version (ErrSchemaTooNew, with nothing written, if it is newer than this
// code), creates the schema and incarnation records on a fresh datastore,
// rebuilds the in-memory indexes and finishes any compaction a crash
// interrupted. A Store from Open does not own ds: Close leaves it open.
// Corrupt records found while loading do not fail Open; see Problems.
func Open(ctx context.Context, ds datastore.Batching, opts Options) (*Store, error) {
	s := &Store{
		ds:    ds,
		opts:  opts.withDefaults(),
		codec: newCodec(),
		docs:  make(map[string]*docIndex),
	}
	if p, ok := ds.(*pebbleds.Datastore); ok {
		s.pdb = p.DB
	}
	if err := s.openNode(ctx); err != nil {
		return nil, err
	}
	if err := s.recover(ctx); err != nil {
		return nil, err
	}
	s.reqs = make(chan *writeReq, s.opts.QueueLength)
	s.loopDone = make(chan struct{})
	go s.commitLoop()
	return s, nil
}

// Close stops the group-commit goroutine after it has committed every queued
// request, then closes the datastore if the Store owns it. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.reqs)
		<-s.loopDone
		if s.owned {
			if err := s.ds.Close(); err != nil {
				s.closeErr = fmt.Errorf("store: close datastore: %w", err)
			}
		}
	})
	return s.closeErr
}

func (s *Store) isClosed() bool {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	return s.closed
}

// Problems returns the corrupt records found by Open (errors.Join of
// ErrCorrupt-wrapped errors naming each key), or nil.
func (s *Store) Problems() error { return errors.Join(s.problems...) }

// Incarnation returns the random non-zero value created durably when this
// store's datastore was first initialised. It is stable across reopen; a
// fresh directory gets a fresh one.
func (s *Store) Incarnation() uint64 { return s.incarnation }

func (s *Store) openNode(ctx context.Context) error {
	var schema uintRecord
	b, err := s.ds.Get(ctx, keyNodeSchema)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		schema.V = 0
	case err != nil:
		return fmt.Errorf("store: get %s: %w", keyNodeSchema, err)
	default:
		if err := s.codec.unmarshal(keyNodeSchema, b, &schema); err != nil {
			return err
		}
		if schema.V > schemaVersion {
			return fmt.Errorf("%w: %s is %d, this code knows up to %d", ErrSchemaTooNew, keyNodeSchema, schema.V, schemaVersion)
		}
	}
	var ops []op
	if schema.V == 0 {
		ops = append(ops, op{key: keyNodeSchema, value: s.codec.marshal(uintRecord{V: schemaVersion})})
	}
	b, err = s.ds.Get(ctx, keyNodeIncarnation)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		inc, err := randomNonZero()
		if err != nil {
			return err
		}
		s.incarnation = inc
		ops = append(ops, op{key: keyNodeIncarnation, value: s.codec.marshal(uintRecord{V: inc})})
	case err != nil:
		return fmt.Errorf("store: get %s: %w", keyNodeIncarnation, err)
	default:
		var r uintRecord
		if err := s.codec.unmarshal(keyNodeIncarnation, b, &r); err != nil {
			return err
		}
		if r.V == 0 {
			return fmt.Errorf("%w: %s: zero incarnation", ErrCorrupt, keyNodeIncarnation)
		}
		s.incarnation = r.V
	}
	// Schema and incarnation are created together, synced even with NoSync.
	return s.writeOps(ctx, ops, true)
}

func randomNonZero() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("store: random incarnation: %w", err)
		}
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v, nil
		}
	}
}

func (s *Store) doc(name string) *docIndex {
	d := s.docs[name]
	if d == nil {
		d = newDocIndex()
		s.docs[name] = d
	}
	return d
}

// recover rebuilds the in-memory indexes from one ordered keys-only scan of
// /docs, then repairs what a crash can leave behind:
//   - a compaction intent (/docs/<doc>/compacting): the snapshot and intent
//     were written in one synced batch, so the new snapshot is in place; the
//     compaction is finished by deleting the log entries it covers, then the
//     intent. (There is never anything to roll back.)
//   - log entries covered by the snapshot without an intent (deletions that
//     were not yet synced when the intent removal was): deleted.
//   - outbox entries at or below the acknowledged floor: deleted.
func (s *Store) recover(ctx context.Context) error {
	type leftover struct {
		doc string
		r   crdt.ReplicaID
	}
	minLog := make(map[leftover]uint64) // smallest log seq per (doc, replica)
	intents := make(map[string]bool)
	hasSnap := make(map[string]bool)
	var del []op
	q := query.Query{Prefix: nsDocs, KeysOnly: true, Orders: []query.Order{query.OrderByKey{}}}
	for e, err := range datastore.QueryIter(ctx, s.ds, q) {
		if err != nil {
			return fmt.Errorf("store: scan %s: %w", nsDocs, err)
		}
		p, err := parseDocKey(e.Key)
		if err != nil {
			s.problem(fmt.Errorf("%w: %w", ErrCorrupt, err))
			continue
		}
		d := s.doc(p.doc)
		switch p.kind {
		case kindLog:
			d.replica(p.replica).add(p.seq)
			k := leftover{p.doc, p.replica}
			if m, ok := minLog[k]; !ok || p.seq < m {
				minLog[k] = p.seq
			}
		case kindSnap:
			hasSnap[p.doc] = true
		case kindIntent:
			intents[p.doc] = true
		case kindAcked:
			k := ackedKey(p.doc)
			b, err := s.ds.Get(ctx, k)
			if err != nil {
				return fmt.Errorf("store: get %s: %w", k, err)
			}
			var r ackRecord
			if err := s.codec.unmarshal(k, b, &r); err != nil {
				s.problem(err)
				continue
			}
			d.ackFloor = r.UpTo
		case kindFork:
			if d.forks == nil {
				d.forks = map[datastore.Key]bool{}
			}
			d.forks[datastore.RawKey(e.Key)] = true
		case kindOutbox:
			if p.seq <= d.ackFloor {
				del = append(del, op{key: outboxKey(p.doc, p.seq), del: true})
				continue
			}
			d.addOutbox(p.seq)
		}
	}
	for name := range hasSnap {
		d := s.docs[name]
		k := snapKey(name)
		b, err := s.ds.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("store: get %s: %w", k, err)
		}
		snap, err := s.codec.decodeSnap(k, b)
		if err != nil {
			// Keep every log entry: without the snapshot's version vector
			// nothing can be considered covered.
			d.snapErr = err
			s.problem(err)
			continue
		}
		d.snapVV = snap.VV
		for r, n := range snap.VV {
			d.replica(r).raise(n)
		}
	}
	for k, m := range minLog {
		d := s.docs[k.doc]
		n := d.snapVV[k.r]
		if m > n {
			continue
		}
		// Covered entries left by an interrupted compaction.
		prefix := logReplicaPrefix(k.doc, k.r)
		q := query.Query{Prefix: prefix, KeysOnly: true, Orders: []query.Order{query.OrderByKey{}}}
		for e, err := range datastore.QueryIter(ctx, s.ds, q) {
			if err != nil {
				return fmt.Errorf("store: scan %s: %w", prefix, err)
			}
			p, err := parseDocKey(e.Key)
			if err != nil || p.kind != kindLog {
				continue // already reported
			}
			if p.seq <= n {
				del = append(del, op{key: datastore.RawKey(e.Key), del: true})
			}
		}
	}
	for name := range intents {
		if s.docs[name].snapErr != nil || !hasSnap[name] {
			s.problem(fmt.Errorf("%w: %s present without a readable snapshot; left in place", ErrCorrupt, intentKey(name)))
			continue
		}
		del = append(del, op{key: intentKey(name), del: true})
	}
	if len(del) > 0 {
		s.opts.Logger.Info("store: recovery cleanup", "deletes", len(del), "compactions_finished", len(intents))
	}
	// Intent deletions are last in del, after the log deletions they guard.
	for chunk := range slices.Chunk(del, s.opts.CompactChunk) {
		if err := s.writeOps(ctx, chunk, true); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) problem(err error) {
	s.opts.Logger.Warn("store: corrupt record", "err", err)
	s.problems = append(s.problems, err)
}
