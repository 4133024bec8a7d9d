package crdt

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestKeyTableModel: random puts, replacements, deletes (some while
// walking all), reserves and growth through several sizes leave a
// keyTable holding what a plain map holds, with its counts right and its
// slots within the load bound.
func TestKeyTableModel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 6))
		var tb keyTable
		model := map[string]*entry{}
		nkeys := 8 << rng.IntN(7) // 8 to 512 distinct keys
		for step := range 3000 {
			k := strconv.Itoa(rng.IntN(nkeys))
			switch r := rng.IntN(20); {
			case r < 6:
				tb.del(k)
				delete(model, k)
			case r == 6:
				for k := range tb.all {
					if rng.IntN(3) == 0 {
						tb.del(k)
						delete(model, k)
					}
				}
			case r == 7:
				tb.reserve(rng.IntN(2 * nkeys))
			default:
				e := &entry{key: k}
				tb.put(k, e)
				model[k] = e
			}
			checkKeyTable(t, &tb, model, nkeys, seed, step)
		}
	}
}

func checkKeyTable(t *testing.T, tb *keyTable, model map[string]*entry, nkeys int, seed uint64, step int) {
	t.Helper()
	keys, used := 0, 0
	for i, c := range tb.tags {
		switch {
		case c >= 0x80:
			keys++
			used++
			if e := tb.ents[i]; e == nil || tagOf(keyHash(e.key)) != c || tb.hashes[i] != keyHash(e.key) {
				t.Fatalf("seed %d step %d: slot %d tagged %#x holds %v", seed, step, i, c, tb.ents[i])
			}
		case c == slotDeleted:
			used++
			fallthrough
		default:
			if tb.ents[i] != nil {
				t.Fatalf("seed %d step %d: slot %d tagged %#x holds an entry", seed, step, i, c)
			}
		}
	}
	if keys != tb.n || used != tb.used || tb.n != len(model) {
		t.Fatalf("seed %d step %d: %d keys and %d used in the slots, counted %d and %d, want %d keys", seed, step, keys, used, tb.n, tb.used, len(model))
	}
	if used*16 > len(tb.tags)*maxLoad16ths {
		t.Fatalf("seed %d step %d: %d of %d slots used", seed, step, used, len(tb.tags))
	}
	for i := range nkeys + 3 {
		k := strconv.Itoa(i)
		if tb.get(k) != model[k] {
			t.Fatalf("seed %d step %d: get(%q) = %p, want %p", seed, step, k, tb.get(k), model[k])
		}
	}
	seen := map[string]bool{}
	for k, e := range tb.all {
		if seen[k] || model[k] != e {
			t.Fatalf("seed %d step %d: all gave %q (twice: %v), at %p, want %p", seed, step, k, seen[k], e, model[k])
		}
		seen[k] = true
	}
	if len(seen) != len(model) {
		t.Fatalf("seed %d step %d: all gave %d keys, want %d", seed, step, len(seen), len(model))
	}
}

// Adding keys to a table while walking it, enough to resize it, panics:
// the walk would go on over the old arrays and yield entries deleted
// after the resize. After the walk the table resizes as before.
func TestKeyTableNoResizeWhileWalking(t *testing.T) {
	var tb keyTable
	for i := range 6 {
		k := strconv.Itoa(i)
		tb.put(k, &entry{key: k})
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("a resize during a walk did not panic")
			}
		}()
		for range tb.all {
			for i := range 100 {
				k := "new" + strconv.Itoa(i)
				tb.put(k, &entry{key: k})
			}
		}
	}()
	if tb.walks != 0 {
		t.Fatalf("%d walks left under way after the panic", tb.walks)
	}
	for i := range 100 {
		k := "after" + strconv.Itoa(i)
		tb.put(k, &entry{key: k})
	}
	if tb.get("after99") == nil {
		t.Fatal("the table lost a key after the walk")
	}
}
