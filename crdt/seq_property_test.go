package crdt

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// seqSim is a simulated network of replicas of one text: local ops make
// deltas that travel as messages which may be delivered late, twice, out
// of order or never; a final anti-entropy round exchanges whole states.
type seqSim struct {
	reps     []*Text
	names    []ReplicaID
	shadow   [][]rune // each replica's text rebuilt from patches alone
	inflight []seqMsg
	sent     []*SeqDelta[rune] // every delta made, in order
}

type seqMsg struct {
	to int
	d  *SeqDelta[rune]
}

func newSeqSim(n int) *seqSim {
	s := &seqSim{}
	for i := 0; i < n; i++ {
		s.reps = append(s.reps, NewText())
		s.names = append(s.names, ReplicaID(fmt.Sprintf("r%d", i)))
		s.shadow = append(s.shadow, nil)
	}
	return s
}

func applyPatches[V SeqValue](text []V, ps []Patch[V]) []V {
	for _, p := range ps {
		text = slices.Delete(text, p.Index, p.Index+p.Delete)
		text = slices.Insert(text, p.Index, p.Insert...)
	}
	return text
}

func (s *seqSim) broadcast(from int, d *SeqDelta[rune]) {
	// Every delta goes through its encoding.
	back, err := DecodeSeqDelta[rune](EncodeSeqDelta(d, s.names[from]), s.names[from], DeltaLimits())
	if err != nil {
		panic(err)
	}
	d = back
	s.sent = append(s.sent, d)
	for j := range s.reps {
		if j != from {
			s.inflight = append(s.inflight, seqMsg{j, d})
		}
	}
}

func (s *seqSim) merge(to int, d *SeqDelta[rune]) {
	ps := s.reps[to].Merge(d)
	s.shadow[to] = applyPatches(s.shadow[to], ps)
}

// step draws one action.
func (s *seqSim) step(t *rapid.T) {
	switch rapid.IntRange(0, 9).Draw(t, "action") {
	case 0, 1, 2, 3: // insert
		r := rapid.IntRange(0, len(s.reps)-1).Draw(t, "replica")
		txt := s.reps[r]
		at := rapid.IntRange(0, txt.Len()).Draw(t, "at")
		n := rapid.IntRange(1, 3).Draw(t, "n")
		vals := make([]rune, n)
		for i := range vals {
			vals[i] = rune('a' + 5*r + i)
		}
		d, err := txt.Insert(s.names[r], at, vals...)
		if err != nil {
			t.Fatal(err)
		}
		s.shadow[r] = slices.Insert(s.shadow[r], at, vals...)
		s.broadcast(r, d)
	case 4, 5: // delete
		r := rapid.IntRange(0, len(s.reps)-1).Draw(t, "replica")
		txt := s.reps[r]
		if txt.Len() == 0 {
			return
		}
		at := rapid.IntRange(0, txt.Len()-1).Draw(t, "at")
		n := rapid.IntRange(1, min(3, txt.Len()-at)).Draw(t, "n")
		d, err := txt.Delete(s.names[r], at, n)
		if err != nil {
			t.Fatal(err)
		}
		s.shadow[r] = slices.Delete(s.shadow[r], at, at+n)
		s.broadcast(r, d)
	case 6, 7, 8: // deliver a message, sometimes keeping a copy
		if len(s.inflight) == 0 {
			return
		}
		i := rapid.IntRange(0, len(s.inflight)-1).Draw(t, "msg")
		m := s.inflight[i]
		if !rapid.Bool().Draw(t, "dup") {
			s.inflight = slices.Delete(s.inflight, i, i+1)
		}
		s.merge(m.to, m.d)
	default: // lose a message
		if len(s.inflight) == 0 {
			return
		}
		i := rapid.IntRange(0, len(s.inflight)-1).Draw(t, "lost")
		s.inflight = slices.Delete(s.inflight, i, i+1)
	}
}

