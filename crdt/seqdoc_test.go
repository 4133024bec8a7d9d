package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// docPeer is one replica of a document in these tests.
type docPeer struct {
	id ReplicaID
	s  *State
	ts HLC
}

func (p *docPeer) apply(t testing.TB, ops ...Op) []byte {
	t.Helper()
	p.ts++
	d, err := p.s.Apply(p.id, p.ts, ops...)
	if err != nil {
		t.Fatalf("%s: %v", p.id, err)
	}
	return EncodeDelta(d, p.id)
}

func (p *docPeer) merge(t testing.TB, from ReplicaID, wire []byte) {
	t.Helper()
	d, err := DecodeDelta(wire, from, DeltaLimits())
	if err != nil {
		t.Fatalf("%s: decode delta of %s: %v", p.id, from, err)
	}
	p.s.Merge(d)
}

func textOf(t testing.TB, s *State, path ...string) string {
	t.Helper()
	v, ok := s.Text(path)
	if !ok {
		t.Fatalf("no text at %v in %s", path, s.JSON())
	}
	return v
}

// A text and a list in a document: splices, the JSON view, the encodings.
func TestDocSequences(t *testing.T) {
	a := &docPeer{id: "a", s: New()}
	a.apply(t, Splice([]string{"note"}, 0, 0, "hello"), SpliceList([]string{"todo"}, 0, 0, js(`"milk"`), js(`{"x":1}`)))
	a.apply(t, Splice([]string{"note"}, 5, 0, " world"), Splice([]string{"note"}, 0, 1, "H"))
	a.apply(t, SpliceList([]string{"todo"}, 1, 0, js(`"eggs"`)), SpliceDelete([]string{"todo"}, 0, 1))
	if got, want := string(a.s.JSON()), `{"note":"Hello world","todo":["eggs",{"x":1}]}`; got != want {
		t.Fatalf("view %s, want %s", got, want)
	}
	if k := a.s.KindAt([]string{"note"}); k != KindText {
		t.Fatalf("kind %s", k)
	}
	back, err := Decode(Encode(a.s), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.JSON(), a.s.JSON()) || !bytes.Equal(Encode(back), Encode(a.s)) {
		t.Fatalf("round trip: %s", back.JSON())
	}
	// An empty text is a text.
	a.apply(t, Splice([]string{"empty"}, 0, 0, ""))
	if v, _ := a.s.Get([]string{"empty"}); string(v) != `""` {
		t.Fatalf("empty text shows %s", v)
	}
	for _, c := range []struct {
		op   Op
		want error
	}{
		{Splice([]string{"note"}, 12, 0, "x"), ErrSeqIndex},
		{Splice([]string{"note"}, 10, 2, ""), ErrSeqIndex},
		{Splice([]string{"note"}, -1, 0, "x"), ErrInvalidOp},
		{SpliceList([]string{"note"}, 0, 0, js(`1`)), ErrTypeConflict},
		{Inc([]string{"note"}, 1), ErrTypeConflict},
		{Set([]string{"note", "x"}, js(`1`)), ErrTypeConflict},
		{Splice([]string{"note"}, 0, 0, "\xff"), ErrInvalidUTF8},
		{SpliceList([]string{"todo"}, 0, 0, js(`{`)), ErrInvalidValue},
		{SpliceDelete([]string{"nothing"}, 0, 1), ErrSeqIndex},
	} {
		if _, err := a.s.Apply("a", a.ts+1, c.op); !errors.Is(err, c.want) {
			t.Errorf("%+v: err %v, want %v", c.op, err, c.want)
		}
	}
	// Splices of one transaction see each other; a failing one undoes all.
	if _, err := a.s.Apply("a", a.ts+1, Splice([]string{"note"}, 11, 0, "!"), Splice([]string{"note"}, 12, 0, "?")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.s.Apply("a", a.ts+2, Splice([]string{"note"}, 0, 0, "x"), Splice([]string{"note"}, 99, 0, "y")); !errors.Is(err, ErrSeqIndex) {
		t.Fatalf("err %v", err)
	}
	if got := textOf(t, a.s, "note"); got != "Hello world!?" {
		t.Fatalf("text %q", got)
	}
}

// Two replicas type into one text at once and exchange encoded deltas;
// both end with the same text, neither's word interleaved with the other's,
// and the patches of each merge turn the previous text into the new one.
func TestDocTextConcurrent(t *testing.T) {
	a := &docPeer{id: "a", s: New()}
	b := &docPeer{id: "b", s: New()}
	b.merge(t, "a", a.apply(t, Splice([]string{"t"}, 0, 0, "ab")))
	var fromA, fromB [][]byte
	for i, r := range "xyz" {
		fromA = append(fromA, a.apply(t, Splice([]string{"t"}, 1+i, 0, string(r))))
	}
	for i, r := range "123" {
		fromB = append(fromB, b.apply(t, Splice([]string{"t"}, 1+i, 0, string(r))))
	}
	check := func(p *docPeer, from ReplicaID, ws [][]byte) {
		for _, w := range ws {
			before := []rune(textOf(t, p.s, "t"))
			d, err := DecodeDelta(w, from, DeltaLimits())
			if err != nil {
				t.Fatal(err)
			}
			_, ps := p.s.MergeEdits(d)
			for _, pt := range ps {
				before = append(before[:pt.Index], append([]rune(pt.Text), before[pt.Index+pt.Delete:]...)...)
			}
			if got := textOf(t, p.s, "t"); string(before) != got {
				t.Fatalf("%s: patches %+v give %q, text is %q", p.id, ps, string(before), got)
			}
		}
	}
	check(b, "a", fromA)
	check(a, "b", fromB)
	ta, tb := textOf(t, a.s, "t"), textOf(t, b.s, "t")
	if ta != tb || (ta != "axyz123b" && ta != "a123xyzb") {
		t.Fatalf("texts %q and %q", ta, tb)
	}
}

// A key's delete concurrent with an insert into its text: the insert
// survives, the rest is gone (add-wins), on both replicas.
func TestDocTextDeleteConcurrentInsert(t *testing.T) {
	a := &docPeer{id: "a", s: New()}
	b := &docPeer{id: "b", s: New()}
	b.merge(t, "a", a.apply(t, Splice([]string{"m", "t"}, 0, 0, "hello")))
	del := a.apply(t, Delete([]string{"m"}))
	ins := b.apply(t, Splice([]string{"m", "t"}, 5, 0, "!"))
	a.merge(t, "b", ins)
	b.merge(t, "a", del)
	for _, p := range []*docPeer{a, b} {
		if got := string(p.s.JSON()); got != `{"m":{"t":"!"}}` {
			t.Fatalf("%s: %s", p.id, got)
		}
	}
	if !bytes.Equal(Encode(a.s), Encode(b.s)) {
		t.Fatalf("encodings differ")
	}
}

// A delta too big for one piece splits; the sequence change travels in a
// piece of its own, and the pieces merged in any order give the delta.
func TestDocSplitSequences(t *testing.T) {
	a := &docPeer{id: "a", s: New()}
	d0, _ := a.s.Apply("a", 1, Splice([]string{"t"}, 0, 0, "base"))
	var ops []Op
	for i := range 300 {
		ops = append(ops, Set([]string{"k" + strconv.Itoa(i)}, js(`"`+string(bytes.Repeat([]byte("v"), 50))+`"`)))
	}
	ops = append(ops, Splice([]string{"t"}, 4, 0, string(bytes.Repeat([]byte("x"), 3000))))
	d, err := a.s.Apply("a", 2, ops...)
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{MaxBytes: 4096, MaxElements: 1 << 10}
	pieces := SplitDelta(d, "a", lim)
	if len(pieces) < 3 {
		t.Fatalf("%d pieces", len(pieces))
	}
	for _, order := range [][]int{nil, {1}} {
		b := New()
		b.Merge(d0)
		ps := append([]*State(nil), pieces...)
		if order != nil {
			for i, j := 0, len(ps)-1; i < j; i, j = i+1, j-1 {
				ps[i], ps[j] = ps[j], ps[i]
			}
		}
		for _, p := range ps {
			q, err := DecodeDelta(EncodeDelta(p, "a"), "a", DeltaLimits())
			if err != nil {
				t.Fatal(err)
			}
			b.Merge(q)
		}
		if !bytes.Equal(b.JSON(), a.s.JSON()) {
			t.Fatalf("pieces merged give %.200s, want %.200s", b.JSON(), a.s.JSON())
		}
	}
}

// Deltas of a batch join into one (JoinDelta) that holds every sequence
// change even when what they refer to is in none of them.
func TestDocJoinDeltas(t *testing.T) {
	a := New()
	joined := New()
	var first *State
	for i := range 20 {
		d, err := a.Apply("a", HLC(i+1), Splice([]string{"t"}, i, 0, "x"), Set([]string{"n"}, js(strconv.Itoa(i))))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = d
			continue
		}
		joined.JoinDelta(d)
	}
	w, err := DecodeDelta(EncodeDelta(joined, "a"), "a", DeltaLimits())
	if err != nil {
		t.Fatal(err)
	}
	b := New()
	b.Merge(w)
	if got, _ := b.Text([]string{"t"}); got != "" {
		t.Fatalf("integrated without the first element: %q", got)
	}
	b.Merge(first)
	if !bytes.Equal(b.JSON(), a.JSON()) {
		t.Fatalf("got %s, want %s", b.JSON(), a.JSON())
	}
}

