package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// genSplitOp draws an op over a wider key space than genOp (maps of a few
// dozen values, nested), sometimes with a long value.
func genSplitOp(t *rapid.T) Op {
	depth := rapid.IntRange(1, 3).Draw(t, "depth")
	path := make([]string, depth)
	for i := range path {
		path[i] = rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f", "g", "h"}).Draw(t, "key")
	}
	elem := js(strconv.Quote(rapid.SampledFrom([]string{"x", "y", "z", strings.Repeat("w", 300)}).Draw(t, "elem")))
	switch rapid.IntRange(0, 9).Draw(t, "kind") {
	case 0, 1, 2:
		return Set(path, js(strconv.Itoa(rapid.IntRange(-300, 300).Draw(t, "val"))))
	case 3:
		return Set(path, js(strconv.Quote(strings.Repeat("v", rapid.IntRange(0, 400).Draw(t, "len")))))
	case 4:
		return Delete(path[:rapid.IntRange(1, depth).Draw(t, "at")])
	case 5, 6:
		return Inc(path, int64(rapid.IntRange(-1000, 1000).Draw(t, "by")))
	case 7, 8:
		return Add(path, elem)
	default:
		return Remove(path, elem)
	}
}

// genSplitCase builds replicas that wrote and exchanged at random, and a
// delta to split: a group commit of several transactions of one of them
// (origin set), or a whole state (origin empty, encoded with Encode).
func genSplitCase(t *rapid.T) (reps []*State, d *State, origin ReplicaID) {
	n := 3
	reps = make([]*State, n)
	for i := range reps {
		reps[i] = New()
	}
	var ts HLC
	for steps := rapid.IntRange(0, 60).Draw(t, "steps"); steps > 0; steps-- {
		ts++
		r := rapid.IntRange(0, n-1).Draw(t, "replica")
		d, err := reps[r].Apply(ReplicaID(fmt.Sprintf("r%d", r)), ts, genSplitOp(t))
		if err != nil {
			continue
		}
		for j := range reps {
			if j != r && rapid.Bool().Draw(t, "deliver") {
				reps[j].Merge(d)
			}
		}
	}
	if rapid.IntRange(0, 3).Draw(t, "whole") == 0 {
		return reps, reps[0].Clone(), ""
	}
	w := rapid.IntRange(0, n-1).Draw(t, "writer")
	origin = ReplicaID(fmt.Sprintf("r%d", w))
	acc := New()
	for k := rapid.IntRange(1, 8).Draw(t, "txns"); k > 0; k-- {
		ts++
		var ops []Op
		for m := rapid.IntRange(1, 4).Draw(t, "ops"); m > 0; m-- {
			ops = append(ops, genSplitOp(t))
		}
		_ = reps[w].ApplyTo(acc, origin, ts, ops...)
	}
	return reps, acc, origin
}

func encodeAs(s *State, origin ReplicaID) []byte {
	if origin == "" {
		return Encode(s)
	}
	return EncodeDelta(s, origin)
}

func decodeAs(b []byte, origin ReplicaID, lim Limits) (*State, error) {
	if origin == "" {
		return Decode(b, lim)
	}
	return DecodeDelta(b, origin, lim)
}

// TestSplitDelta: the pieces of a split delta each fit the bound (or hold a
// single dot whose value alone does not), decode under the limits, have
// disjoint contexts, join back into the delta, and merged in any order into
// any replica give what merging the delta gives.
func TestSplitDelta(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		reps, d, origin := genSplitCase(t)
		lim := Limits{MaxBytes: rapid.IntRange(48, 2000).Draw(t, "bytes"), MaxElements: rapid.IntRange(16, 40).Draw(t, "elements")}
		pieces, sizes := split(d, origin, lim)
		want := encodeAs(d, origin)
		if len(pieces) == 1 {
			if pieces[0] != d {
				t.Fatal("one piece that is not the delta itself")
			}
			if len(want) > lim.MaxBytes && d.Dots() > 1 {
				t.Fatalf("a delta of %d bytes and %d dots not split at %d", len(want), d.Dots(), lim.MaxBytes)
			}
		}
		joined := New()
		var dots uint64
		for i, p := range pieces {
			b := encodeAs(p, origin)
			if len(pieces) > 1 && len(b) > sizes[i] {
				t.Fatalf("piece %d encodes to %d bytes, bound computed %d", i, len(b), sizes[i])
			}
			plim := lim
			if len(b) > lim.MaxBytes {
				if p.Dots() != 1 {
					t.Fatalf("piece %d of %d: %d bytes > %d with %d dots", i, len(pieces), len(b), lim.MaxBytes, p.Dots())
				}
				plim.MaxBytes = len(b)
			}
			got, err := decodeAs(b, origin, plim)
			if err != nil {
				t.Fatalf("piece %d does not decode under %+v: %v", i, plim, err)
			}
			if !bytes.Equal(encodeAs(got, origin), b) {
				t.Fatalf("piece %d does not round-trip", i)
			}
			if p.IsEmpty() && p != d {
				t.Fatalf("piece %d is empty", i)
			}
			dots += p.cc.dotCount()
			joined.Merge(p)
		}
		if !bytes.Equal(encodeAs(joined, origin), want) {
			t.Fatalf("join of %d pieces differs from the delta:\n%s\n%s", len(pieces), joined.JSON(), d.JSON())
		}
		if dots != d.cc.dotCount() {
			t.Fatalf("pieces hold %d dots together, the delta %d: contexts overlap", dots, d.cc.dotCount())
		}
		for k, r := range reps {
			ref := r.Clone()
			ref.Merge(d)
			got := r.Clone()
			for _, i := range rapid.Permutation(indexes(len(pieces))).Draw(t, fmt.Sprintf("order%d", k)) {
				got.Merge(pieces[i])
			}
			eqState(t, "pieces merged in any order", got, ref)
		}
	})
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