// converge delivers what is left in a random order, then runs
// anti-entropy: every replica merges every other's whole state.
func (s *seqSim) converge(t *rapid.T) {
	for len(s.inflight) > 0 {
		i := rapid.IntRange(0, len(s.inflight)-1).Draw(t, "rest")
		m := s.inflight[i]
		s.inflight = slices.Delete(s.inflight, i, i+1)
		s.merge(m.to, m.d)
	}
	for i := range s.reps {
		for j := range s.reps {
			if i != j {
				s.merge(i, s.reps[j].Delta())
			}
		}
	}
}

func (s *seqSim) checkConverged(t interface {
	Fatalf(string, ...any)
	Fatal(...any)
}) {
	ref := s.reps[0]
	refElems := elems(ref)
	for i, r := range s.reps {
		if err := r.check(); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		if r.Pending() != 0 {
			t.Fatalf("replica %d holds %d pending elements", i, r.Pending())
		}
		if got := string(s.shadow[i]); got != r.String() {
			t.Fatalf("replica %d: patches give %q, the text is %q", i, got, r.String())
		}
		if r.String() != ref.String() {
			t.Fatalf("replica %d has %q, replica 0 %q", i, r.String(), ref.String())
		}
		if !slices.Equal(elems(r), refElems) {
			t.Fatalf("replica %d orders its elements (tombstones included) differently", i)
		}
		if !r.cc.VV().Equal(ref.cc.VV()) || r.cc.CloudSize() != ref.cc.CloudSize() {
			t.Fatalf("replica %d has context %v, replica 0 %v", i, r.cc.VV(), ref.cc.VV())
		}
	}
	if err := checkModel(ref); err != nil {
		t.Fatal(err)
	}
	enc := EncodeSeq(ref)
	for i, r := range s.reps {
		if !bytes.Equal(EncodeSeq(r), enc) {
			t.Fatalf("replica %d encodes differently", i)
		}
	}
	back, err := DecodeSeq[rune](enc, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if err := back.check(); err != nil {
		t.Fatal(err)
	}
	if back.String() != ref.String() || !slices.Equal(elems(back), refElems) || !bytes.Equal(EncodeSeq(back), enc) {
		t.Fatalf("decoded state differs")
	}
	if !back.delcc.VV().Equal(ref.delcc.VV()) || back.delcc.CloudSize() != ref.delcc.CloudSize() {
		t.Fatalf("decoded delete dots %v, want %v", back.delcc.VV(), ref.delcc.VV())
	}
	// The whole state as a delta, through its encoding, rebuilds it.
	d, err := DecodeSeqDelta[rune](EncodeSeqDelta(ref.Delta(), s.names[0]), s.names[0], DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	fresh := NewText()
	fresh.Merge(d)
	if !bytes.Equal(EncodeSeq(fresh), enc) {
		t.Fatalf("state rebuilt from its delta encodes differently")
	}
}

// Replicas editing concurrently and exchanging deltas that are lost,
// duplicated and reordered converge, after anti-entropy, to one text with
// one element order — FugueMax's — and each replica's patches rebuild its
// text.
func TestSeqConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sim := newSeqSim(rapid.IntRange(2, 4).Draw(t, "replicas"))
		steps := rapid.IntRange(0, 60).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			sim.step(t)
		}
		sim.converge(t)
		sim.checkConverged(t)
	})
}

// Merge is idempotent, commutative and associative on whole states.
func TestSeqMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sim := newSeqSim(3)
		steps := rapid.IntRange(0, 40).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			sim.step(t)
		}
		a, b, c := sim.reps[0].Delta(), sim.reps[1].Delta(), sim.reps[2].Delta()
		build := func(ds ...*SeqDelta[rune]) *Text {
			s := NewText()
			for _, d := range ds {
				s.Merge(d)
			}
			return s
		}
		ab := build(a, b)
		ba := build(b, a)
		aab := build(a, a, b, b)
		abc := build(build(a, b).Delta(), c)
		a_bc := build(a, build(b, c).Delta())
		cba := build(c, b, a)
		for _, p := range [][2]*Text{{ab, ba}, {ab, aab}, {abc, a_bc}, {abc, cba}} {
			if p[0].String() != p[1].String() || !slices.Equal(elems(p[0]), elems(p[1])) {
				t.Fatalf("%q vs %q", p[0].String(), p[1].String())
			}
		}
	})
}