// Random concurrent splices of texts and lists, mixed with map ops, on 3-5
// replicas exchanging encoded deltas with loss (resent later),
// duplication and reordering, converge to one view and one encoding.
func TestDocSequencesConverge(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(3, 5).Draw(t, "replicas")
		peers := make([]*docPeer, n)
		for i := range peers {
			peers[i] = &docPeer{id: ReplicaID(fmt.Sprint("r", i)), s: New()}
		}
		type msg struct {
			from ReplicaID
			b    []byte
		}
		var log []msg      // every delta ever made
		var inflight []msg // not yet delivered everywhere
		for range rapid.IntRange(1, 40).Draw(t, "steps") {
			p := peers[rapid.IntRange(0, n-1).Draw(t, "who")]
			switch rapid.IntRange(0, 5).Draw(t, "what") {
			case 0, 1, 2:
				path := []string{rapid.SampledFrom([]string{"t", "u"}).Draw(t, "key")}
				if p.s.KindAt(path) != KindText && p.s.KindAt(path) != KindNone {
					continue
				}
				l := p.s.SeqLen(path)
				at := rapid.IntRange(0, l).Draw(t, "at")
				del := rapid.IntRange(0, min(2, l-at)).Draw(t, "del")
				ins := rapid.SampledFrom([]string{"", "a", "bc", "δεζ"}).Draw(t, "ins")
				d, err := p.s.Apply(p.id, p.ts+1, Splice(path, at, del, ins))
				if err != nil {
					t.Fatal(err)
				}
				p.ts++
				log = append(log, msg{p.id, EncodeDelta(d, p.id)})
			case 3:
				path := []string{"l"}
				l := p.s.SeqLen(path)
				at := rapid.IntRange(0, l).Draw(t, "at")
				d, err := p.s.Apply(p.id, p.ts+1, SpliceList(path, at, min(1, l-at), js(strconv.Itoa(at))))
				if err != nil {
					t.Fatal(err)
				}
				p.ts++
				log = append(log, msg{p.id, EncodeDelta(d, p.id)})
			case 4:
				path := []string{rapid.SampledFrom([]string{"t", "u", "l", "k"}).Draw(t, "key")}
				op := Delete(path)
				if path[0] == "k" {
					op = Set(path, js(`1`))
				}
				d, err := p.s.Apply(p.id, p.ts+1, op)
				if err != nil {
					t.Fatal(err)
				}
				p.ts++
				log = append(log, msg{p.id, EncodeDelta(d, p.id)})
			case 5:
				if len(inflight) == 0 {
					continue
				}
				i := rapid.IntRange(0, len(inflight)-1).Draw(t, "msg")
				m := inflight[i]
				to := peers[rapid.IntRange(0, n-1).Draw(t, "to")]
				if to.id != m.from {
					d, err := DecodeDelta(m.b, m.from, DeltaLimits())
					if err != nil {
						t.Fatal(err)
					}
					mergeChecked(t, to.s, d)
				}
				if !rapid.Bool().Draw(t, "keep") {
					inflight = append(inflight[:i], inflight[i+1:]...)
				}
				continue
			}
			inflight = append(inflight, log[len(log)-1])
		}
		// Anti-entropy: everyone gets everything (again), in a random order.
		for _, p := range peers {
			perm := rapid.Permutation(log).Draw(t, "order")
			for _, m := range perm {
				if m.from == p.id {
					continue
				}
				d, err := DecodeDelta(m.b, m.from, DeltaLimits())
				if err != nil {
					t.Fatal(err)
				}
				p.s.Merge(d)
			}
		}
		for _, p := range peers[1:] {
			if !bytes.Equal(p.s.JSON(), peers[0].s.JSON()) {
				t.Fatalf("%s: %s\n%s: %s", p.id, p.s.JSON(), peers[0].id, peers[0].s.JSON())
			}
			if !bytes.Equal(Encode(p.s), Encode(peers[0].s)) {
				t.Fatalf("%s and %s converged to different encodings", p.id, peers[0].id)
			}
		}
		var v map[string]any
		if err := json.Unmarshal(peers[0].s.JSON(), &v); err != nil {
			t.Fatalf("view is not JSON: %v", err)
		}
	})
}

