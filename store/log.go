package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/concord-p2p/concord/crdt"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// Entry is one delta in a document's log.
type Entry struct {
	Replica crdt.ReplicaID
	Seq     uint64
	Data    []byte // opaque encoded delta envelope
}

// Cursor is the position of a Missing scan. The zero Cursor starts at the
// beginning; pass the returned one back to continue.
type Cursor struct {
	replica crdt.ReplicaID
	seq     uint64 // last seq returned for replica
	started bool
}

// Append durably writes entries, in any order and for any replicas, as one
// atomic batch; entries already held (in the log or covered by the
// snapshot) and duplicates within the call are skipped. Entries whose
// Replica equals own (when own is non-empty) are also added to the outbox,
// unless already acknowledged. Append returns only after the batch is synced;
// concurrent Appends share one sync (group commit).
//
// Errors: ErrInvalid (empty replica or seq 0; nothing is written),
// ErrClosed, ErrFailed (a previous write failed), ctx.Err() (the caller
// stopped waiting: the batch may or may not be durable), write errors.
func (s *Store) Append(ctx context.Context, doc string, own crdt.ReplicaID, entries []Entry) error {
	done, err := s.AppendAsync(ctx, doc, own, entries)
	if err != nil {
		return err
	}
	return wait(ctx, done)
}

// AppendAsync is Append without the wait: it returns once the entries are
// queued for commit, and the channel reports when they are durable (or that
// the write failed). Appends queued one after another are committed in that
// order, so a writer can keep several in flight without a later one ever
// becoming durable before an earlier one.
func (s *Store) AppendAsync(ctx context.Context, doc string, own crdt.ReplicaID, entries []Entry) (<-chan error, error) {
	return s.appendEntries(ctx, doc, own, entries, nil)
}

// AppendNotify is AppendAsync with a callback instead of a channel: once
// the entries are durable (or the write failed), notify is called with the
// outcome, on the store's commit goroutine (it must not block: hand the
// outcome on), or at once on the caller's when nothing needed writing. An
// error returned means notify will not be called.
func (s *Store) AppendNotify(ctx context.Context, doc string, own crdt.ReplicaID, entries []Entry, notify func(error)) error {
	_, err := s.appendEntries(ctx, doc, own, entries, notify)
	return err
}

func (s *Store) appendEntries(ctx context.Context, doc string, own crdt.ReplicaID, entries []Entry, notify func(error)) (<-chan error, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	for _, e := range entries {
		if e.Replica == "" || e.Seq == 0 {
			return nil, fmt.Errorf("%w: entry (%q, %d) of doc %q", ErrInvalid, e.Replica, e.Seq, doc)
		}
	}
	type rs struct {
		r   crdt.ReplicaID
		seq uint64
	}
	var (
		ops    []op
		added  []rs
		outbox []uint64
		seen   = make(map[rs]struct{}, len(entries))
	)
	s.mu.RLock()
	d := s.docs[doc]
	for _, e := range entries {
		k := rs{e.Replica, e.Seq}
		if _, dup := seen[k]; dup || (d != nil && d.has(e.Replica, e.Seq)) {
			continue
		}
		seen[k] = struct{}{}
		added = append(added, k)
		ops = append(ops, op{key: logKey(doc, e.Replica, e.Seq), value: s.codec.encodeLog(e.Data)})
		if own != "" && e.Replica == own && (d == nil || e.Seq > d.ackFloor) {
			outbox = append(outbox, e.Seq)
			ops = append(ops, op{key: outboxKey(doc, e.Seq), value: s.codec.marshal(outboxRecord{Replica: string(own)})})
		}
	}
	s.mu.RUnlock()
	return s.enqueueNotify(ctx, ops, func() {
		d := s.doc(doc)
		for _, a := range added {
			d.replica(a.r).add(a.seq)
		}
		for _, seq := range outbox {
			d.addOutbox(seq)
		}
	}, notify)
}

// Has reports whether doc holds (r, seq), in its log or covered by its
// snapshot (from the in-memory index; only durable writes are visible).
func (s *Store) Has(doc string, r crdt.ReplicaID, seq uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := s.docs[doc]
	return d != nil && d.has(r, seq)
}

