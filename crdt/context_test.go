package crdt

import (
	"math/rand/v2"
	"testing"
)

// ctxModel is a causal context as a plain set of dots.
type ctxModel map[Dot]bool

func (m ctxModel) addRange(r ReplicaID, lo, hi uint64) {
	for k := max(lo, 1); k <= hi; k++ {
		m[Dot{r, k}] = true
	}
}

func (m ctxModel) removeRange(r ReplicaID, lo, hi uint64) {
	for k := lo; k <= hi; k++ {
		delete(m, Dot{r, k})
	}
}

// checkContext fails t unless c holds exactly the dots of m (counters up
// to top of replicas reps) and keeps its representation's invariants.
func checkContext(t *testing.T, step int, c *CausalContext, m ctxModel, reps []ReplicaID, top uint64) {
	t.Helper()
	for _, r := range reps {
		var want uint64
		for k := uint64(1); k <= top; k++ {
			if got := c.Contains(Dot{r, k}); got != m[Dot{r, k}] {
				t.Fatalf("step %d: Contains(%s, %d) = %v, want %v", step, r, k, got, !got)
			}
			if m[Dot{r, k}] {
				want = k
			}
		}
		if got := c.Max(r); got != want {
			t.Fatalf("step %d: Max(%s) = %d, want %d", step, r, got, want)
		}
	}
	if got := c.dotCount(); got != uint64(len(m)) {
		t.Fatalf("step %d: dotCount = %d, want %d", step, got, len(m))
	}
	seen := 0
	c.eachDot(func(d Dot) bool {
		if !m[d] {
			t.Fatalf("step %d: eachDot gave %v, not held", step, d)
		}
		seen++
		return true
	})
	if seen != len(m) {
		t.Fatalf("step %d: eachDot gave %d dots, want %d", step, seen, len(m))
	}
	if len(c.iv1) > 0 {
		if _, ok := c.more[c.r1]; ok {
			t.Fatalf("step %d: %s held both inline and in the map", step, c.r1)
		}
	}
	n := 0
	for r, ivs := range c.clouds() {
		if len(ivs) == 0 {
			t.Fatalf("step %d: empty cloud kept for %s", step, r)
		}
		prev := c.vv[r] + 1 // every interval starts past vv+1
		for _, iv := range ivs {
			if iv.lo <= prev || iv.hi < iv.lo {
				t.Fatalf("step %d: cloud of %s not sorted, disjoint, apart: %v (vv %d)", step, r, ivs, c.vv[r])
			}
			prev = iv.hi + 1
		}
		n += len(ivs)
	}
	if c.CloudSize() != n {
		t.Fatalf("step %d: CloudSize = %d, want %d", step, c.CloudSize(), n)
	}
}

// TestContextModel: random adds, removes, merges and clones over several
// replicas leave a causal context holding exactly the dots a plain set
// holds, whichever replica's cloud is kept inline.
func TestContextModel(t *testing.T) {
	reps := []ReplicaID{"a", "b", "c"}
	const top = 48
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 12))
		span := func() (ReplicaID, uint64, uint64) {
			lo := 1 + uint64(rng.IntN(top))
			return reps[rng.IntN(len(reps))], lo, min(top, lo+uint64(rng.IntN(4)))
		}
		random := func() (*CausalContext, ctxModel) {
			o, om := NewCausalContext(), ctxModel{}
			for range rng.IntN(8) {
				r, lo, hi := span()
				o.AddRange(r, lo, hi)
				om.addRange(r, lo, hi)
			}
			return o, om
		}
		c, m := NewCausalContext(), ctxModel{}
		for step := range 300 {
			switch rng.IntN(6) {
			case 0, 1:
				r, lo, hi := span()
				c.AddRange(r, lo, hi)
				m.addRange(r, lo, hi)
			case 2:
				r, lo, hi := span()
				c.removeRange(r, lo, hi)
				m.removeRange(r, lo, hi)
			case 3:
				o, om := random()
				c.Merge(o)
				for d := range om {
					m[d] = true
				}
			case 4:
				o, om := random()
				c.remove(o)
				for d := range om {
					delete(m, d)
				}
			case 5:
				c = c.Clone()
			}
			checkContext(t, step, c, m, reps, top)
		}
	}
}
