package engine

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
)

// MemoryLog is an in-memory Storage (as raft's MemoryStorage): the log of
// one document, with Apply to carry out the writes of a Ready. Tests and
// tools drive an engine over it without a store.
type MemoryLog struct {
	entries map[crdt.ReplicaID]map[uint64][]byte
	snap    store.Snapshot
	hasSnap bool
	forks   []store.Fork
	outbox  map[uint64]bool
	acked   uint64
}

var _ Storage = (*MemoryLog)(nil)

// NewMemoryLog returns an empty log.
func NewMemoryLog() *MemoryLog {
	return &MemoryLog{entries: map[crdt.ReplicaID]map[uint64][]byte{}, outbox: map[uint64]bool{}}
}

// Apply carries out the writes of rd on the log (appends, fork proofs,
// acknowledgments, snapshots) and reports each to d; the Ready those
// reports produce is d's next. The appends are reported durable at the
// latest time d was stepped with: they took no time.
func (m *MemoryLog) Apply(d *Doc, rd Ready) { m.ApplyAt(d, rd, d.now) }

// ApplyAt is Apply with the appends reported durable at now.
func (m *MemoryLog) ApplyAt(d *Doc, rd Ready, now time.Time) {
	for _, a := range rd.Appends {
		if err := a.Seal(); err != nil {
			d.Persisted(now, a.ID, err)
			continue
		}
		for _, e := range a.Entries {
			if m.Has(e.Replica, e.Seq) {
				continue
			}
			if m.entries[e.Replica] == nil {
				m.entries[e.Replica] = map[uint64][]byte{}
			}
			m.entries[e.Replica][e.Seq] = e.Data
			if a.Own && e.Replica == d.cfg.Self && e.Seq > m.acked {
				m.outbox[e.Seq] = true
			}
		}
		d.Persisted(now, a.ID, nil)
	}
	for _, fw := range rd.Forks {
		m.forks = append(m.forks, fw.Proofs...)
		d.ForksStored(fw.ID, true, nil)
	}
	if rd.AckUpTo != 0 {
		m.acked = max(m.acked, rd.AckUpTo)
		for seq := range m.outbox {
			if seq <= m.acked {
				delete(m.outbox, seq)
			}
		}
		d.Acknowledged(rd.AckUpTo, nil)
	}
	if rd.Compact != nil {
		m.snap, m.hasSnap = rd.Compact.Snapshot, true
		for rep, n := range m.snap.VV {
			for seq := range m.entries[rep] {
				if seq <= n {
					delete(m.entries[rep], seq)
				}
			}
		}
		d.Compacted(nil)
	}
}

// Snapshot implements Storage.
func (m *MemoryLog) Snapshot() (store.Snapshot, bool, error) {
	if !m.hasSnap {
		return store.Snapshot{}, false, store.ErrNotFound
	}
	return m.snap, true, nil
}

// Entries implements Storage.
func (m *MemoryLog) Entries(fn func(store.Entry) error) error {
	for _, e := range m.all(nil) {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Forks implements Storage.
func (m *MemoryLog) Forks() ([]store.Fork, error) { return slices.Clone(m.forks), nil }

// Get implements Storage.
func (m *MemoryLog) Get(rep crdt.ReplicaID, seq uint64) (store.Entry, error) {
	b, ok := m.entries[rep][seq]
	if !ok {
		return store.Entry{}, fmt.Errorf("%w: %s/%d", store.ErrNotFound, rep, seq)
	}
	return store.Entry{Replica: rep, Seq: seq, Data: b}, nil
}

// Has implements Storage.
func (m *MemoryLog) Has(rep crdt.ReplicaID, seq uint64) bool {
	_, ok := m.entries[rep][seq]
	return ok || seq <= m.snap.VV[rep]
}

// MaxSeq implements Storage.
func (m *MemoryLog) MaxSeq(rep crdt.ReplicaID) uint64 {
	n := m.snap.VV[rep]
	for seq := range m.entries[rep] {
		n = max(n, seq)
	}
	return n
}

// Contiguous implements Storage.
func (m *MemoryLog) Contiguous() crdt.VersionVector {
	vv := crdt.VersionVector{}
	reps := maps.Clone(m.snap.VV)
	if reps == nil {
		reps = crdt.VersionVector{}
	}
	for rep := range m.entries {
		reps[rep] = max(reps[rep], 0)
	}
	for rep := range reps {
		n := m.snap.VV[rep]
		for m.Has(rep, n+1) {
			n++
		}
		if n > 0 {
			vv[rep] = n
		}
	}
	return vv
}

// NeedsSnapshot implements Storage.
func (m *MemoryLog) NeedsSnapshot(have crdt.VersionVector) bool {
	for rep, n := range m.snap.VV {
		if have[rep] < n {
			return true
		}
	}
	return false
}

// Missing implements Storage: every entry have lacks, in one batch.
func (m *MemoryLog) Missing(have crdt.VersionVector, _ store.Cursor) ([]store.Entry, store.Cursor, bool, error) {
	return m.all(have), store.Cursor{}, true, nil
}

// Outbox implements Storage.
func (m *MemoryLog) Outbox() []uint64 { return slices.Sorted(maps.Keys(m.outbox)) }

// all returns the entries past have, sorted by replica and seq.
func (m *MemoryLog) all(have crdt.VersionVector) []store.Entry {
	var out []store.Entry
	for rep, es := range m.entries {
		for seq, b := range es {
			if seq > have[rep] {
				out = append(out, store.Entry{Replica: rep, Seq: seq, Data: b})
			}
		}
	}
	slices.SortFunc(out, func(a, b store.Entry) int {
		return cmp.Or(cmp.Compare(a.Replica, b.Replica), cmp.Compare(a.Seq, b.Seq))
	})
	return out
}
