package store

import (
	"context"
	"fmt"

	"github.com/concord-p2p/concord/crdt"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// MaxForks bounds the fork proofs kept per document (see AddFork).
const MaxForks = 64

// Fork is a proof that a replica equivocated: Data is a second envelope
// signed by Replica for Seq whose content differs from the one in the log.
// ID distinguishes several forks of one slot (a hash of the content, chosen
// by the caller).
type Fork struct {
	Replica crdt.ReplicaID
	Seq     uint64
	ID      uint64
	Data    []byte
}

func forkPrefix(doc string) string { return docPrefix(doc) + "/forks" }

func forkKey(doc string, f Fork) datastore.Key {
	return datastore.RawKey(forkPrefix(doc) + "/" + escapeSegment(string(f.Replica)) + "/" + seqSegment(f.Seq) + "/" + seqSegment(f.ID))
}

// AddFork durably stores f (a synced write, through the commit queue). It
// returns false, writing nothing, when f is stored already or the document
// holds MaxForks proofs. Forks are never compacted: a peer keeps serving
// them so that every peer ends up holding both sides.
// Errors: ErrInvalid, ErrClosed, ErrFailed, ctx.Err(), write errors.
func (s *Store) AddFork(ctx context.Context, doc string, f Fork) (bool, error) {
	if s.isClosed() {
		return false, ErrClosed
	}
	if f.Replica == "" || f.Seq == 0 {
		return false, fmt.Errorf("%w: fork of replica %q seq %d", ErrInvalid, f.Replica, f.Seq)
	}
	k := forkKey(doc, f)
	s.mu.Lock()
	d := s.doc(doc)
	if d.forks == nil {
		d.forks = map[datastore.Key]bool{}
	}
	if d.forks[k] || len(d.forks) >= MaxForks {
		s.mu.Unlock()
		return false, nil
	}
	d.forks[k] = true // claimed now, so a concurrent AddFork of f is a no-op
	s.mu.Unlock()
	if err := s.submit(ctx, []op{{key: k, value: s.codec.encodeLog(f.Data)}}, nil); err != nil {
		s.mu.Lock()
		delete(d.forks, k)
		s.mu.Unlock()
		return false, err
	}
	return true, nil
}

// Forks returns the fork proofs stored for doc. A corrupt record is
// reported in the error and skipped.
func (s *Store) Forks(ctx context.Context, doc string) ([]Fork, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	s.mu.RLock()
	n := 0
	if d := s.docs[doc]; d != nil {
		n = len(d.forks)
	}
	s.mu.RUnlock()
	if n == 0 {
		return nil, nil
	}
	var out []Fork
	var bad error
	q := query.Query{Prefix: forkPrefix(doc), Orders: []query.Order{query.OrderByKey{}}}
	for e, err := range datastore.QueryIter(ctx, s.ds, q) {
		if err != nil {
			return out, fmt.Errorf("store: scan forks of %q: %w", doc, err)
		}
		p, err := parseDocKey(e.Key)
		if err != nil || p.kind != kindFork {
			continue
		}
		data, err := s.codec.decodeLog(datastore.RawKey(e.Key), e.Value)
		if err != nil {
			bad = err
			continue
		}
		out = append(out, Fork{Replica: p.replica, Seq: p.seq, ID: p.id, Data: data})
	}
	return out, bad
}
