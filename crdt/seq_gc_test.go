package crdt

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

func TestSeqGC(t *testing.T) {
	a, b := NewText(), NewText()
	b.Merge(ins(t, a, "A", 0, "hello world"))
	b.Merge(del(t, a, "A", 4, 3)) // "hellorld": "orld" names the deleted "w"
	b.Merge(del(t, a, "A", 5, 3)) // "hello": nothing names "rld"
	floor := a.Context().VV().Clone()
	if n := a.GC(VersionVector{"A": 12}); n != 0 {
		t.Fatalf("dropped %d tombstones whose delete is above the floor", n)
	}
	for _, s := range []*Text{a, b} {
		if n := s.GC(floor); n != 3 || s.Tombstones() != 3 || s.String() != "hello" {
			t.Fatalf("dropped %d, %d tombstones left, %q", n, s.Tombstones(), s.String())
		}
		mustCheck(t, s)
	}
	if !bytes.Equal(EncodeSeq(a), EncodeSeq(b)) {
		t.Fatal("collected replicas encode differently")
	}
	if _, err := a.IndexOf(Dot{"A", 9}); err == nil {
		t.Fatal("a collected element still has an index")
	}
	// They edit on concurrently and converge.
	da := ins(t, a, "A", 5, "-")
	db := ins(t, b, "B", 5, "+")
	a.Merge(db)
	b.Merge(da)
	if a.String() != b.String() || a.String() != "hello-+" || a.Stats().Orphans+b.Stats().Orphans != 0 {
		t.Fatalf("%q %q %+v", a.String(), b.String(), a.Stats())
	}
	back, err := DecodeSeq[rune](EncodeSeq(a), DefaultLimits())
	if err != nil || back.String() != a.String() || !bytes.Equal(EncodeSeq(back), EncodeSeq(a)) {
		t.Fatalf("decode after GC: %v", err)
	}
}

// A tombstone that a kept element names as an origin stays; one named only
// by collectable tombstones goes with them.
func TestSeqGCKeepsAnchors(t *testing.T) {
	s := NewText()
	ins(t, s, "A", 0, "abc")
	del(t, s, "A", 1, 1)    // "ac", b a tombstone
	ins(t, s, "A", 1, "X")  // X is typed after b: its left origin
	ins(t, s, "A", 3, "de") // "aXcde"
	del(t, s, "A", 3, 2)    // d, e tombstones; e names d
	if n := s.GC(s.Context().VV()); n != 2 || s.Tombstones() != 1 || s.String() != "aXc" {
		t.Fatalf("dropped %d, %d tombstones left, %q", n, s.Tombstones(), s.String())
	}
	mustCheck(t, s)
	if err := checkModel(s); err != nil {
		t.Fatal(err)
	}
}

// A held-back insert naming a tombstone keeps it.
func TestSeqGCKeepsPendingAnchors(t *testing.T) {
	for _, late := range []bool{false, true} {
		a, b, c := NewText(), NewText(), NewText()
		d0 := ins(t, a, "A", 0, "abc")
		b.Merge(d0)
		c.Merge(d0)
		d1 := ins(t, b, "B", 3, "E") // "abcE"
		d2 := ins(t, b, "B", 3, "X") // "abcXE": names c and E
		c.Merge(del(t, a, "A", 2, 1))
		if late {
			c.Merge(d2) // waits for E
		}
		want := 1
		if late {
			want = 0
		}
		if n := c.GC(VersionVector{"A": 4}); n != want {
			t.Fatalf("held-back %v: dropped %d", late, n)
		}
		if !late {
			continue // d1 and d2 would be orphans: GC's contract says they cannot come
		}
		c.Merge(d1)
		if c.Pending() != 0 || c.String() != "abXE" || c.Stats().Orphans != 0 {
			t.Fatalf("%q, %d pending, %+v", c.String(), c.Pending(), c.Stats())
		}
		mustCheck(t, c)
	}
}

// An insert naming a collected element (the caller broke GC's contract)
// is counted and dropped, not left waiting.
func TestSeqGCOrphan(t *testing.T) {
	a, b := NewText(), NewText()
	b.Merge(ins(t, a, "A", 0, "abc"))
	b.Merge(del(t, a, "A", 2, 1)) // c
	a.GC(a.Context().VV())
	d := ins(t, b, "B", 2, "X") // b still holds c: X names it
	a.Merge(d)
	if a.Stats().Orphans != 1 || a.Pending() != 0 || !a.Context().Contains(Dot{"B", 1}) {
		t.Fatalf("%+v, %d pending", a.Stats(), a.Pending())
	}
}

// Replicas that sync, collect with the floor they share, and edit on
// concurrently still converge, with no orphans.
func TestSeqGCProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sim := newSeqSim(3)
		for i := rapid.IntRange(0, 40).Draw(t, "steps"); i > 0; i-- {
			sim.step(t)
		}
		sim.converge(t)
		floor := sim.reps[0].Context().VV().Clone()
		for i, r := range sim.reps {
			before := r.String()
			r.GC(floor)
			if r.String() != before || r.Tombstones() != sim.reps[0].Tombstones() {
				t.Fatalf("replica %d: GC changed the text (%q, was %q) or kept other tombstones (%d, replica 0 %d)", i, r.String(), before, r.Tombstones(), sim.reps[0].Tombstones())
			}
		}
		for i := rapid.IntRange(0, 40).Draw(t, "more"); i > 0; i-- {
			sim.step(t)
		}
		sim.converge(t)
		sim.checkConverged(t)
		for i, r := range sim.reps {
			if r.Stats().Orphans != 0 {
				t.Fatalf("replica %d: %d orphans", i, r.Stats().Orphans)
			}
		}
	})
}