// Contiguous returns, per replica, the highest seq such that every seq in
// 1..seq is in the log or covered by the snapshot. Zero entries are omitted.
func (s *Store) Contiguous(doc string) crdt.VersionVector {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vv := crdt.VersionVector{}
	if d := s.docs[doc]; d != nil {
		for r, ri := range d.replicas {
			if ri.contig > 0 {
				vv[r] = ri.contig
			}
		}
	}
	return vv
}

// MaxSeq returns the highest seq held for r in doc (log or snapshot), 0 if
// none.
func (s *Store) MaxSeq(doc string, r crdt.ReplicaID) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if d := s.docs[doc]; d != nil {
		if ri := d.replicas[r]; ri != nil {
			return ri.max
		}
	}
	return 0
}

// NeedsSnapshot reports whether a peer at version vector have lacks deltas
// that were compacted away: some replica's snapshot entry is above have.
// Such a peer must receive the snapshot; Missing only returns log entries.
func (s *Store) NeedsSnapshot(doc string, have crdt.VersionVector) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := s.docs[doc]
	return d != nil && d.snapVV != nil && !have.Covers(d.snapVV)
}

// Docs returns the names of the documents holding any data, sorted.
func (s *Store) Docs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Sorted(maps.Keys(s.docs))
}

// Get returns one log entry. Errors: ErrNotFound (not in the log, possibly
// because it was compacted into the snapshot), ErrCorrupt, read errors.
func (s *Store) Get(ctx context.Context, doc string, r crdt.ReplicaID, seq uint64) (Entry, error) {
	if s.isClosed() {
		return Entry{}, ErrClosed
	}
	k := logKey(doc, r, seq)
	s.mu.RLock()
	d := s.docs[doc]
	covered := d != nil && d.snapVV != nil && seq <= d.snapVV[r]
	s.mu.RUnlock()
	if covered {
		return Entry{}, fmt.Errorf("%w: %s (compacted)", ErrNotFound, k)
	}
	b, err := s.ds.Get(ctx, k)
	if errors.Is(err, datastore.ErrNotFound) {
		return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, k)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("store: get %s: %w", k, err)
	}
	data, err := s.codec.decodeLog(k, b)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Replica: r, Seq: seq, Data: data}, nil
}

// Missing returns log entries of doc with seq > have[r] for every replica,
// replica by replica (sorted by ID) and in seq order within a replica, at
// most Options.MaxBatchBytes of Data per call but always at least one entry
// if any remains. Pass next back as cur to continue; done is true when
// nothing remains after batch. Deltas folded into the snapshot are not
// returned (see NeedsSnapshot). An entry removed by a concurrent compaction
// is skipped.
//
// A corrupt record stops the batch: err wraps ErrCorrupt and names the key,
// batch holds the good entries before it and next points past it, so the
// caller can log the error and continue with next.
func (s *Store) Missing(ctx context.Context, doc string, have crdt.VersionVector, cur Cursor) (batch []Entry, next Cursor, done bool, err error) {
	if s.isClosed() {
		return nil, cur, false, ErrClosed
	}
	s.mu.RLock()
	d := s.docs[doc]
	var runs []seqRun
	if d != nil {
		for _, r := range d.sortedReplicas() {
			if cur.started && r < cur.replica {
				continue
			}
			after := have[r]
			if cur.started && r == cur.replica {
				after = max(after, cur.seq)
			}
			if run := d.logRun(r, after); !run.empty() {
				runs = append(runs, run)
			}
		}
	}
	s.mu.RUnlock()

	next = cur
	size := 0
	full := false
	for _, run := range runs {
		prefix := logReplicaPrefix(doc, run.replica)
		// take handles one seq of the run; raw is its record, or nil when
		// a concurrent compaction removed it.
		take := func(seq uint64, raw []byte) bool {
			k := logKeyIn(prefix, seq)
			if raw == nil {
				next = Cursor{replica: run.replica, seq: seq, started: true}
				return true
			}
			data, derr := s.codec.decodeLog(k, raw)
			if derr != nil {
				err = derr
				next = Cursor{replica: run.replica, seq: seq, started: true}
				return false
			}
			if len(batch) > 0 && size+len(data) > s.opts.MaxBatchBytes {
				full = true
				return false
			}
			size += len(data)
			batch = append(batch, Entry{Replica: run.replica, Seq: seq, Data: data})
			next = Cursor{replica: run.replica, seq: seq, started: true}
			return true
		}
		if s.pdb != nil {
			if serr := s.scanRunPebble(ctx, prefix, run, take); serr != nil && err == nil {
				err = serr
			}
		} else {
			run.each(func(seq uint64) bool {
				if ctx.Err() != nil {
					err = ctx.Err()
					return false
				}
				k := logKeyIn(prefix, seq)
				b, gerr := s.ds.Get(ctx, k)
				if errors.Is(gerr, datastore.ErrNotFound) {
					return take(seq, nil)
				}
				if gerr != nil {
					err = fmt.Errorf("store: get %s: %w", k, gerr)
					return false
				}
				return take(seq, b)
			})
		}
		if err != nil || full {
			break
		}
	}
	if err != nil {
		return batch, next, false, err
	}
	return batch, next, !full, nil
}

