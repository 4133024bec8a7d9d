package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// Fuzzing the document decoders with inputs that hold texts and lists.

// seqDocDelta is a delta and the replica it came from.
type seqDocDelta struct {
	d      *State
	origin ReplicaID
}

// seqDocOrigins are the replicas of the seed scenario; the delta fuzz
// target decodes its input as a delta of one of them.
var seqDocOrigins = []ReplicaID{"A", "B", "C"}

// seqDocScenario builds documents with texts and lists edited by three
// replicas: concurrent inserts at one place, deletes of ranges and of the
// keys holding them concurrent with inserts, a text in a map deleted with
// the map, nested lists of values. It returns the replicas' states (not
// all converged) and every delta made, plus splits and joins of them.
func seqDocScenario(t testing.TB) (states []*State, deltas []seqDocDelta) {
	peers := make([]*docPeer, len(seqDocOrigins))
	for i, id := range seqDocOrigins {
		peers[i] = &docPeer{id: id, s: New()}
	}
	a, b, c := peers[0], peers[1], peers[2]
	do := func(p *docPeer, ops ...Op) *State {
		t.Helper()
		p.ts++
		d, err := p.s.Apply(p.id, p.ts, ops...)
		if err != nil {
			t.Fatalf("%s: %v", p.id, err)
		}
		deltas = append(deltas, seqDocDelta{d, p.id})
		return d
	}
	send := func(d *State, to ...*docPeer) {
		for _, p := range to {
			p.s.Merge(d)
		}
	}
	t1, t2, l := []string{"t"}, []string{"m", "t"}, []string{"l"}
	d := do(a, Splice(t1, 0, 0, "héllo wörld 😀"), SpliceList(l, 0, 0, js(`1`), js(`"x"`), js(`{"v":[1,2]}`)),
		Splice(t2, 0, 0, "inner"), Set([]string{"m", "k"}, js(`true`)))
	send(d, b, c)
	// Concurrent inserts at one place, a range delete, a list edit.
	da := do(a, Splice(t1, 5, 0, "AAA"))
	db := do(b, Splice(t1, 5, 0, "BBB"), SpliceList(l, 1, 1, js(`null`), js(`"é"`)))
	dc := do(c, Splice(t1, 2, 4, ""), SpliceDelete(l, 0, 1))
	send(da, b)
	send(db, a, c)
	// A delete of the key concurrent with an insert into its text.
	dk := do(c, Delete(t1))
	di := do(a, Splice(t1, 0, 0, "keep"), Splice(t2, 5, 0, "🙂"))
	send(dc, a)
	send(dk, a, b)
	send(di, b)
	// The map holding a text deleted concurrently with an edit of it.
	dm := do(b, Delete([]string{"m"}))
	de := do(c, Splice(t2, 1, 2, "ÑÑ"), SpliceList(l, 0, 0, js(`[true]`)))
	send(dm, a, c)
	send(de, a, b)
	do(a, Splice(t1, a.s.SeqLen(t1), 0, "∑"), SpliceDelete(l, 0, a.s.SeqLen(l)), SpliceList(l, 0, 0, js(`2`)))
	do(b, Splice([]string{"u"}, 0, 0, ""), Splice(t1, 0, b.s.SeqLen(t1), "new"))
	for _, p := range peers {
		states = append(states, p.s)
	}
	// Joins of consecutive deltas of one replica and splits of big ones.
	joined := New()
	joined.JoinDelta(da)
	joined.JoinDelta(di)
	deltas = append(deltas, seqDocDelta{joined, "A"})
	for _, x := range []seqDocDelta{{d, "A"}, {db, "B"}, {de, "C"}} {
		for _, p := range SplitDelta(x.d, x.origin, Limits{MaxBytes: 64, MaxElements: 4}) {
			deltas = append(deltas, seqDocDelta{p, x.origin})
		}
	}
	return states, deltas
}

