package crdt

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestKeyMapModel: random puts, deletes (some while walking all) and
// grows leave a keyMap holding what a plain map holds, whether its first
// key is inline or not.
func TestKeyMapModel(t *testing.T) {
	keys := []string{"", "a", "b", "c", "d", "e"}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 5))
		var m keyMap
		model := map[string]*entry{}
		for step := range 400 {
			k := keys[rng.IntN(len(keys))]
			switch r := rng.IntN(10); {
			case r < 3:
				m.del(k)
				delete(model, k)
			case r == 3:
				// Delete every other key while walking the map.
				i := 0
				for k := range m.all() {
					if i%2 == 0 {
						m.del(k)
						delete(model, k)
					}
					i++
				}
			case r == 4:
				m.grow(rng.IntN(8))
			default:
				e := &entry{key: k}
				m.put(k, e)
				model[k] = e
			}
			if m.len() != len(model) {
				t.Fatalf("seed %d step %d: len %d, want %d", seed, step, m.len(), len(model))
			}
			got := map[string]*entry{}
			for k, e := range m.all() {
				if _, dup := got[k]; dup {
					t.Fatalf("seed %d step %d: all gave %q twice", seed, step, k)
				}
				got[k] = e
			}
			if !maps.Equal(got, model) {
				t.Fatalf("seed %d step %d: all gave %v, want %v", seed, step, got, model)
			}
			if want := slices.Sorted(maps.Keys(model)); !slices.Equal(m.sorted(), want) {
				t.Fatalf("seed %d step %d: sorted %q, want %q", seed, step, m.sorted(), want)
			}
			for _, k := range append(keys, "z") {
				if m.get(k) != model[k] {
					t.Fatalf("seed %d step %d: get(%q) = %p, want %p", seed, step, k, m.get(k), model[k])
				}
			}
			if m.e1 != nil && m.more != nil {
				if dup := m.more.get(m.k1); dup != nil {
					t.Fatalf("seed %d step %d: %q inline and in the map", seed, step, m.k1)
				}
			}
		}
	}
}
