package crdt

import (
	"math/rand/v2"
	"testing"
)

// TestRepDotsModel: a replica's dots put mostly in counter order (a
// writer's), some out of order (a merge's), and deleted at random, some
// while walking all, are found as in a plain map; a dot's page, when it
// exists, holds it; every page but the newest holds at least pageMin.
func TestRepDotsModel(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 11))
		var r repDots
		model := map[uint64]loc{}
		entries := []*entry{{key: "a"}, {key: "b"}}
		next := uint64(1 + rng.IntN(1000))
		for step := range 3000 {
			k := rng.IntN(20)
			if step%1000 < 400 {
				k = rng.IntN(11) // mostly writes: the replica gets its pages
			}
			switch {
			case k < 9: // the writer's next dot
				l := loc{e: entries[rng.IntN(2)], kind: KindRegister}
				r.put(next, l)
				model[next] = l
				next += 1 + uint64(rng.IntN(2))
				if rng.IntN(16) == 0 { // a gap: counters of the replica held elsewhere
					next += uint64(rng.IntN(3 * pageDots))
				}
			case k < 11: // an old or a future dot, out of order
				c := uint64(rng.IntN(int(next) + 500))
				if rng.IntN(4) == 0 { // pages ahead: a gap
					c = next + uint64(rng.IntN(4*pageDots))
				}
				l := loc{e: entries[rng.IntN(2)], kind: KindCounter}
				r.put(c, l)
				model[c] = l
			case k < 19: // a delete, of a held dot mostly
				c := uint64(rng.IntN(int(next) + 10))
				for h := range model {
					if rng.IntN(3) > 0 {
						c = h
					}
					break
				}
				r.del(c)
				delete(model, c)
			default: // delete a third of the dots while walking
				seen := map[uint64]bool{}
				for c, l := range r.all() {
					if seen[c] {
						t.Fatalf("seed %d step %d: all gave %d twice", seed, step, c)
					}
					seen[c] = true
					if want, ok := model[c]; !ok || want != l {
						t.Fatalf("seed %d step %d: all gave %d at %v, want %v (%v)", seed, step, c, l, want, ok)
					}
					if rng.IntN(3) == 0 {
						r.del(c)
						delete(model, c)
					}
				}
			}
			checkRepDots(t, &r, model, seed, step)
		}
	}
}

func checkRepDots(t *testing.T, r *repDots, model map[uint64]loc, seed uint64, step int) {
	t.Helper()
	if r.n != len(model) {
		t.Fatalf("seed %d step %d: n %d, want %d", seed, step, r.n, len(model))
	}
	held := 0
	for pn, p := range r.pages {
		n := 0
		for _, l := range p.locs {
			if l.e != nil {
				n++
			}
		}
		if n != p.n {
			t.Fatalf("seed %d step %d: page %d counts %d, holds %d", seed, step, pn, p.n, n)
		}
		if pn != r.top && n < pageMin {
			t.Fatalf("seed %d step %d: page %d (newest %d) holds %d", seed, step, pn, r.top, n)
		}
		if pn > r.top {
			t.Fatalf("seed %d step %d: page %d above the newest %d", seed, step, pn, r.top)
		}
		held += n
	}
	for c := range r.sparse {
		if r.pages[c/pageDots] != nil {
			t.Fatalf("seed %d step %d: %d sparse, but its page exists", seed, step, c)
		}
		if c/pageDots >= r.next {
			t.Fatalf("seed %d step %d: %d sparse at or above next page %d", seed, step, c, r.next)
		}
	}
	inRun := 0
	for _, l := range r.run {
		if l.e != nil {
			inRun++
		}
	}
	if inRun > 0 && (len(r.pages) > 0 || len(r.sparse) > 0) {
		t.Fatalf("seed %d step %d: %d in the run, with %d pages and %d sparse", seed, step, inRun, len(r.pages), len(r.sparse))
	}
	if len(r.run) > pagesFrom {
		t.Fatalf("seed %d step %d: a run of %d", seed, step, len(r.run))
	}
	if held+len(r.sparse)+inRun != len(model) {
		t.Fatalf("seed %d step %d: %d in pages, %d sparse and %d in the run, want %d", seed, step, held, len(r.sparse), inRun, len(model))
	}
	for c, want := range model {
		if l, ok := r.get(c); !ok || l != want {
			t.Fatalf("seed %d step %d: get(%d) = %v %v, want %v", seed, step, c, l, ok, want)
		}
	}
	seen := 0
	for c, l := range r.all() {
		if want, ok := model[c]; !ok || want != l {
			t.Fatalf("seed %d step %d: all gave %d at %v, want %v (%v)", seed, step, c, l, want, ok)
		}
		seen++
	}
	if seen != len(model) {
		t.Fatalf("seed %d step %d: all gave %d dots, want %d", seed, step, seen, len(model))
	}
}