// seqDocSeeds adds the scenario's deltas (delta) or states and a few
// deltas as states (!delta) to f's corpus, and returns the scenario.
func seqDocSeeds(f *testing.F, delta bool) ([]*State, []seqDocDelta) {
	states, deltas := seqDocScenario(f)
	if delta {
		for _, x := range deltas {
			f.Add(EncodeDelta(x.d, x.origin), uint8(slices.Index(seqDocOrigins, x.origin)))
			if b, ok := EncodeDeltaCompact(x.d, x.origin); ok {
				f.Add(b, uint8(slices.Index(seqDocOrigins, x.origin)))
			}
		}
		f.Add([]byte{0xa0}, uint8(0))
		return states, deltas
	}
	for _, s := range states {
		f.Add(Encode(s))
	}
	for _, x := range deltas[:4] {
		f.Add(Encode(x.d))
	}
	f.Add([]byte{0xa0})
	return states, deltas
}

func typedDecodeError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrVersion) {
		t.Fatalf("untyped error: %v", err)
	}
}

// seqElements returns the elements of the text or list at path, as
// strings, and the kind read (KindNone for anything else).
func seqElements(s *State, path []string) ([]string, Kind) {
	var out []string
	switch s.KindAt(path) {
	case KindText:
		v, _ := s.Text(path)
		for _, r := range v {
			out = append(out, string(r))
		}
		return out, KindText
	case KindList:
		vs, _ := s.List(path)
		for _, v := range vs {
			out = append(out, string(v))
		}
		return out, KindList
	}
	return nil, KindNone
}

// seqPathsIn returns the paths of s that show a text or a list.
func seqPathsIn(s *State) [][]string {
	var out [][]string
	var walk func(n *mapNode, prefix []string)
	walk = func(n *mapNode, prefix []string) {
		if n == nil {
			return
		}
		for k, e := range n.kids.all() {
			p := append(slices.Clone(prefix), k)
			if k := e.kind(); k == KindText || k == KindList {
				out = append(out, p)
			}
			walk(e.sub, p)
		}
	}
	walk(s.root, nil)
	return out
}

// mergeChecked merges src into dst with MergeEdits and checks the
// patches: for every key that shows the same kind of sequence before and
// after the merge (or none before), applying its patches, in order, to
// what it showed before (nothing, when nothing) gives what it shows after,
// and a key whose kind changed has no patches. It also checks that the
// result's encoding decodes to the same view.
func mergeChecked(t interface {
	Helper()
	Fatalf(string, ...any)
}, dst, src *State) {
	t.Helper()
	type view struct {
		elems []string
		kind  Kind
	}
	before := map[string]view{}
	for _, p := range seqPathsIn(dst) {
		e, k := seqElements(dst, p)
		before[strings.Join(p, "\x00")] = view{e, k}
	}
	pre := dst.Clone() // the kinds keys showed before, text or not
	_, ps := dst.MergeEdits(src)
	got := map[string][]string{}
	for _, p := range ps {
		k := strings.Join(p.Path, "\x00")
		v, ok := got[k]
		if !ok {
			v = before[k].elems
		}
		if p.Index < 0 || p.Delete < 0 || p.Index+p.Delete > len(v) {
			t.Fatalf("patch %+v out of range of %d elements", p, len(v))
		}
		var ins []string
		for _, r := range p.Text {
			ins = append(ins, string(r))
		}
		for _, x := range p.Values {
			ins = append(ins, string(x))
		}
		got[k] = slices.Insert(slices.Delete(slices.Clone(v), p.Index, p.Index+p.Delete), p.Index, ins...)
	}
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for _, p := range seqPathsIn(dst) {
		keys[strings.Join(p, "\x00")] = true
	}
	for k := range keys {
		path := strings.Split(k, "\x00")
		after, kind := seqElements(dst, path)
		b := before[k]
		b.kind = pre.KindAt(path)
		v, patched := got[k]
		switch {
		case b.kind != KindNone && b.kind != kind:
			if patched {
				t.Fatalf("%q switched from %s to %s and has patches", path, b.kind, kind)
			}
		case patched && !slices.Equal(after, v):
			t.Fatalf("%q: patches give %q, the merge %q", path, v, after)
		case !patched && !slices.Equal(after, b.elems):
			t.Fatalf("%q changed from %q to %q without patches", path, b.elems, after)
		}
	}
	_ = dst.JSON()
	// The merge's encoding decodes to the same view. (Not checked: the same
	// bytes. A forged delta that reuses its author's counters can leave a
	// held-back run overlapping elements held since; decoding holds back
	// only the part not held, so the bytes shrink — the fuzzer found one.)
	back, err := Decode(Encode(dst), DefaultLimits())
	if err != nil {
		t.Fatalf("re-decode of a merge: %v", err)
	}
	if !bytes.Equal(back.JSON(), dst.JSON()) {
		t.Fatalf("a merged state re-decodes to %s, not %s", back.JSON(), dst.JSON())
	}
}

