package engine

import (
	"slices"
	"time"

	"github.com/concord-p2p/concord/crdt"
)

// Tombstone collection. A compaction also garbage-collects the tombstones
// of the document's texts and lists that every known peer holds — their
// inserts and deletes below the compaction floor (crdt.State
// CollectTombstones). The floor counts deltas (sequence numbers); the
// sequences count dots, so the document remembers, for the last deltas of
// each replica, how many dots the replica had minted by then, and the
// floor in dots is what those marks prove (a lower bound: collecting less
// is always safe).
//
// An insert that names a collected element (typed next to it elsewhere
// before the floor passed it, or by a peer the floor did not count) is
// held back by the state, not lost. The document then asks the peers it
// hears from for a whole state (Hello.WantState) — at most every
// repairEvery — until one that holds the element brings it back.

// dotMarksPerReplica bounds the marks kept per replica.
const dotMarksPerReplica = 16

// repairEvery spaces the exchanges asked for to repair held-back inserts.
const repairEvery = 5 * time.Second

type tombstoneGC struct {
	marks     map[crdt.ReplicaID][]dotMark
	collected uint64    // elements collected so far
	repairAt  time.Time // the last exchange asked for a repair
}

// dotMark: by its delta seq, the replica had minted dots up to dot.
type dotMark struct{ seq, dot uint64 }

// mark records that rep had minted no dot above dot by its delta last.
func (g *tombstoneGC) mark(rep crdt.ReplicaID, last, dot uint64) {
	if last == 0 || dot == 0 {
		return
	}
	if g.marks == nil {
		g.marks = map[crdt.ReplicaID][]dotMark{}
	}
	ms := g.marks[rep]
	i, found := slices.BinarySearchFunc(ms, last, func(m dotMark, s uint64) int {
		switch {
		case m.seq < s:
			return -1
		case m.seq > s:
			return 1
		}
		return 0
	})
	if found {
		ms[i].dot = min(ms[i].dot, dot)
		return
	}
	if len(ms) == dotMarksPerReplica {
		if i == 0 {
			return // older than every mark kept
		}
		ms = slices.Delete(ms, 0, 1) // the oldest goes
		i--
	}
	g.marks[rep] = slices.Insert(ms, i, dotMark{last, dot})
}

// dotFloor converts a floor of sequence numbers to one of dots: for each
// replica, the dots proven minted by deltas the floor covers.
func (g *tombstoneGC) dotFloor(floor crdt.VersionVector) crdt.VersionVector {
	out := crdt.VersionVector{}
	for rep, f := range floor {
		var dot uint64
		for _, m := range g.marks[rep] {
			if m.seq <= f {
				dot = max(dot, m.dot)
			}
		}
		if dot > 0 {
			out[rep] = dot
		}
	}
	return out
}

// collectTombstones garbage-collects the tombstones every peer the
// document remembers holds.
// The floor here counts every peer the document remembers, silent or not
// (the compaction floor leaves out those silent past the retention, which
// catch up by snapshot): a peer that has not seen a delete must get it
// from a state that still holds the deleted element, or from the log.
func (d *Doc) collectTombstones() {
	if len(d.peerVV) == 0 || !d.state.HasSequences() {
		return // alone, nothing is known of what others hold
	}
	floor := d.st.Contiguous()
	for _, v := range d.peerVV {
		for rep, n := range floor {
			floor[rep] = min(n, v[rep])
		}
	}
	d.gc.collected += uint64(d.state.CollectTombstones(d.gc.dotFloor(floor)))
}

// TombstonesCollected returns how many sequence elements this document
// has garbage-collected since it was opened.
func (d *Doc) TombstonesCollected() uint64 { return d.gc.collected }

// wantsRepair reports whether an exchange should be asked for to repair
// held-back inserts (see above), and if so notes that one was.
func (d *Doc) wantsRepair(now time.Time) bool {
	if now.Sub(d.gc.repairAt) < repairEvery || !d.state.WantsCollected() {
		return false
	}
	d.gc.repairAt = now
	return true
}
