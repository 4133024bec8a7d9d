package crdt

import (
	"math/rand/v2"
	"testing"
)

// TestDotIndexModel: random puts, deletes (some while walking all) and
// grows leave a dotIndex holding what a plain map holds, whether its
// first dot is inline or not, and however its replicas' maps come and go.
func TestDotIndexModel(t *testing.T) {
	reps := []ReplicaID{"A", "B", "C"}
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 3))
		var x dotIndex
		model := map[Dot]loc{}
		entries := []*entry{{key: "a"}, {key: "b"}}
		for step := range 600 {
			d := Dot{reps[rng.IntN(len(reps))], 1 + uint64(rng.IntN(6))}
			switch r := rng.IntN(12); {
			case r < 4:
				x.del(d)
				delete(model, d)
			case r == 4:
				// Delete every other dot while walking the index.
				i := 0
				for d := range x.all() {
					if i%2 == 0 {
						x.del(d)
						delete(model, d)
					}
					i++
				}
			case r == 5 && step%2 == 0:
				x.grow(rng.IntN(100))
			case r == 5:
				// Grow for a source of many dots of some replicas.
				var src dotIndex
				for c := range uint64(1100 + rng.IntN(400)) {
					src.put(Dot{reps[rng.IntN(2)], 100 + c}, loc{e: entries[0]})
				}
				x.growFor(&src)
			default:
				l := loc{e: entries[rng.IntN(2)], kind: KindRegister}
				x.put(d, l)
				model[d] = l
			}
			if x.len() != len(model) {
				t.Fatalf("seed %d step %d: len %d, want %d", seed, step, x.len(), len(model))
			}
			seen := 0
			for d, l := range x.all() {
				if want, ok := model[d]; !ok || want != l {
					t.Fatalf("seed %d step %d: all gave %v at %v, want %v (%v)", seed, step, d, l, want, ok)
				}
				seen++
			}
			if seen != len(model) {
				t.Fatalf("seed %d step %d: all gave %d dots, want %d", seed, step, seen, len(model))
			}
			for _, r := range append(reps, "Z") {
				for c := range uint64(7) {
					d := Dot{r, c}
					l, ok := x.get(d)
					if want, wok := model[d]; ok != wok || l != want || x.has(d) != wok {
						t.Fatalf("seed %d step %d: get(%v) = %v %v, want %v %v", seed, step, d, l, ok, want, wok)
					}
				}
			}
			if x.has1() {
				if m := x.of(x.one.Replica); m != nil && m.has(x.one.Counter) {
					t.Fatalf("seed %d step %d: %v inline and in a map", seed, step, x.one)
				}
			}
			if xr := x.past; xr != nil && xr.m1 != nil {
				if _, dup := xr.more[xr.r1]; dup {
					t.Fatalf("seed %d step %d: replica %s's map held twice", seed, step, xr.r1)
				}
			}
		}
	}
}