// The compressed columns of a document's texts share one inflation budget:
// many texts that each fit the limit do not together get past it.
func TestDocSequenceInflationBudget(t *testing.T) {
	s := New()
	big := string(bytes.Repeat([]byte("a"), 40<<10)) // compresses to almost nothing
	for i := range 8 {
		if _, err := s.Apply("a", HLC(i+1), Splice([]string{"t" + strconv.Itoa(i)}, 0, 0, big)); err != nil {
			t.Fatal(err)
		}
	}
	b := Encode(s)
	if len(b) > 16<<10 {
		t.Fatalf("state is %d bytes: the texts were not compressed", len(b))
	}
	lim := Limits{MaxBytes: 100 << 10, MaxElements: 1 << 16} // each text fits, all do not
	if _, err := Decode(b, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("decoded 320 KiB of texts under a 100 KiB limit: %v", err)
	}
	if _, err := Decode(b, Limits{MaxBytes: 1 << 20, MaxElements: 1 << 16}); err != nil {
		t.Fatal(err)
	}
}

// Keystrokes typed one after the other join into one run: an aggregate of
// a typing burst costs about what one delta of the whole word does.
func TestSeqJoinTypingIsOneRun(t *testing.T) {
	s := NewText()
	var joined *SeqDelta[rune]
	for i, r := range "hello world" {
		d, err := s.Insert("a", i, r)
		if err != nil {
			t.Fatal(err)
		}
		if joined == nil {
			joined = d
		} else {
			joined = joined.Join(d)
		}
	}
	if len(joined.runs) != 1 || joined.Elements() != 11 {
		t.Fatalf("%d runs, %d elements", len(joined.runs), joined.Elements())
	}
	other := NewText()
	other.Merge(joined)
	if other.String() != "hello world" {
		t.Fatalf("merged %q", other.String())
	}
}