// Entries calls fn for every log entry of doc not covered by the snapshot,
// in key order (replica, then seq). It is meant for replay at startup. A
// corrupt record does not stop the scan: the returned error is the errors.Join
// of ErrCorrupt-wrapped errors, each naming its key, reported after all
// other entries were passed to fn. An error from fn stops the scan and is
// returned as is.
func (s *Store) Entries(ctx context.Context, doc string, fn func(Entry) error) error {
	if s.isClosed() {
		return ErrClosed
	}
	s.mu.RLock()
	var snapVV crdt.VersionVector
	if d := s.docs[doc]; d != nil {
		snapVV = d.snapVV.Clone()
	}
	s.mu.RUnlock()
	var bad []error
	q := query.Query{Prefix: logPrefix(doc), Orders: []query.Order{query.OrderByKey{}}}
	for e, err := range datastore.QueryIter(ctx, s.ds, q) {
		if err != nil {
			return errors.Join(append(bad, fmt.Errorf("store: scan %s: %w", q.Prefix, err))...)
		}
		k := datastore.RawKey(e.Key)
		p, err := parseDocKey(e.Key)
		if err != nil || p.kind != kindLog || p.doc != doc {
			bad = append(bad, fmt.Errorf("%w: %w", ErrCorrupt, err))
			continue
		}
		if p.seq <= snapVV[p.replica] {
			continue // compacted; deletion pending
		}
		data, err := s.codec.decodeLog(k, e.Value)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		if err := fn(Entry{Replica: p.replica, Seq: p.seq, Data: data}); err != nil {
			return err
		}
	}
	return errors.Join(bad...)
}

// scanRunPebble reads the records of run with one Pebble iterator instead of
// a point lookup per seq. Only seqs in run (i.e. durable, indexed ones) are
// passed to take; keys the iterator meets that are not in run are skipped.
func (s *Store) scanRunPebble(ctx context.Context, prefix string, run seqRun, take func(uint64, []byte) bool) error {
	first := uint64(0)
	run.each(func(seq uint64) bool { first = seq; return false })
	if first == 0 {
		return nil
	}
	it, err := s.pdb.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: logKeyIn(prefix, first).Bytes(),
		UpperBound: []byte(prefix + "0"), // '0' follows '/'
	})
	if err != nil {
		return fmt.Errorf("store: iterate %s: %w", prefix, err)
	}
	valid := it.First()
	var ierr error
	run.each(func(seq uint64) bool {
		if ierr = ctx.Err(); ierr != nil {
			return false
		}
		var cur uint64
		for valid {
			k := it.Key()
			if len(k) != len(prefix)+17 {
				valid = it.Next()
				continue
			}
			if cur, ierr = parseSeqSegment(string(k[len(prefix)+1:])); ierr != nil {
				ierr = nil
				valid = it.Next()
				continue
			}
			if cur >= seq {
				break
			}
			valid = it.Next()
		}
		if !valid || cur != seq {
			return take(seq, nil)
		}
		raw, verr := it.ValueAndErr()
		if verr != nil {
			ierr = fmt.Errorf("store: read %s: %w", logKeyIn(prefix, seq), verr)
			return false
		}
		return take(seq, bytes.Clone(raw))
	})
	if err := it.Close(); err != nil && ierr == nil {
		ierr = fmt.Errorf("store: iterate %s: %w", prefix, err)
	}
	return ierr
}
