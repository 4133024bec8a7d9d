package crdt

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

// TestForkedDeltasMergeInAnyOrder: an author that equivocates signs two
// deltas made from one state, so both carry the same dots with different
// writes. Merge keeps the same write for each dot whatever the order (the
// smaller by compareWrites), so replicas that receive both, in any order
// and mixed with other deltas, converge.
func TestForkedDeltasMergeInAnyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		base := genStates(t, 1)[0]
		var forks []*State
		for i := range 2 {
			fork := base.Clone()
			var d *State
			for d == nil {
				var err error
				d, err = fork.Apply("f", HLC(100+i), genOp(t), genOp(t))
				if err != nil {
					d = nil
				}
			}
			forks = append(forks, d)
		}
		other := base.Clone()
		od, err := other.Apply("o", 50, genOp(t))
		if err != nil {
			od = New()
		}
		orders := [][]*State{
			{forks[0], forks[1], od},
			{forks[1], forks[0], od},
			{od, forks[1], forks[0]},
			{forks[1], od, forks[0], forks[1]},
		}
		var want []byte
		for i, order := range orders {
			s := base.Clone()
			for _, d := range order {
				s.Merge(d)
			}
			got := Encode(s)
			if i == 0 {
				want = got
			} else if !bytes.Equal(got, want) {
				t.Fatalf("order %d diverged:\n%s\nvs\n%s", i, s.JSON(), mustDecode(t, want).JSON())
			}
			if _, err := Decode(got, DefaultLimits()); err != nil {
				t.Fatalf("merged state does not decode: %v", err)
			}
		}
		// Joining the forks first gives the same state too.
		j := forks[0].Clone()
		j.Merge(forks[1])
		s := base.Clone()
		s.Merge(od)
		s.Merge(j)
		if !bytes.Equal(Encode(s), want) {
			t.Fatal("merging the joined forks differs")
		}
	})
}

func mustDecode(t *rapid.T, b []byte) *State {
	s, err := Decode(b, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An unsigned state (a snapshot) carrying one of our dots with other
// content cannot replace what we hold, even when its write would win the
// same-dot rule that forked signed deltas follow.
func TestUnverifiedMergeKeepsHeldWrites(t *testing.T) {
	s := New()
	if _, err := s.Apply("x", 100, Set([]string{"k"}, js(`"good"`))); err != nil {
		t.Fatal(err)
	}
	forged := New()
	if _, err := forged.Apply("x", 1, Set([]string{"k"}, js(`"evil"`)), Set([]string{"new"}, js(`1`))); err != nil {
		t.Fatal(err)
	}
	// The forged state's first dot is ours (x:1) with other content.
	u := s.Clone()
	u.MergeUnverifiedChanges(forged)
	if got := string(u.JSON()); got != `{"k":"good","new":1}` {
		t.Fatalf("unverified merge: %s", got)
	}
	// A signed delta with that dot (a fork) follows the same-dot rule.
	m := s.Clone()
	m.Merge(forged)
	if got := string(m.JSON()); got != `{"k":"evil","new":1}` {
		t.Fatalf("merge: %s", got)
	}
}