var splitReps = []ReplicaID{
	"12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.1",
	"12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB.2",
	"12D3KooWCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC.3",
}

// scatteredDelete builds a state with n values in map m written by three
// replicas in turn (1000 per transaction), each value followed by an
// overwrite of key o (so the values' dots are scattered), and returns it
// (with keep, a copy of it) with the delta of replica A deleting m. With
// direct, the values are inserted as Apply would leave them, without going
// through Apply (ten times faster).
func scatteredDelete(t testing.TB, n int, direct, keep bool) (before, delta *State) {
	s := New()
	const perTxn = 1000
	if direct {
		m := s.ensure([]string{"m", "0"}).parent
		for i := 0; i < n; i++ {
			r := splitReps[(i/perTxn)%len(splitReps)]
			c := 2*uint64(i/(perTxn*len(splitReps))*perTxn+i%perTxn) + 1
			e := m.kids.get(strconv.Itoa(i))
			if e == nil {
				e = &entry{parent: m, key: strconv.Itoa(i)}
				m.kids.put(e.key, e)
			}
			s.insertReg(e, regDot{dot: Dot{r, c}, hlc: HLC(i - i%perTxn + 1), val: js(`1`)})
			s.cc.AddRange(r, c, c+1) // c+1: the overwritten o
		}
		last := splitReps[((n-1)/perTxn)%len(splitReps)]
		o := s.ensure([]string{"o"})
		s.insertReg(o, regDot{dot: Dot{last, s.cc.Max(last)}, hlc: HLC(n - 1 - (n-1)%perTxn + 1), val: js(strconv.Itoa(n - 1))})
	} else {
		for i := 0; i < n; i += perTxn {
			r := splitReps[(i/perTxn)%len(splitReps)]
			var ops []Op
			for j := i; j < min(i+perTxn, n); j++ {
				ops = append(ops, Set([]string{"m", strconv.Itoa(j)}, js(`1`)), Set([]string{"o"}, js(strconv.Itoa(j))))
			}
			if _, err := s.Apply(r, HLC(i+1), ops...); err != nil {
				t.Fatal(err)
			}
		}
	}
	if keep {
		before = s.Clone()
	}
	d, err := s.Apply(splitReps[0], HLC(1e9), Delete([]string{"m"}))
	if err != nil {
		t.Fatal(err)
	}
	return before, d
}

// TestScatteredStateDirect: the direct construction of scatteredDelete
// gives the state Apply gives.
func TestScatteredStateDirect(t *testing.T) {
	a, da := scatteredDelete(t, 7500, false, true)
	b, db := scatteredDelete(t, 7500, true, true)
	if !bytes.Equal(Encode(a), Encode(b)) || !bytes.Equal(Encode(da), Encode(db)) {
		t.Fatal("direct construction differs from Apply")
	}
}

// TestSplitScatteredDelete: the delete of a map of 500k values whose dots
// are scattered among other writes (a delta of 4.4 MiB, over what the sync
// stream carries) splits into pieces that each fit a gossip payload, filled
// close to the bound, that join into the delete. (The join is what makes
// merging them equivalent to merging the delete; TestSplitDeleteReceiver
// merges them into a replica.)
func TestSplitScatteredDelete(t *testing.T) {
	n := 500_000
	if testing.Short() {
		n = 50_000
	}
	_, d := scatteredDelete(t, n, true, false)
	origin := splitReps[0]
	whole := EncodeDelta(d, origin)
	if n >= 500_000 && len(whole) <= 4<<20 {
		t.Fatalf("the delete is %d bytes: the test wants one over 4 MiB", len(whole))
	}
	lim := Limits{MaxBytes: 256 << 10, MaxElements: 1 << 22}
	pieces, sizes := split(d, origin, lim)
	t.Logf("%d values: delta of %d bytes, %d intervals → %d pieces", n, len(whole), d.cc.CloudSize(), len(pieces))
	if want := len(whole) / lim.MaxBytes; len(pieces) < want || len(pieces) > want+want/10+1 {
		t.Fatalf("%d pieces for %d bytes at %d a piece", len(pieces), len(whole), lim.MaxBytes)
	}
	joined := New()
	for i, p := range pieces {
		b := EncodeDelta(p, origin)
		if len(b) > sizes[i] || len(b) > lim.MaxBytes {
			t.Fatalf("piece %d: %d bytes (bound %d)", i, len(b), sizes[i])
		}
		if i < len(pieces)-1 && len(b) < lim.MaxBytes*95/100 {
			t.Fatalf("piece %d only %d bytes of %d", i, len(b), lim.MaxBytes)
		}
		if _, err := DecodeDelta(b, origin, lim); err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		joined.Merge(p)
	}
	if !bytes.Equal(EncodeDelta(joined, origin), whole) {
		t.Fatal("the pieces do not join into the delete")
	}
}

