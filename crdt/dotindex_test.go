package crdt

import (
	"math/rand/v2"
	"testing"
)

// TestDotIndexModel: random puts and deletes leave a dotIndex holding what
// a plain map holds, whether its first dot is inline or not.
func TestDotIndexModel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 3))
		var x dotIndex
		model := map[Dot]loc{}
		entries := []*entry{{key: "a"}, {key: "b"}}
		for step := range 400 {
			d := Dot{ReplicaID([]string{"A", "B"}[rng.IntN(2)]), 1 + uint64(rng.IntN(6))}
			if rng.IntN(3) == 0 {
				x.del(d)
				delete(model, d)
			} else {
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
			for r := range 2 {
				for c := range uint64(7) {
					d := Dot{ReplicaID([]string{"A", "B"}[r]), c}
					l, ok := x.get(d)
					if want, wok := model[d]; ok != wok || l != want {
						t.Fatalf("seed %d step %d: get(%v) = %v %v, want %v %v", seed, step, d, l, ok, want, wok)
					}
				}
			}
			if x.has1 {
				if _, dup := x.more[x.one]; dup {
					t.Fatalf("seed %d step %d: %v inline and in the map", seed, step, x.one)
				}
			}
		}
	}
}
