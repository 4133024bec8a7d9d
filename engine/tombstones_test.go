package engine

import (
	"testing"

	"github.com/concord-p2p/concord/crdt"
)

// The floor in dots is what the marks prove: for each replica the highest
// mark at or below the floor's seq, none when every mark is above it, and
// only the newest dotMarksPerReplica marks are kept.
func TestDotFloorFromMarks(t *testing.T) {
	var g tombstoneGC
	g.mark("A", 2, 5)
	g.mark("A", 1, 2)
	g.mark("A", 4, 9)
	g.mark("B", 3, 7)
	g.mark("A", 0, 100) // no seq: ignored
	g.mark("A", 4, 8)   // the same seq again: the lower count is kept
	got := g.dotFloor(crdt.VersionVector{"A": 3, "B": 2, "C": 5})
	if !got.Equal(crdt.VersionVector{"A": 5}) {
		t.Fatalf("floor %v", got)
	}
	if got := g.dotFloor(crdt.VersionVector{"A": 4}); got["A"] != 8 {
		t.Fatalf("floor %v", got)
	}
	for s := uint64(10); s < 10+2*dotMarksPerReplica; s++ {
		g.mark("A", s, s*10)
	}
	if n := len(g.marks["A"]); n != dotMarksPerReplica {
		t.Fatalf("%d marks kept", n)
	}
	if got := g.dotFloor(crdt.VersionVector{"A": 12}); got["A"] != 0 {
		t.Fatalf("a floor below every kept mark proved %v", got)
	}
	g.mark("A", 3, 6) // older than every mark kept: dropped
	if len(g.marks["A"]) != dotMarksPerReplica || g.marks["A"][0].seq == 3 {
		t.Fatal("an old mark displaced a newer one")
	}
}
