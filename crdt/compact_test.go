package crdt

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
)

// TestMetadataStaysCompact: 100k ops from 3 replicas, every delta delivered
// (out of order within a window), leave a bare version vector; removing
// everything leaves no per-element leftovers.
func TestMetadataStaysCompact(t *testing.T) {
	const total = 100_000
	reps := []*State{New(), New(), New()}
	ids := []ReplicaID{"replica-a", "replica-b", "replica-c"}
	type pending struct {
		to int
		d  *State
	}
	var window []pending
	for i := 0; i < total; i++ {
		r := i % 3
		var op Op
		key := strconv.Itoa(i % 5000)
		switch i % 4 {
		case 0:
			op = Set([]string{"reg", key}, js(strconv.Itoa(i)))
		case 1:
			op = Inc([]string{"ctr", strconv.Itoa(i % 50)}, 1)
		case 2:
			op = Add([]string{"set"}, js(strconv.Quote(key)))
		case 3:
			op = Remove([]string{"set"}, js(strconv.Quote(strconv.Itoa((i+2500)%5000))))
		}
		d := mustApply(t, reps[r], ids[r], HLC(i+1), op)
		for j := range reps {
			if j != r {
				window = append(window, pending{j, d})
			}
		}
		// Deliver in reverse order every 64 deltas: out of order, but all.
		if len(window) >= 64 {
			for k := len(window) - 1; k >= 0; k-- {
				reps[window[k].to].Merge(window[k].d)
			}
			window = window[:0]
		}
	}
	for k := len(window) - 1; k >= 0; k-- {
		reps[window[k].to].Merge(window[k].d)
	}
	for i, s := range reps {
		if s.cc.CloudSize() != 0 {
			t.Fatalf("replica %d: dot cloud has %d intervals", i, s.cc.CloudSize())
		}
		if len(s.cc.vv) != 3 {
			t.Fatalf("replica %d: vector has %d entries", i, len(s.cc.vv))
		}
	}
	// The live dots are bounded by the live content, not by history:
	// ≤ one per register writer, one per counter writer, one per element adder.
	if n := reps[0].Dots(); n > 5000*3+50*3+5000*3 {
		t.Fatalf("%d live dots after 100k ops", n)
	}
	// Remove everything: what remains is the version vector alone.
	a := reps[0]
	tx := []Op{Delete([]string{"reg"}), Delete([]string{"ctr"}), Delete([]string{"set"})}
	d := mustApply(t, a, ids[0], HLC(total+1), tx...)
	for _, s := range reps[1:] {
		s.Merge(d)
	}
	for i, s := range reps {
		if s.Dots() != 0 {
			t.Fatalf("replica %d: %d dots left", i, s.Dots())
		}
		enc := Encode(s)
		// version + table of 3 short IDs + 3 vector entries: < 64 bytes.
		if len(enc) > 64 {
			t.Fatalf("replica %d: empty document encodes to %d bytes", i, len(enc))
		}
		if string(s.JSON()) != "{}" {
			t.Fatalf("replica %d: view %s", i, s.JSON())
		}
	}
	t.Logf("empty document after %d ops: %d bytes", total, len(Encode(a)))
}

func TestDeltaSize(t *testing.T) {
	s := New()
	origin := ReplicaID("12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo.1f2e3d4c5b6a7988")
	for i := 0; i < 1000; i++ { // a realistic counter and clock
		mustApply(t, s, origin, MakeHLC(1764300000000, 0)+HLC(i), Set([]string{fmt.Sprint(i)}, js(`1`)))
	}
	d := mustApply(t, s, origin, MakeHLC(1764300000000+5000, 3), Set([]string{"name"}, js(`"alice"`)))
	b := EncodeDelta(d, origin)
	if len(b) > 64 {
		t.Fatalf("one map set encodes to %d bytes, budget 64", len(b))
	}
	t.Logf("one map set (short key, small value): %d bytes", len(b))
}

// TestDecodeRejectsHugeCounters: counters above MaxCounter (where counter
// arithmetic could wrap, and a forged context could claim dots nobody
// minted) are malformed, in the vector and in the dot cloud.
func TestDecodeRejectsHugeCounters(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lo, hi uint64
	}{
		{"vector", 1, MaxCounter + 1},
		{"cloud", 3, math.MaxUint64},
	} {
		s := New()
		s.Context().AddRange("r", tc.lo, tc.hi)
		if _, err := Decode(Encode(s), DefaultLimits()); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	s := New()
	s.Context().AddRange("r", 3, MaxCounter)
	if _, err := Decode(Encode(s), DefaultLimits()); err != nil {
		t.Fatalf("MaxCounter itself: %v", err)
	}
}

// TestContextMergeOfLargeClouds: merging two contexts whose dot clouds are
// both large (the one-pass path) gives exactly what adding the intervals
// one by one gives.
func TestContextMergeOfLargeClouds(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	random := func() *CausalContext {
		c := NewCausalContext()
		c.AddRange("r", 1, uint64(rng.IntN(20)))
		for range 10 + rng.IntN(40) {
			lo := 1 + uint64(rng.IntN(400))
			c.AddRange("r", lo, lo+uint64(rng.IntN(6)))
		}
		return c
	}
	merged := 0
	for i := range 500 {
		a, b := random(), random()
		ref := a.Clone()
		for r, n := range b.vv {
			ref.AddRange(r, 1, n)
		}
		for r, ivs := range b.clouds() {
			for _, iv := range ivs {
				ref.AddRange(r, iv.lo, iv.hi)
			}
		}
		if len(a.cloudOf("r")) > 8 && len(b.cloudOf("r")) > 8 {
			merged++
		}
		a.Merge(b)
		if !reflect.DeepEqual(a.vv, ref.vv) || !reflect.DeepEqual(cloudMap(a), cloudMap(ref)) {
			t.Fatalf("case %d: merge %v %v, want %v %v", i, a.vv, cloudMap(a), ref.vv, cloudMap(ref))
		}
	}
	if merged < 100 {
		t.Fatalf("only %d cases took the one-pass path", merged)
	}
}

// cloudMap returns c's dot cloud as one map, whatever c holds inline.
func cloudMap(c *CausalContext) map[ReplicaID][]interval {
	out := map[ReplicaID][]interval{}
	for r, ivs := range c.clouds() {
		out[r] = ivs
	}
	return out
}

// TestScatteredDelete: deleting a map whose values' dots are scattered
// (every other counter) gives a delta with one context interval per value
// that removes them all on a replica. (BenchmarkScatteredDelete times it:
// built in map order, that context cost quadratic time.)
func TestScatteredDelete(t *testing.T) {
	s := New()
	const n = 50_000
	for i := range n {
		if _, err := s.Apply("A", HLC(i+1), Set([]string{"m", strconv.Itoa(i)}, []byte("1"))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply("A", HLC(i+1), Inc([]string{"other"}, 1)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.Apply("A", HLC(1e9), Delete([]string{"m"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Context().CloudSize(); got < n-1 {
		t.Fatalf("delta context has %d intervals, want ~%d", got, n)
	}
	r := New()
	r.Merge(s)
	r.Merge(d)
	if got := string(r.JSON()); got != `{"other":50000}` {
		t.Fatalf("after the delete: %.60s", got)
	}
}