// TestSplitDeleteReceiver: the pieces of a scattered delete, decoded and
// merged one by one into a replica that holds the map, delete it; after
// each piece the replica holds the values the remaining pieces delete.
func TestSplitDeleteReceiver(t *testing.T) {
	const n = 30_000
	before, d := scatteredDelete(t, n, false, true)
	origin := splitReps[0]
	lim := Limits{MaxBytes: 16 << 10, MaxElements: 1 << 16}
	pieces := SplitDelta(d, origin, lim)
	if len(pieces) < 10 {
		t.Fatalf("%d pieces", len(pieces))
	}
	r := before.Clone()
	left := n
	for i, p := range pieces {
		got, err := DecodeDelta(EncodeDelta(p, origin), origin, lim)
		if err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		r.Merge(got)
		left -= int(got.cc.dotCount())
		k := 0
		if e := r.lookup([]string{"m"}); e != nil && e.sub != nil {
			k = e.sub.kids.len()
		}
		if k != left {
			t.Fatalf("after piece %d: %d values left, want %d", i, k, left)
		}
	}
	if got := string(r.JSON()); got != fmt.Sprintf(`{"o":%d}`, n-1) {
		t.Fatalf("after the pieces: %.80s", got)
	}
}

// TestSplitLargeValue: a value bigger than the bound travels alone in its
// piece; the values around it still fill pieces within the bound.
func TestSplitLargeValue(t *testing.T) {
	s := New()
	acc := New()
	big := js(strconv.Quote(strings.Repeat("x", 5000)))
	for i := range 200 {
		v := js(strconv.Itoa(i))
		if i == 100 {
			v = big
		}
		if err := s.ApplyTo(acc, "A", HLC(i+1), Set([]string{"k", strconv.Itoa(i)}, v)); err != nil {
			t.Fatal(err)
		}
	}
	lim := Limits{MaxBytes: 1000, MaxElements: 1 << 16}
	pieces := SplitDelta(acc, "A", lim)
	over := 0
	for i, p := range pieces {
		b := EncodeDelta(p, "A")
		if len(b) > lim.MaxBytes {
			over++
			if p.Dots() != 1 || !bytes.Contains(b, big) {
				t.Fatalf("piece %d: %d bytes, %d dots", i, len(b), p.Dots())
			}
		}
		if _, err := DecodeDelta(b, "A", Limits{MaxBytes: 8000, MaxElements: 1 << 16}); err != nil {
			t.Fatal(err)
		}
	}
	if over != 1 {
		t.Fatalf("%d pieces over the bound, want the one with the big value", over)
	}
}

// TestSplitElementBound: a delta of one map with more keys than a decoder
// allows elements is split so that every piece decodes.
func TestSplitElementBound(t *testing.T) {
	s, acc := New(), New()
	for i := range 1000 {
		if err := s.ApplyTo(acc, "A", 1, Add([]string{"set"}, js(strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	lim := Limits{MaxBytes: 1 << 20, MaxElements: 100}
	if _, err := DecodeDelta(EncodeDelta(acc, "A"), "A", lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("the whole delta decodes under %+v: %v", lim, err)
	}
	pieces := SplitDelta(acc, "A", lim)
	if len(pieces) < 10 {
		t.Fatalf("%d pieces", len(pieces))
	}
	r := New()
	for i, p := range pieces {
		got, err := DecodeDelta(EncodeDelta(p, "A"), "A", lim)
		if err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		r.Merge(got)
	}
	if !bytes.Equal(Encode(r), Encode(acc)) {
		t.Fatal("pieces do not join into the delta")
	}
}

// BenchmarkSplitScatteredDelete: splitting the delete of a map of 500k
// scattered values (4.4 MiB, 500k context intervals) into 256 KiB pieces.
func BenchmarkSplitScatteredDelete(b *testing.B) {
	_, d := scatteredDelete(b, 500_000, true, false)
	lim := Limits{MaxBytes: 256 << 10, MaxElements: 1 << 22}
	b.ResetTimer()
	for range b.N {
		if n := len(SplitDelta(d, splitReps[0], lim)); n < 2 {
			b.Fatalf("%d pieces", n)
		}
	}
}
