package crdt

import (
	"iter"
	"slices"
)

// keyMap is a map's entries by key. Its first key is held inline, so that
// a map of one key — a delta of one write has one at each level of its
// path — needs no Go map.
type keyMap struct {
	k1   string
	e1   *entry            // nil when no key is held inline
	more map[string]*entry // never holds k1 while e1 is set
}

// get returns the entry at k, or nil.
func (m *keyMap) get(k string) *entry {
	if m.e1 != nil && m.k1 == k {
		return m.e1
	}
	return m.more[k]
}

// put makes e the entry at k (e is not nil).
func (m *keyMap) put(k string, e *entry) {
	switch {
	case m.e1 != nil && m.k1 == k:
		m.e1 = e
	case m.e1 == nil && len(m.more) == 0:
		m.k1, m.e1 = k, e
	default:
		if m.more == nil {
			m.more = map[string]*entry{}
		}
		m.more[k] = e
	}
}

// del removes the entry at k.
func (m *keyMap) del(k string) {
	if m.e1 != nil && m.k1 == k {
		m.k1, m.e1 = "", nil
		return
	}
	delete(m.more, k)
}

// len returns the number of keys.
func (m *keyMap) len() int {
	n := len(m.more)
	if m.e1 != nil {
		n++
	}
	return n
}

// grow makes room for n keys, so that a large merge does not rehash the
// map again and again as it grows.
func (m *keyMap) grow(n int) {
	if n > 1 && n > len(m.more) {
		m.more = growMap(m.more, n)
	}
}

// all yields every key and its entry. The caller may delete the key it is
// given.
func (m *keyMap) all() iter.Seq2[string, *entry] {
	return func(yield func(string, *entry) bool) {
		if m.e1 != nil && !yield(m.k1, m.e1) {
			return
		}
		for k, e := range m.more {
			if !yield(k, e) {
				return
			}
		}
	}
}

// sorted returns the keys in order.
func (m *keyMap) sorted() []string {
	out := make([]string, 0, m.len())
	for k := range m.all() {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