// A change held back (its left origin has not arrived) travels with the
// state: a snapshot taken meanwhile, decoded, then given the missing
// element, ends like the replica that held it.
func TestDocHeldChangesInState(t *testing.T) {
	a := New()
	p := []string{"t"}
	d1, err := a.Apply("A", 1, Splice(p, 0, 0, "x"))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := a.Apply("B", 2, Splice(p, 1, 0, "y"), SpliceDelete(p, 0, 1)) // after x, and x's delete
	if err != nil {
		t.Fatal(err)
	}
	r := New()
	r.Merge(d2) // held back
	enc := Encode(r)
	r2, err := Decode(enc, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Encode(r2), enc) {
		t.Fatal("a state holding a change back does not re-encode alike")
	}
	if string(r2.JSON()) != "{}" || string(r.JSON()) != "{}" {
		t.Fatalf("a key holding only a held-back change shows %s, decoded %s", r.JSON(), r2.JSON())
	}
	// The held change received again (a restart replays the log over the
	// snapshot) is held once.
	r2.Merge(d2)
	if !bytes.Equal(Encode(r2), enc) {
		t.Fatal("a held-back change merged again is held twice")
	}
	r3 := r.Clone()
	for _, s := range []*State{r, r2, r3} {
		s.Merge(d1)
		if got := textOf(t, s, "t"); got != "y" {
			t.Fatalf("got %q, want y", got)
		}
	}
}

