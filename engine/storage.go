package engine

import (
	"context"
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// StoreLog is the Storage of document Doc in a store.
type StoreLog struct {
	St  *store.Store
	Doc string
}

var _ Storage = StoreLog{}

func (s StoreLog) Snapshot() (store.Snapshot, bool, error) {
	return s.St.Snapshot(context.Background(), s.Doc)
}

func (s StoreLog) Entries(fn func(store.Entry) error) error {
	return s.St.Entries(context.Background(), s.Doc, fn)
}

func (s StoreLog) Forks() ([]store.Fork, error) { return s.St.Forks(context.Background(), s.Doc) }

func (s StoreLog) Get(rep crdt.ReplicaID, seq uint64) (store.Entry, error) {
	return s.St.Get(context.Background(), s.Doc, rep, seq)
}

func (s StoreLog) Has(rep crdt.ReplicaID, seq uint64) bool { return s.St.Has(s.Doc, rep, seq) }

func (s StoreLog) MaxSeq(rep crdt.ReplicaID) uint64 { return s.St.MaxSeq(s.Doc, rep) }

func (s StoreLog) Contiguous() crdt.VersionVector { return s.St.Contiguous(s.Doc) }

func (s StoreLog) NeedsSnapshot(have crdt.VersionVector) bool {
	return s.St.NeedsSnapshot(s.Doc, have)
}

func (s StoreLog) Missing(have crdt.VersionVector, cur store.Cursor) ([]store.Entry, store.Cursor, bool, error) {
	return s.St.Missing(context.Background(), s.Doc, have, cur)
}

func (s StoreLog) Outbox() []uint64 { return s.St.Outbox(s.Doc) }

// Validate is gossip's check of an envelope received from peer from,
// before it is relayed: duplicates (every sequence number it covers held
// durably, and not a new fork) are wire.ErrDuplicate; otherwise chk checks
// it (an aggregate first of all, so a forged one costs a signature check,
// not a thousand lookups). It reads only st, so it runs outside the engine,
// concurrently, when st and chk's cache allow.
func Validate(st Storage, chk *Checker, from peer.ID, e *wire.Envelope) error {
	holds := func() bool {
		for seq := e.Seq; seq <= e.LastSeq(); seq++ {
			if !st.Has(e.Origin, seq) {
				return false
			}
		}
		return true
	}
	if e.Last == 0 {
		if holds() && !isFork(st, e) {
			return wire.ErrDuplicate
		}
		return chk.Check(from, e) // a new fork is relayed (fork.go)
	}
	if err := chk.Check(from, e); err != nil {
		return err
	}
	if holds() {
		return wire.ErrDuplicate
	}
	return nil
}

// isFork reports whether e is the other side of a fork of the entry st
// holds at its slot.
func isFork(st Storage, e *wire.Envelope) bool {
	stored, err := st.Get(e.Origin, e.Seq)
	if err != nil {
		return false
	}
	return ForkOf(stored.Data, e) != nil
}

// errNotHeld is MemoryLog's error for an entry it does not hold.
var errNotHeld = errors.New("engine: entry not held")
