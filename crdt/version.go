package crdt

import (
	"sort"
)

// ReplicaID names one writer of a document. Concord derives it from the
// author's libp2p peer ID plus a per-store incarnation, so a replica never
// reuses a sequence number even when its store is lost and its key is kept.
// The crdt package treats it as an opaque, comparable string.
type ReplicaID string

// MaxCounter bounds every dot counter and sequence number a decoder
// accepts (and so what a replica ever mints): far beyond any real history,
// and far enough below 2⁶⁴ that counter arithmetic never wraps.
const MaxCounter = 1 << 62

// Dot is one event of one replica: the Counter-th dot minted by Replica.
type Dot struct {
	Replica ReplicaID
	Counter uint64
}

// VersionVector maps each replica to the highest contiguous counter (or
// sequence number) seen from it. A missing entry means zero.
type VersionVector map[ReplicaID]uint64

// Get returns the entry for r (zero when absent).
func (v VersionVector) Get(r ReplicaID) uint64 { return v[r] }

// Clone returns a copy of v.
func (v VersionVector) Clone() VersionVector {
	out := make(VersionVector, len(v))
	for r, n := range v {
		out[r] = n
	}
	return out
}

// Merge raises every entry of v to at least the entry in o.
func (v VersionVector) Merge(o VersionVector) {
	for r, n := range o {
		if n > v[r] {
			v[r] = n
		}
	}
}

// Covers reports whether v has seen everything o has (v ≥ o pointwise).
func (v VersionVector) Covers(o VersionVector) bool {
	for r, n := range o {
		if v[r] < n {
			return false
		}
	}
	return true
}

// Equal reports whether v and o hold the same non-zero entries.
func (v VersionVector) Equal(o VersionVector) bool {
	return v.Covers(o) && o.Covers(v)
}

// Replicas returns the replicas with a non-zero entry, sorted.
func (v VersionVector) Replicas() []ReplicaID {
	out := make([]ReplicaID, 0, len(v))
	for r, n := range v {
		if n > 0 {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
