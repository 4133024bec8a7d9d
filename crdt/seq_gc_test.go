package crdt

import (
	"bytes"
	"slices"
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

// An insert naming a collected element is held back, and the sequence
// wants the element; a whole state from a replica holding the insert
// brings the element back, as a tombstone, and the insert integrates.
func TestSeqGCOrphan(t *testing.T) {
	a, b := NewText(), NewText()
	b.Merge(ins(t, a, "A", 0, "abc"))
	b.Merge(del(t, a, "A", 2, 1)) // c
	if n := a.GC(a.Context().VV()); n != 1 {
		t.Fatalf("collected %d", n)
	}
	d := ins(t, b, "B", 2, "X") // b still holds c: X names it
	a.Merge(d)
	if a.Stats().Orphans != 1 || a.Pending() != 1 || !a.WantsCollected() || a.String() != "ab" {
		t.Fatalf("%+v, %d pending, %q", a.Stats(), a.Pending(), a.String())
	}
	a.Merge(d) // again: still one
	if a.Stats().Orphans != 1 || a.Pending() != 1 {
		t.Fatalf("%+v, %d pending", a.Stats(), a.Pending())
	}
	ps := a.Merge(b.Delta())
	if a.String() != "abX" || a.Pending() != 0 || a.WantsCollected() || a.Stats().Revived != 1 || a.Tombstones() != 1 {
		t.Fatalf("after repair %q, %d pending, %+v", a.String(), a.Pending(), a.Stats())
	}
	if len(ps) != 1 || ps[0].Index != 2 || string(ps[0].Insert) != "X" {
		t.Fatalf("repair patches %+v", ps)
	}
	mustCheck(t, a)
	if !slices.Equal(elems(a), elems(b)) || !bytes.Equal(EncodeSeq(a), EncodeSeq(b)) {
		t.Fatal("repaired replica differs from the one it repaired from")
	}
	// Collected again once nothing names it... X does: it stays.
	if n := a.GC(a.Context().VV()); n != 0 {
		t.Fatalf("collected %d named elements", n)
	}
}

// A chain: the wanted element's own origin was collected too, and both
// come back from one whole state.
func TestSeqGCOrphanChain(t *testing.T) {
	a, b := NewText(), NewText()
	b.Merge(ins(t, a, "A", 0, "ab"))
	b.Merge(ins(t, a, "A", 1, "Q")) // "aQb": Q's origins a, b
	b.Merge(ins(t, a, "A", 2, "R")) // "aQRb": R's left origin Q
	b.Merge(del(t, a, "A", 1, 2))   // "ab"
	if n := a.GC(a.Context().VV()); n != 2 {
		t.Fatalf("collected %d", n)
	}
	d := ins(t, b, "B", 1, "X") // b: "a[QR]b", X right before b, after R
	a.Merge(d)
	if a.Pending() != 1 || !a.WantsCollected() {
		t.Fatalf("%d pending", a.Pending())
	}
	a.Merge(b.Delta())
	if a.String() != b.String() || a.Pending() != 0 || a.Stats().Revived != 2 {
		t.Fatalf("%q vs %q, %d pending, %+v", a.String(), b.String(), a.Pending(), a.Stats())
	}
	mustCheck(t, a)
	if !slices.Equal(elems(a), elems(b)) {
		t.Fatal("element order differs")
	}
}

// Replicas collect at any moment, with the floor all of them share or with
// one that only they have reached, while inserts are in flight; those that
// hold back inserts for collected elements merge a whole state from
// another. Every replica ends with the text of one that never collected
// and merged every delta, and none loses an insert.
func TestSeqGCRepairProperty(t *testing.T) {
	var orphans, revived, collected uint64
	rapid.Check(t, func(t *rapid.T) {
		sim := newSeqSim(rapid.IntRange(2, 4).Draw(t, "replicas"))
		honest := true
		for i := rapid.IntRange(0, 80).Draw(t, "steps"); i > 0; i-- {
			switch rapid.IntRange(0, 7).Draw(t, "kind") {
			case 0: // collect
				r := rapid.IntRange(0, len(sim.reps)-1).Draw(t, "collector")
				floor := sim.reps[r].Context().VV().Clone()
				if rapid.Bool().Draw(t, "shared floor") {
					for _, o := range sim.reps {
						for rep, n := range floor {
							floor[rep] = min(n, o.Context().VV()[rep])
						}
					}
				} else {
					honest = false
				}
				before := sim.reps[r].String()
				sim.reps[r].GC(floor)
				if sim.reps[r].String() != before {
					t.Fatalf("GC changed the text of %d", r)
				}
				if err := sim.reps[r].check(); err != nil {
					t.Fatal(err)
				}
			case 1: // repair
				for r, rep := range sim.reps {
					if rep.WantsCollected() {
						j := (r + 1 + rapid.IntRange(0, len(sim.reps)-2).Draw(t, "from")) % len(sim.reps)
						sim.merge(r, sim.reps[j].Delta())
					}
				}
			default:
				sim.step(t)
			}
		}
		sim.converge(t)
		for round := 0; round < len(sim.reps); round++ {
			for r, rep := range sim.reps {
				if rep.WantsCollected() {
					for j := range sim.reps {
						if j != r {
							sim.merge(r, sim.reps[j].Delta())
						}
					}
				}
			}
		}
		ref := NewText()
		for _, d := range sim.sent {
			ref.Merge(d)
		}
		for i, r := range sim.reps {
			if err := r.check(); err != nil {
				t.Fatal(err)
			}
			if r.String() != ref.String() {
				t.Fatalf("replica %d has %q, the reference %q (%+v)", i, r.String(), ref.String(), r.Stats())
			}
			if got := string(sim.shadow[i]); got != r.String() {
				t.Fatalf("replica %d: patches give %q, the text is %q", i, got, r.String())
			}
			if honest && r.Pending() != 0 {
				t.Fatalf("replica %d holds %d elements back after repair (%+v)", i, r.Pending(), r.Stats())
			}
			orphans += r.Stats().Orphans
			revived += r.Stats().Revived
			collected += r.Stats().Collected
		}
	})
	t.Logf("collected %d elements, held %d inserts for collected origins, revived %d", collected, orphans, revived)
	if orphans == 0 || revived == 0 {
		t.Fatal("the runs never repaired an insert: the test checks nothing")
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

// In a document: tombstones of texts and lists are collected below a
// floor, an insert naming one is held back (not lost), and a whole state
// — through its encoding, as a snapshot travels — repairs it.
func TestDocCollectTombstones(t *testing.T) {
	a := &docPeer{id: "A", s: New()}
	b := &docPeer{id: "B", s: New()}
	b.merge(t, "A", a.apply(t, Splice([]string{"doc", "note"}, 0, 0, "hello"), SpliceList([]string{"todo"}, 0, 0, js(`1`), js(`2`), js(`3`))))
	b.merge(t, "A", a.apply(t, Splice([]string{"doc", "note"}, 2, 3, ""), SpliceDelete([]string{"todo"}, 2, 1)))
	floor := a.s.Context().VV().Clone()
	if n := a.s.CollectTombstones(floor); n == 0 {
		t.Fatal("nothing collected")
	}
	if textOf(t, a.s, "doc", "note") != "he" || a.s.WantsCollected() {
		t.Fatalf("after collecting: %s", a.s.JSON())
	}
	// B still holds the tombstones and types after them (its insert names
	// the last one), and appends to the list.
	a.merge(t, "B", b.apply(t, Splice([]string{"doc", "note"}, 2, 0, "Y"), SpliceList([]string{"todo"}, 2, 0, js(`4`))))
	if !a.s.WantsCollected() || a.s.SeqLost() != 0 || textOf(t, a.s, "doc", "note") != "he" {
		t.Fatalf("held back: wants %v, lost %d", a.s.WantsCollected(), a.s.SeqLost())
	}
	snap, err := Decode(Encode(b.s), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	_, patches := a.s.MergeEdits(snap)
	if a.s.WantsCollected() || textOf(t, a.s, "doc", "note") != textOf(t, b.s, "doc", "note") || !bytes.Equal(a.s.JSON(), b.s.JSON()) {
		t.Fatalf("after repair: %s, want %s", a.s.JSON(), b.s.JSON())
	}
	if len(patches) == 0 {
		t.Fatal("the repair reported no patches")
	}
}

// A delete held back for an element that another replica has since
// collected ends when that replica's whole state arrives: the element is
// deleted there and will never arrive.
func TestSeqGCHeldDeleteOfCollected(t *testing.T) {
	a, c := NewText(), NewText()
	ins(t, a, "A", 0, "abc")
	d := del(t, a, "A", 2, 1) // c
	if n := a.GC(a.Context().VV()); n != 1 {
		t.Fatalf("collected %d", n)
	}
	c.Merge(d) // c has not seen "abc": the delete waits for its element
	if c.Pending() != 1 {
		t.Fatalf("%d pending", c.Pending())
	}
	c.Merge(a.Delta())
	if c.Pending() != 0 || c.String() != "ab" || !c.Context().Contains(d.dels[0].by) {
		t.Fatalf("%q, %d pending", c.String(), c.Pending())
	}
	mustCheck(t, c)
}

// An insert naming a delete's dot (no element has it: only a forged delta
// makes one) is held back, bounded like any held-back change; it never
// integrates, and the sequence keeps wanting it.
func TestSeqGCOriginIsADeleteDot(t *testing.T) {
	a, b := NewText(), NewText()
	b.Merge(ins(t, a, "A", 0, "ab"))
	dd := del(t, a, "A", 1, 1)
	b.Merge(dd)
	forged := &SeqDelta[rune]{runs: []seqRun[rune]{{id: Dot{"A", 9}, ol: dd.dels[0].by, n: 1, vals: []rune{'x'}}}}
	b.Merge(forged)
	if b.Pending() != 1 || !b.WantsCollected() || b.String() != "a" {
		t.Fatalf("%q, %d pending", b.String(), b.Pending())
	}
	b.Merge(a.Delta())
	if b.Pending() != 1 || b.String() != "a" {
		t.Fatalf("after a whole state: %q, %d pending", b.String(), b.Pending())
	}
}
