package crdt

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// typeWord types word into s at index at, one keystroke (and one delta) per
// code point: forwards, or backwards (each letter before the previous one).
func typeWord(t testing.TB, s *Text, r ReplicaID, at int, word string, backwards bool) []*SeqDelta[rune] {
	t.Helper()
	var ds []*SeqDelta[rune]
	rs := []rune(word)
	for i := range rs {
		if backwards {
			ds = append(ds, ins(t, s, r, at, string(rs[len(rs)-1-i])))
		} else {
			ds = append(ds, ins(t, s, r, at+i, string(rs[i])))
		}
	}
	return ds
}

// deliverStreams merges the deltas into s in a random order that keeps each
// author's deltas in order (any order works; this one is what a stream
// does).
func deliverStreams(s *Text, rng *rand.Rand, streams ...[]*SeqDelta[rune]) {
	for {
		var live []int
		for i, st := range streams {
			if len(st) > 0 {
				live = append(live, i)
			}
		}
		if len(live) == 0 {
			return
		}
		i := live[rng.IntN(len(live))]
		s.Merge(streams[i][0])
		streams[i] = streams[i][1:]
	}
}

// The paper's central property: words typed concurrently at one place by
// different users come out one after the other, never letter by letter,
// whether typed forwards or backwards, whatever the order of delivery.
func TestSeqNoInterleaving(t *testing.T) {
	words := []string{"alpha", "BRAVO", "charlie"}
	for _, dirs := range [][]bool{{false, false}, {true, true}, {false, true}, {true, false}, {false, false, false}, {true, true, true}, {false, true, false}} {
		for seed := uint64(0); seed < 20; seed++ {
			base := NewText()
			bd := ins(t, base, "base", 0, "[]")
			reps := make([]*Text, len(dirs))
			streams := make([][]*SeqDelta[rune], len(dirs))
			for i := range reps {
				reps[i] = NewText()
				reps[i].Merge(bd)
				streams[i] = typeWord(t, reps[i], ReplicaID(rune('p'-i)), 1, words[i], dirs[i])
			}
			var got []string
			for i := range reps {
				rng := rand.New(rand.NewPCG(seed, uint64(i)))
				others := make([][]*SeqDelta[rune], 0, len(reps))
				for j := range reps {
					if j != i {
						others = append(others, slices.Clone(streams[j]))
					}
				}
				deliverStreams(reps[i], rng, others...)
				got = append(got, reps[i].String())
			}
			for i := range got {
				if got[i] != got[0] {
					t.Fatalf("%v seed %d: replicas differ: %q vs %q", dirs, seed, got[i], got[0])
				}
			}
			inner := strings.TrimSuffix(strings.TrimPrefix(got[0], "["), "]")
			rest := inner
			for range words[:len(dirs)] {
				found := false
				for _, w := range words[:len(dirs)] {
					if strings.HasPrefix(rest, w) {
						rest, found = rest[len(w):], true
						break
					}
				}
				if !found {
					t.Fatalf("%v seed %d: words interleave: %q", dirs, seed, got[0])
				}
			}
		}
	}
}

// Two concurrent inserts at one position end in the same order whichever
// arrives first; the lower replica goes first.
func TestSeqConcurrentSamePosition(t *testing.T) {
	base := NewText()
	bd := ins(t, base, "A", 0, "ac")
	a, b := NewText(), NewText()
	a.Merge(bd)
	b.Merge(bd)
	da := ins(t, a, "A", 1, "x")
	db := ins(t, b, "B", 1, "y")
	a.Merge(db)
	b.Merge(da)
	if a.String() != "axyc" || b.String() != "axyc" {
		t.Fatalf("A %q, B %q", a.String(), b.String())
	}
	// Same at the start and at the end of the text.
	for _, end := range []bool{false, true} {
		at := 0
		if end {
			at = a.Len()
		}
		da := ins(t, a, "A", at, "1")
		db := ins(t, b, "B", at, "2")
		a.Merge(db)
		b.Merge(da)
		if a.String() != b.String() {
			t.Fatalf("at %d: A %q, B %q", at, a.String(), b.String())
		}
	}
	if a.String() != "12axyc12" {
		t.Fatalf("%q", a.String())
	}
}

// An insert next to a concurrently deleted element lands where the user
// put it: the tombstone keeps its place.
func TestSeqInsertNextToConcurrentDelete(t *testing.T) {
	a, b := NewText(), NewText()
	bd := ins(t, a, "A", 0, "abcd")
	b.Merge(bd)
	da := del(t, a, "A", 1, 2)   // "ad"
	db := ins(t, b, "B", 2, "X") // "abXcd"
	a.Merge(db)
	b.Merge(da)
	if a.String() != "aXd" || b.String() != "aXd" {
		t.Fatalf("A %q, B %q", a.String(), b.String())
	}
}

// A cursor stays on its element while others edit around it, and a
// deleted element's cursor maps to where it was.
func TestSeqCursorStability(t *testing.T) {
	a, b := NewText(), NewText()
	b.Merge(ins(t, a, "A", 0, "hello world"))
	cw, _ := a.CursorAt(6) // 'w'
	ce, _ := a.CursorAt(1) // 'e'
	end, _ := a.CursorAt(a.Len())
	d1 := ins(t, b, "B", 0, ">> ")
	d2 := del(t, b, "B", 3, 2) // ">> llo world": deletes "he"
	d3 := ins(t, a, "A", 6, "big ")
	a.Merge(d1)
	a.Merge(d2)
	b.Merge(d3)
	for _, s := range []*Text{a, b} {
		if s.String() != ">> llo big world" {
			t.Fatalf("%q", s.String())
		}
		i, err := s.IndexOf(cw)
		if err != nil || []rune(s.String())[i] != 'w' {
			t.Fatalf("cursor on w at %d (%v) in %q", i, err, s.String())
		}
		if i, err := s.IndexOf(ce); err != nil || i != 3 {
			t.Fatalf("cursor on deleted e at %d (%v), want 3", i, err)
		}
		if i, _ := s.IndexOf(end); i != s.Len() {
			t.Fatalf("end cursor at %d", i)
		}
	}
}

// Cursors taken anywhere before concurrent edits point, after convergence,
// at their element (or where it was) on every replica.
func TestSeqCursorsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sim := newSeqSim(3)
		for i := 0; i < 15; i++ {
			sim.step(t)
		}
		sim.converge(t)
		var cursors []Dot
		for _, e := range elems(sim.reps[0]) {
			cursors = append(cursors, e.id)
		}
		for i := 0; i < 30; i++ {
			sim.step(t)
		}
		sim.converge(t)
		for _, r := range sim.reps {
			es := elems(r)
			for _, c := range cursors {
				got, err := r.IndexOf(c)
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				for _, e := range es {
					if e.id == c {
						break
					}
					if !e.del {
						want++
					}
				}
				if got != want {
					t.Fatalf("cursor %v at %d, want %d", c, got, want)
				}
				if k, _ := r.CursorAt(got); got < r.Len() && !slices.ContainsFunc(es, func(e elem) bool { return e.id == c && e.del }) && k != c {
					t.Fatalf("CursorAt(IndexOf(%v)) = %v", c, k)
				}
			}
		}
	})
}
