package engine

import (
	"encoding/json"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/concord-p2p/concord/crdt"
)

// elem is one element of a modelled sequence, named so that where each
// ended up can be checked.
type elem struct{ id int }

func spliceElems(s []elem, i, del int, ins []elem) []elem {
	out := slices.Clone(s[:i])
	out = append(out, ins...)
	return append(out, s[i+del:]...)
}

func TestRebaseSpliceCases(t *testing.T) {
	ins := func(i int, s string) crdt.SeqPatch { return crdt.SeqPatch{Index: i, Text: s} }
	del := func(i, n int) crdt.SeqPatch { return crdt.SeqPatch{Index: i, Delete: n} }
	for _, c := range []struct {
		name     string
		i, d     int
		ps       []crdt.SeqPatch
		wantIns  int
		wantDels []Span
	}{
		{"nothing since", 3, 1, nil, 3, []Span{{3, 1}}},
		{"insert before", 3, 0, []crdt.SeqPatch{ins(1, "ab")}, 5, nil},
		{"insert after", 3, 0, []crdt.SeqPatch{ins(4, "ab")}, 3, nil},
		{"insert at the index comes first", 3, 0, []crdt.SeqPatch{ins(3, "ab")}, 5, nil},
		{"delete before", 5, 0, []crdt.SeqPatch{del(1, 2)}, 3, nil},
		{"delete around the index", 5, 0, []crdt.SeqPatch{del(4, 3)}, 4, nil},
		{"insert inside the deleted range splits it", 2, 4, []crdt.SeqPatch{ins(4, "xyz")}, 2, []Span{{7, 2}, {2, 2}}},
		{"deleted already", 2, 2, []crdt.SeqPatch{del(1, 5)}, 1, nil},
		{"partly deleted already", 2, 4, []crdt.SeqPatch{del(4, 5)}, 2, []Span{{2, 2}}},
		{"list patch", 1, 0, []crdt.SeqPatch{{Index: 0, List: true, Values: make([]json.RawMessage, 2)}}, 3, nil},
	} {
		gotIns, gotDels := RebaseSplice(c.i, c.d, c.ps)
		if gotIns != c.wantIns || !slices.Equal(gotDels, c.wantDels) {
			t.Errorf("%s: got insert at %d, deletes %v; want %d, %v", c.name, gotIns, gotDels, c.wantIns, c.wantDels)
		}
	}
}

// A splice made on an old view and rebased over random patches applied
// since keeps its author's intent: exactly the elements it deleted are
// gone, every other element stays in its order, and its insert lands in
// one piece between its left and right neighbours of the old view.
func TestRebaseSpliceKeepsIntent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		next := 0
		fresh := func(n int) []elem {
			out := make([]elem, n)
			for k := range out {
				next++
				out[k] = elem{next}
			}
			return out
		}
		base := fresh(rapid.IntRange(0, 12).Draw(t, "len"))
		now := slices.Clone(base)
		var ps []crdt.SeqPatch
		for range rapid.IntRange(0, 6).Draw(t, "patches") {
			i := rapid.IntRange(0, len(now)).Draw(t, "pi")
			d := rapid.IntRange(0, len(now)-i).Draw(t, "pd")
			added := fresh(rapid.IntRange(0, 3).Draw(t, "pl"))
			now = spliceElems(now, i, d, added)
			ps = append(ps, crdt.SeqPatch{Index: i, Delete: d, Text: string(make([]rune, len(added)))})
		}
		i := rapid.IntRange(0, len(base)).Draw(t, "i")
		d := rapid.IntRange(0, len(base)-i).Draw(t, "d")
		mine := fresh(rapid.IntRange(0, 3).Draw(t, "l"))
		at, dels := RebaseSplice(i, d, ps)
		got := slices.Clone(now)
		for k, s := range dels {
			if s.At < at || k > 0 && s.At >= dels[k-1].At {
				t.Fatalf("deletes %v not from last to first after the insert at %d", dels, at)
			}
			got = spliceElems(got, s.At, s.N, nil)
		}
		got = spliceElems(got, at, 0, mine)

		deleted := map[elem]bool{}
		for _, e := range base[i : i+d] {
			deleted[e] = true
		}
		var want []elem // now, less what the splice deleted
		for _, e := range now {
			if !deleted[e] {
				want = append(want, e)
			}
		}
		var rest []elem
		start := -1
		for k, e := range got {
			if slices.Contains(mine, e) {
				if start < 0 {
					start = k
				}
				continue
			}
			rest = append(rest, e)
		}
		if !slices.Equal(rest, want) {
			t.Fatalf("others: got %v, want %v (base %v, now %v, splice %d %d)", rest, want, base, now, i, d)
		}
		if len(mine) == 0 {
			return
		}
		if !slices.Equal(got[start:start+len(mine)], mine) {
			t.Fatalf("insert not in one piece: %v", got)
		}
		pos := func(e elem) int { return slices.Index(got, e) }
		if i > 0 && pos(base[i-1]) >= 0 && pos(base[i-1]) > start {
			t.Fatalf("insert before its left neighbour: %v", got)
		}
		if i+d < len(base) && pos(base[i+d]) >= 0 && pos(base[i+d]) < start {
			t.Fatalf("insert after its right neighbour: %v", got)
		}
	})
}

func TestRebaseLogBounds(t *testing.T) {
	var l rebaseLog
	l.startNumbers(100)
	path := []string{"t"}
	p := crdt.SeqPatch{Path: path, Index: 0, Text: "x"}
	for range maxRebaseChanges + 10 {
		n := l.next()
		l.record(n, true, [][]string{path}, []crdt.SeqPatch{p})
	}
	if len(l.changes) != maxRebaseChanges {
		t.Fatalf("kept %d changes, want %d", len(l.changes), maxRebaseChanges)
	}
	if _, err := l.since(100, path); err == nil {
		t.Fatal("a base whose changes were dropped rebased")
	}
	if ps, err := l.since(l.last-3, path); err != nil || len(ps) != 3 {
		t.Fatalf("recent base: %d patches, %v", len(ps), err)
	}
	if _, err := l.since(l.last+1, path); err == nil {
		t.Fatal("a base from the future rebased")
	}
	// A change computed without patches (nobody listened) is a barrier.
	n := l.next()
	l.record(n, false, nil, nil)
	if _, err := l.since(n-1, path); err == nil {
		t.Fatal("rebased over a change without patches")
	}
	if ps, err := l.since(n, path); err != nil || len(ps) != 0 {
		t.Fatalf("base at the barrier: %v %v", ps, err)
	}
	// A change that replaced the text without patches (a set over it).
	n = l.next()
	l.record(n, true, [][]string{path}, nil)
	if _, err := l.since(n-1, []string{"t"}); err == nil {
		t.Fatal("rebased over a replaced text")
	}
	if _, err := l.since(n-1, []string{"u"}); err != nil {
		t.Fatalf("another path: %v", err)
	}
}
