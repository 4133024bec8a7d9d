package store

import (
	"slices"

	"github.com/ipfs/go-datastore"

	"github.com/concord-p2p/concord/crdt"
)

// replicaIndex tracks which sequence numbers of one replica a document holds,
// in the log or covered by the snapshot, without one entry per delta for the
// common in-order case.
//
// Invariants: every seq in 1..contig is held; extra holds the held seqs
// > contig+1; the log holds exactly (base, contig] ∪ extra, where base is the
// snapshot's version-vector entry for the replica (base <= contig).
type replicaIndex struct {
	contig uint64
	max    uint64
	extra  map[uint64]struct{}
}

func (ri *replicaIndex) has(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if seq <= ri.contig {
		return true
	}
	_, ok := ri.extra[seq]
	return ok
}

func (ri *replicaIndex) add(seq uint64) {
	if ri.has(seq) || seq == 0 {
		return
	}
	ri.max = max(ri.max, seq)
	if seq != ri.contig+1 {
		if ri.extra == nil {
			ri.extra = make(map[uint64]struct{})
		}
		ri.extra[seq] = struct{}{}
		return
	}
	ri.contig = seq
	ri.advance()
}

// raise marks 1..n held (a snapshot covers them).
func (ri *replicaIndex) raise(n uint64) {
	if n <= ri.contig {
		return
	}
	ri.contig = n
	ri.max = max(ri.max, n)
	for s := range ri.extra {
		if s <= n {
			delete(ri.extra, s)
		}
	}
	ri.advance()
}

func (ri *replicaIndex) advance() {
	for len(ri.extra) > 0 {
		if _, ok := ri.extra[ri.contig+1]; !ok {
			return
		}
		delete(ri.extra, ri.contig+1)
		ri.contig++
	}
}

// sortedExtra returns the out-of-order seqs in ascending order.
func (ri *replicaIndex) sortedExtra() []uint64 {
	out := make([]uint64, 0, len(ri.extra))
	for s := range ri.extra {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// seqRun is the set of log seqs of one replica in a range: the contiguous part
// lo..hi (empty when lo > hi) followed by the sorted extras.
type seqRun struct {
	replica crdt.ReplicaID
	lo, hi  uint64
	extra   []uint64
}

func (r seqRun) empty() bool { return r.lo > r.hi && len(r.extra) == 0 }

// each calls fn for every seq of the run in ascending order until fn
// returns false.
func (r seqRun) each(fn func(uint64) bool) {
	for s := r.lo; s <= r.hi && s >= r.lo; s++ {
		if !fn(s) {
			return
		}
	}
	for _, s := range r.extra {
		if !fn(s) {
			return
		}
	}
}

// docIndex is the in-memory view of one document.
type docIndex struct {
	replicas map[crdt.ReplicaID]*replicaIndex
	snapVV   crdt.VersionVector // nil when there is no snapshot
	snapErr  error              // non-nil when the snapshot record is corrupt
	outbox   []uint64           // ascending
	ackFloor uint64
	forks    map[datastore.Key]bool // fork proofs stored (AddFork)
}

func newDocIndex() *docIndex {
	return &docIndex{replicas: make(map[crdt.ReplicaID]*replicaIndex)}
}

func (d *docIndex) replica(r crdt.ReplicaID) *replicaIndex {
	ri := d.replicas[r]
	if ri == nil {
		ri = &replicaIndex{}
		d.replicas[r] = ri
	}
	return ri
}

func (d *docIndex) has(r crdt.ReplicaID, seq uint64) bool {
	ri := d.replicas[r]
	return ri != nil && ri.has(seq)
}

// logRun returns the log seqs of r that are > after, ascending.
func (d *docIndex) logRun(r crdt.ReplicaID, after uint64) seqRun {
	ri := d.replicas[r]
	run := seqRun{replica: r, lo: 1, hi: 0}
	if ri == nil {
		return run
	}
	lo := max(after, d.snapVV[r]) + 1
	run.lo, run.hi = lo, ri.contig
	for _, s := range ri.sortedExtra() {
		if s >= lo {
			run.extra = append(run.extra, s)
		}
	}
	return run
}

// coveredRun returns the log seqs of r that are <= upTo, ascending (those a
// compaction to upTo deletes).
func (d *docIndex) coveredRun(r crdt.ReplicaID, upTo uint64) seqRun {
	ri := d.replicas[r]
	run := seqRun{replica: r, lo: 1, hi: 0}
	if ri == nil {
		return run
	}
	run.lo, run.hi = d.snapVV[r]+1, min(ri.contig, upTo)
	for _, s := range ri.sortedExtra() {
		if s <= upTo {
			run.extra = append(run.extra, s)
		}
	}
	return run
}

func (d *docIndex) addOutbox(seq uint64) {
	if seq <= d.ackFloor {
		return
	}
	i, found := slices.BinarySearch(d.outbox, seq)
	if !found {
		d.outbox = slices.Insert(d.outbox, i, seq)
	}
}

func (d *docIndex) sortedReplicas() []crdt.ReplicaID {
	out := make([]crdt.ReplicaID, 0, len(d.replicas))
	for r := range d.replicas {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}