// touchSeqs reads every text and list at the given paths of s and splices
// into the texts and lists it holds.
func touchSeqs(t *testing.T, s *State, paths [][]string) {
	t.Helper()
	for i, p := range paths {
		elems, k := seqElements(s, p)
		if n := s.SeqLen(p); n != len(elems) {
			t.Fatalf("%v: SeqLen %d, %d elements", p, n, len(elems))
		}
		if _, err := s.Cursor(p, len(elems)/2); k != KindNone && err != nil {
			t.Fatalf("%v: cursor: %v", p, err)
		}
		var op Op
		switch k {
		case KindText:
			op = Splice(p, len(elems)/2, min(1, len(elems)-len(elems)/2), "ø")
		case KindList:
			op = SpliceList(p, len(elems)/2, min(1, len(elems)-len(elems)/2), json.RawMessage(`"ø"`))
		default:
			continue
		}
		if _, err := s.Apply("fuzz", HLC(1000+i), op); err != nil {
			t.Fatalf("%v: splice into a decoded %s: %v", p, k, err)
		}
	}
}

var seqDocPaths = [][]string{{"t"}, {"m", "t"}, {"l"}, {"u"}, {"m"}}

// FuzzSeqDocDecode: any input decodes to a state whose encoding is stable
// and whose texts and lists read, merge and take splices, or fails with a
// typed error — never a panic.
func FuzzSeqDocDecode(f *testing.F) {
	bases, _ := seqDocSeeds(f, false)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b, Limits{MaxBytes: 1 << 16, MaxElements: 1 << 10})
		if err != nil {
			typedDecodeError(t, err)
			return
		}
		enc := Encode(s)
		s2, err := Decode(enc, DefaultLimits())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(Encode(s2), enc) {
			t.Fatal("encoding not stable")
		}
		if !bytes.Equal(s.JSON(), s2.JSON()) {
			t.Fatalf("JSON changed by re-decoding: %s, then %s", s.JSON(), s2.JSON())
		}
		paths := append(seqPathsIn(s), seqDocPaths...)
		for _, base := range bases {
			mergeChecked(t, base.Clone(), s)
			mergeChecked(t, s2.Clone(), base)
		}
		touchSeqs(t, s2, paths)
	})
}

// FuzzSeqDocDecodeDelta: any input decodes to a delta (of one of the
// seed scenario's replicas) whose encoding is stable and that merges into
// states holding texts and lists, or fails with a typed error — never a
// panic.
func FuzzSeqDocDecodeDelta(f *testing.F) {
	bases, deltas := seqDocSeeds(f, true)
	f.Fuzz(func(t *testing.T, b []byte, o uint8) {
		origin := seqDocOrigins[int(o)%len(seqDocOrigins)]
		d, err := DecodeDelta(b, origin, DeltaLimits())
		if err != nil {
			typedDecodeError(t, err)
			return
		}
		enc := EncodeDelta(d, origin)
		d2, err := DecodeDelta(enc, origin, DeltaLimits())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(EncodeDelta(d2, origin), enc) {
			t.Fatal("encoding not stable")
		}
		if !bytes.Equal(d.JSON(), d2.JSON()) {
			t.Fatalf("JSON changed by re-decoding: %s, then %s", d.JSON(), d2.JSON())
		}
		mergeChecked(t, New(), d)
		for _, base := range bases {
			s := base.Clone()
			mergeChecked(t, s, d)
			touchSeqs(t, s, append(seqPathsIn(s), seqDocPaths...))
		}
		// Joined with another delta of its origin, as a batch.
		for _, x := range deltas {
			if x.origin == origin {
				j := x.d.Clone()
				j.JoinDelta(d)
				mergeChecked(t, bases[0].Clone(), j)
				break
			}
		}
	})
}
