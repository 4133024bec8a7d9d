package crdt

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func ins(t testing.TB, s *Text, r ReplicaID, at int, str string) *SeqDelta[rune] {
	t.Helper()
	d, err := s.Insert(r, at, []rune(str)...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func del(t testing.TB, s *Text, r ReplicaID, at, n int) *SeqDelta[rune] {
	t.Helper()
	d, err := s.Delete(r, at, n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Without concurrency a Seq is a plain slice.
func TestSeqSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := NewText()
	var want []rune
	for i := 0; i < 5000; i++ {
		if len(want) == 0 || rng.IntN(3) > 0 {
			at := rng.IntN(len(want) + 1)
			if rng.IntN(2) == 0 && len(want) > 0 { // type on where the last edit was
				at = len(want)
			}
			str := []rune("abcdefgh")[:1+rng.IntN(3)]
			if _, err := s.Insert("A", at, str...); err != nil {
				t.Fatal(err)
			}
			want = slices.Insert(want, at, str...)
		} else {
			at := rng.IntN(len(want))
			n := 1 + rng.IntN(min(5, len(want)-at))
			if _, err := s.Delete("A", at, n); err != nil {
				t.Fatal(err)
			}
			want = slices.Delete(want, at, at+n)
		}
		if i%97 == 0 {
			mustCheck(t, s)
		}
		if s.Len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", i, s.Len(), len(want))
		}
	}
	mustCheck(t, s)
	if s.String() != string(want) {
		t.Fatalf("got %q, want %q", s.String(), string(want))
	}
	if err := checkModel(s); err != nil {
		t.Fatal(err)
	}
}

func TestSeqErrors(t *testing.T) {
	s := NewText()
	ins(t, s, "A", 0, "abc")
	for _, c := range []struct {
		err  error
		call func() error
	}{
		{ErrSeqIndex, func() error { _, err := s.Insert("A", 4, 'x'); return err }},
		{ErrSeqIndex, func() error { _, err := s.Insert("A", -1, 'x'); return err }},
		{ErrInvalidOp, func() error { _, err := s.Insert("A", 0); return err }},
		{ErrInvalidOp, func() error { _, err := s.Insert("", 0, 'x'); return err }},
		{ErrInvalidUTF8, func() error { _, err := s.Insert("A", 0, 0xd800); return err }},
		{ErrSeqIndex, func() error { _, err := s.Delete("A", 2, 2); return err }},
		{ErrInvalidOp, func() error { _, err := s.Delete("A", 0, 0); return err }},
		{ErrSeqIndex, func() error { _, err := s.CursorAt(4); return err }},
		{ErrSeqCursor, func() error { _, err := s.IndexOf(Dot{"A", 99}); return err }},
		{ErrSeqCursor, func() error { _, err := s.IndexOf(Dot{"Z", 1}); return err }},
	} {
		if err := c.call(); !errors.Is(err, c.err) {
			t.Errorf("got %v, want %v", err, c.err)
		}
	}
	if s.String() != "abc" {
		t.Fatalf("a refused op changed the text: %q", s.String())
	}
	l := NewList()
	if _, err := l.Insert("A", 0, []byte(`{"a":`)); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("invalid JSON: %v", err)
	}
	if _, err := l.Insert("A", 0, []byte(`{ "a" : 1 }`), []byte(`"x"`)); err != nil {
		t.Fatal(err)
	}
	if got := l.String(); got != `[{"a":1},"x"]` {
		t.Fatalf("list %s", got)
	}
}

// A run typed on is one item, in the state and in the delta.
func TestSeqRunLength(t *testing.T) {
	s := NewText()
	for i, r := range "hello world" {
		ins(t, s, "A", i, string(r))
	}
	if s.Items() != 1 {
		t.Fatalf("%d items for one typed run", s.Items())
	}
	d := s.Delta()
	if len(d.runs) != 1 || d.runs[0].n != 11 {
		t.Fatalf("delta runs %+v", d.runs)
	}
	// Backspacing over the end leaves one tombstone item.
	for i := 0; i < 5; i++ {
		del(t, s, "A", s.Len()-1, 1)
	}
	if s.String() != "hello " || s.Items() != 2 {
		t.Fatalf("%q in %d items", s.String(), s.Items())
	}
	mustCheck(t, s)
	// A delete inside a run splits it.
	del(t, s, "A", 1, 2)
	if s.String() != "hlo " || s.Items() != 4 {
		t.Fatalf("%q in %d items", s.String(), s.Items())
	}
	mustCheck(t, s)
}

// Held-back changes are bounded: past MaxPending what a merge would hold
// is refused and counted, its dots stay unrecorded, and anti-entropy
// brings it back; what was held before stays.
func TestSeqPendingBound(t *testing.T) {
	a := NewText()
	var ds []*SeqDelta[rune]
	for i := 0; i < 10; i++ {
		ds = append(ds, ins(t, a, "A", 0, "ab")) // each names the one before
	}
	b := NewSeq[rune](SeqConfig{MaxPending: 5})
	for i := len(ds) - 1; i > 0; i-- { // newest first: all wait for ds[0]
		b.Merge(ds[i])
	}
	if b.Pending() > 5 || b.Stats().Refused == 0 {
		t.Fatalf("%d pending, %+v", b.Pending(), b.Stats())
	}
	// What was held first stays held; what came past the bound was
	// refused, its dots unrecorded.
	if b.Context().Contains(Dot{"A", 3}) { // ds[1], refused
		t.Fatal("a refused change's dot was recorded")
	}
	if r := b.takeRefused(); r == nil || !r.Contains(Dot{"A", 3}) {
		t.Fatalf("refused dots %v do not name ds[1]", r)
	}
	b.Merge(ds[0])
	if b.String() == a.String() {
		t.Fatal("refused changes came back by themselves")
	}
	for _, r := range elems(b) {
		if !b.Context().Contains(r.id) {
			t.Fatalf("element %v outside the context", r.id)
		}
	}
	for _, d := range ds[1:] { // anti-entropy sends the refused ones again
		b.Merge(d)
	}
	if b.String() != a.String() || b.Pending() != 0 {
		t.Fatalf("%q vs %q, %d pending", b.String(), a.String(), b.Pending())
	}
	mustCheck(t, b)
}

// A delete that arrives before the insert it deletes waits for it.
func TestSeqDeleteBeforeInsert(t *testing.T) {
	a, b := NewText(), NewText()
	d1 := ins(t, a, "A", 0, "abc")
	d2 := del(t, a, "A", 1, 1)
	if ps := b.Merge(d2); len(ps) != 0 || b.Pending() != 1 || b.Context().Contains(Dot{"A", 4}) {
		t.Fatalf("%v, %d pending", ps, b.Pending())
	}
	ps := b.Merge(d1)
	if b.String() != "ac" || b.Pending() != 0 || !b.Context().Contains(Dot{"A", 4}) {
		t.Fatalf("%q, %d pending", b.String(), b.Pending())
	}
	if got := string(applyPatches(nil, ps)); got != "ac" {
		t.Fatalf("patches give %q", got)
	}
}