// Deleting a map that holds a text leaves nothing visible (the text's
// tombstones stay, unseen), and the key takes another kind again.
func TestDocDeleteMapHoldingText(t *testing.T) {
	s := New()
	if _, err := s.Apply("a", 1, Splice([]string{"m", "t"}, 0, 0, "ab")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("a", 2, Delete([]string{"m"})); err != nil {
		t.Fatal(err)
	}
	if got := string(s.JSON()); got != `{}` || s.KindAt([]string{"m"}) != KindNone {
		t.Fatalf("view %s, kind %s", got, s.KindAt([]string{"m"}))
	}
	if _, err := s.Apply("a", 3, Set([]string{"m"}, js(`1`))); err != nil {
		t.Fatal(err)
	}
	if got := string(s.JSON()); got != `{"m":1}` {
		t.Fatalf("view %s", got)
	}
}

// A list created at a key concurrently with a text there: when the merge
// makes the key switch from the text to the list, the key has no patches
// (its path is in the change's paths: read it again).
func TestDocPatchesKindSwitch(t *testing.T) {
	a := &docPeer{id: "a", s: New()}
	b := &docPeer{id: "b", s: New()}
	a.apply(t, Splice([]string{"k"}, 0, 0, "abc"))
	wb := b.apply(t, SpliceList([]string{"k"}, 0, 0, js(`1`)))
	d, err := DecodeDelta(wb, "b", DeltaLimits())
	if err != nil {
		t.Fatal(err)
	}
	paths, ps := a.s.MergeEdits(d)
	if got := string(a.s.JSON()); got != `{"k":[1]}` {
		t.Fatalf("view %s", got)
	}
	if len(ps) != 0 || fmt.Sprint(paths) != "[[k]]" {
		t.Fatalf("paths %v, patches %+v: want [[k]] and none", paths, ps)
	}
}

// A group commit of big splices into several texts, and one long run of
// typing, split into pieces that each fit the bound; the pieces merged in
// any order give the delta.
func TestDocSplitBigSequenceChanges(t *testing.T) {
	a := New()
	acc := New()
	for i := range 4 {
		if err := a.ApplyTo(acc, "a", HLC(i+1), Splice([]string{"t" + strconv.Itoa(i)}, 0, 0, strings.Repeat("é", 3000))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3000 { // typing on: one run of 3000
		if err := a.ApplyTo(acc, "a", HLC(10+i), Splice([]string{"t0"}, 3000+i, 0, "x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ApplyTo(acc, "a", HLC(9000), SpliceDelete([]string{"t1"}, 10, 2000)); err != nil {
		t.Fatal(err)
	}
	lim := Limits{MaxBytes: 4096, MaxElements: 1 << 10}
	pieces := SplitDelta(acc, "a", lim)
	if len(pieces) < 5 {
		t.Fatalf("%d pieces", len(pieces))
	}
	for i, p := range pieces {
		if n := len(EncodeDelta(p, "a")); n > lim.MaxBytes {
			t.Fatalf("piece %d is %d bytes, over %d", i, n, lim.MaxBytes)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3 {
		b := New()
		for _, i := range rng.Perm(len(pieces)) {
			q, err := DecodeDelta(EncodeDelta(pieces[i], "a"), "a", DeltaLimits())
			if err != nil {
				t.Fatal(err)
			}
			b.Merge(q)
		}
		if !bytes.Equal(b.JSON(), a.JSON()) {
			t.Fatalf("pieces merged give %.100s…, want %.100s…", b.JSON(), a.JSON())
		}
	}
}

// With no concurrency a document's text and list behave as a plain
// string and slice: random splices (several per transaction), checked
// after every transaction, and through an encoding round trip.
func TestDocSequencesSequentialModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := New()
		var text []rune
		var list []string
		for step := range rapid.IntRange(1, 30).Draw(t, "txns") {
			var ops []Op
			tt, ll := append([]rune(nil), text...), append([]string(nil), list...)
			for range rapid.IntRange(1, 4).Draw(t, "ops") {
				if rapid.Bool().Draw(t, "text") {
					at := rapid.IntRange(0, len(tt)).Draw(t, "at")
					del := rapid.IntRange(0, min(3, len(tt)-at)).Draw(t, "del")
					ins := rapid.SampledFrom([]string{"", "a", "xyz", "ü€😀"}).Draw(t, "ins")
					ops = append(ops, Splice([]string{"t"}, at, del, ins))
					tt = append(tt[:at:at], append([]rune(ins), tt[at+del:]...)...)
				} else {
					at := rapid.IntRange(0, len(ll)).Draw(t, "at")
					del := rapid.IntRange(0, min(2, len(ll)-at)).Draw(t, "del")
					v := strconv.Itoa(step)
					ops = append(ops, SpliceList([]string{"l"}, at, del, js(v)))
					ll = append(ll[:at:at], append([]string{v}, ll[at+del:]...)...)
				}
			}
			if _, err := s.Apply("a", HLC(step+1), ops...); err != nil {
				t.Fatal(err)
			}
			text, list = tt, ll
			if got, _ := s.Text([]string{"t"}); s.KindAt([]string{"t"}) == KindText && got != string(text) {
				t.Fatalf("text %q, model %q", got, string(text))
			}
			if vs, ok := s.List([]string{"l"}); ok && fmt.Sprintf("%s", vs) != fmt.Sprint(list) {
				t.Fatalf("list %s, model %v", vs, list)
			}
		}
		back, err := Decode(Encode(s), DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.JSON(), s.JSON()) {
			t.Fatalf("round trip %s, want %s", back.JSON(), s.JSON())
		}
	})
}
