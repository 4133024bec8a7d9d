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
