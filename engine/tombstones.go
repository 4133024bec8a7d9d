package engine

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
)

// Tombstone collection. A compaction also garbage-collects the tombstones
// of the document's texts and lists that every known peer holds — their
// inserts and deletes below the compaction floor (crdt.State
// CollectTombstones). The floor counts deltas (sequence numbers); the
// sequences count dots, so the document remembers, for the last deltas of
// each replica, the highest own dot each delta's context carried, and the
// floor in dots is what those marks show. It is an estimate: the first
// pieces of a split delta carry the dots its later pieces hold, so a
// floor can run ahead of what a peer holds; that makes an insert naming a
// collected element more likely, which the repair below handles.
//
// An insert that names a collected element (typed next to it elsewhere
// before the floor passed it, or by a peer the floor did not count) is
// held back by the state, not lost. The document then asks the peers it
// hears from for a whole state (Hello.WantState), waiting longer after
// each request (wantsRepair), until one that holds the element brings it
// back.

// dotMarksPerReplica bounds the marks kept per replica.
const dotMarksPerReplica = 16

// repairEvery and maxRepairWait space the exchanges asked for to repair
// held-back inserts.
const (
	repairEvery   = 5 * time.Second
	maxRepairWait = 10 * time.Minute
)

type tombstoneGC struct {
	marks      map[crdt.ReplicaID][]dotMark
	collected  uint64                // elements collected so far
	repairAt   time.Time             // the last exchange asked for a repair
	repairWait time.Duration         // until the next one may be
	served     map[peer.ID]time.Time // whole states sent on request, by peer
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

// wantsRepair reports whether an exchange with target should be asked for
// to repair held-back inserts (see above), and if so notes that one was.
// The waits between requests double, from repairEvery up to
// maxRepairWait, while the inserts stay held back: a peer holding none of
// what they name, or an insert naming what no peer holds (a delete's dot,
// forged), costs a snapshot at that pace, not a stream of them.
// It runs on every summary, so the state is looked at (a walk of its
// sequences) at most once every repairEvery.
func (d *Doc) wantsRepair(now time.Time, target peer.ID) bool {
	wait := max(d.gc.repairWait, repairEvery)
	if now.Sub(d.gc.repairAt) < wait || !d.AcceptsSnapshot(target) {
		return false
	}
	d.gc.repairAt = now
	if !d.state.WantsCollected() {
		d.gc.repairWait = 0
		return false
	}
	d.gc.repairWait = min(2*wait, maxRepairWait)
	return true
}

// servesRepair reports whether p, which asked for a whole state at now
// (its Hello's arrival), may have one: at most one every repairEvery per
// peer.
func (d *Doc) servesRepair(p peer.ID, now time.Time) bool {
	if at, ok := d.gc.served[p]; ok && now.Sub(at) < repairEvery {
		return false
	}
	if d.gc.served == nil || len(d.gc.served) >= maxPeersPerDoc {
		d.gc.served = map[peer.ID]time.Time{} // forgetting only lets a peer ask once more
	}
	d.gc.served[p] = now
	return true
}
