package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// PeerRecord is what the peer book remembers about one peer.
type PeerRecord struct {
	ID       string
	Addrs    []string
	LastSeen time.Time
}

// LoadOrCreateKey returns the node's private key from /node/key. If there is
// none it calls gen once, stores the result durably and returns it. Errors:
// ErrClosed, ErrCorrupt (the stored key cannot be decoded; gen is not called
// so a corrupt key is never silently replaced), gen's error, write errors.
func (s *Store) LoadOrCreateKey(ctx context.Context, gen func() ([]byte, error)) ([]byte, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	b, err := s.ds.Get(ctx, keyNodeKey)
	switch {
	case err == nil:
		var r nodeKeyRecord
		if err := s.codec.unmarshal(keyNodeKey, b, &r); err != nil {
			return nil, err
		}
		return r.Key, nil
	case !errors.Is(err, datastore.ErrNotFound):
		return nil, fmt.Errorf("store: get %s: %w", keyNodeKey, err)
	}
	key, err := gen()
	if err != nil {
		return nil, fmt.Errorf("store: generate node key: %w", err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: generated node key is empty", ErrInvalid)
	}
	ops := []op{{key: keyNodeKey, value: s.codec.marshal(nodeKeyRecord{Key: key})}}
	if err := s.submit(ctx, ops, nil); err != nil {
		return nil, err
	}
	return key, nil
}

// PutPeer durably stores (replaces) the record for p.ID.
func (s *Store) PutPeer(ctx context.Context, p PeerRecord) error {
	if s.isClosed() {
		return ErrClosed
	}
	return s.submit(ctx, []op{{key: peerKey(p.ID), value: s.codec.encodePeer(p)}}, nil)
}

// Peers returns every peer record, sorted by ID. Corrupt records are skipped
// and reported in the returned error (errors.Join of ErrCorrupt-wrapped
// errors naming each key) alongside the records that did load.
func (s *Store) Peers(ctx context.Context) ([]PeerRecord, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	var out []PeerRecord
	var bad []error
	for e, err := range datastore.QueryIter(ctx, s.ds, query.Query{Prefix: nsPeers}) {
		if err != nil {
			return out, fmt.Errorf("store: scan %s: %w", nsPeers, err)
		}
		k := datastore.RawKey(e.Key)
		p, err := s.codec.decodePeer(k, e.Value)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		if want := peerKey(p.ID); want != k {
			bad = append(bad, fmt.Errorf("%w: %s: holds peer %q", ErrCorrupt, k, p.ID))
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b PeerRecord) int { return strings.Compare(a.ID, b.ID) })
	return out, errors.Join(bad...)
}
