package crdt

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestEntryStoresModel: random stores set at an entry are found by kind
// as in a plain array indexed by kind, whichever is held inline; stores
// yields them by kind, and kind and covered see them as the array would.
func TestEntryStoresModel(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var e entry
		var model [numKinds]kindStore
		for step := range 12 {
			// Registers, counters and sets only: a sequence's or a map's
			// store needs more than a zero value.
			k := []Kind{KindRegister, KindCounter, KindSet}[rng.IntN(3)]
			var v kindStore
			switch k {
			case KindRegister:
				r := new(register).init()
				if rng.IntN(2) == 0 {
					r.add(regDot{dot: Dot{"A", uint64(step + 1)}, val: []byte("1")})
				}
				v = r
			case KindCounter:
				c := &counter{}
				if rng.IntN(2) == 0 {
					c.dots = append(c.dots, ctrDot{dot: Dot{"A", uint64(step + 1)}, n: 1})
				}
				v = c
			case KindSet:
				v = &set{}
			}
			e.setAt(k, v)
			model[k-1] = v
			var want []kindStore
			for k := KindRegister; k <= KindList; k++ {
				if e.at(k) != model[k-1] {
					t.Fatalf("seed %d step %d: at(%s) = %v, want %v", seed, step, k, e.at(k), model[k-1])
				}
				if model[k-1] != nil {
					want = append(want, model[k-1])
				}
			}
			if got := slices.Collect(e.stores()); !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d: stores %v, want %v", seed, step, got, want)
			}
			wantKind := KindNone
			for _, k := range kindOrder {
				if v := model[k-1]; v != nil && v.visible() {
					wantKind = k
					break
				}
			}
			if e.kind() != wantKind {
				t.Fatalf("seed %d step %d: kind %s, want %s", seed, step, e.kind(), wantKind)
			}
			empty := true
			var cov []Dot
			for _, k := range storeOrder {
				if v := model[k-1]; v != nil {
					empty = empty && v.empty()
					cov = v.covered(cov, Delete(nil), "A", false)
				}
			}
			if e.empty() != empty {
				t.Fatalf("seed %d step %d: empty %v, want %v", seed, step, e.empty(), empty)
			}
			if got := e.covered(nil, Delete(nil), "A", false); !slices.Equal(got, cov) {
				t.Fatalf("seed %d step %d: covered %v, want %v", seed, step, got, cov)
			}
		}
	}
}
