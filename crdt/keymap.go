package crdt

import (
	"iter"
	"slices"
)

// keyMap is a map's entries by key. Its first key is held inline, so that
// a map of one key — a delta of one write has one at each level of its
// path — needs no table.
type keyMap struct {
	k1   string
	e1   *entry    // nil when no key is held inline
	more *keyTable // never holds k1 while e1 is set; nil until needed
}

// get returns the entry at k, or nil.
func (m *keyMap) get(k string) *entry {
	if m.e1 != nil && m.k1 == k {
		return m.e1
	}
	if m.more == nil {
		return nil
	}
	return m.more.get(k)
}

// put makes e the entry at k (e is not nil).
func (m *keyMap) put(k string, e *entry) {
	switch {
	case m.e1 != nil && m.k1 == k:
		m.e1 = e
	case m.e1 == nil && m.tableLen() == 0:
		m.k1, m.e1 = k, e
	default:
		if m.more == nil {
			m.more = &keyTable{}
		}
		m.more.put(k, e)
	}
}

// del removes the entry at k.
func (m *keyMap) del(k string) {
	if m.e1 != nil && m.k1 == k {
		m.k1, m.e1 = "", nil
		return
	}
	if m.more != nil {
		m.more.del(k)
	}
}

// tableLen returns the number of keys past the inline one.
func (m *keyMap) tableLen() int {
	if m.more == nil {
		return 0
	}
	return m.more.n
}

// len returns the number of keys.
func (m *keyMap) len() int {
	n := m.tableLen()
	if m.e1 != nil {
		n++
	}
	return n
}

// grow makes room for n keys, so that a large merge does not rehash the
// map again and again as it grows.
func (m *keyMap) grow(n int) {
	if n > 1 && n > m.tableLen() {
		if m.more == nil {
			m.more = &keyTable{}
		}
		m.more.reserve(n)
	}
}

// all yields every key and its entry. The caller may delete the key it is
// given.
func (m *keyMap) all() iter.Seq2[string, *entry] {
	return func(yield func(string, *entry) bool) {
		if m.e1 != nil && !yield(m.k1, m.e1) {
			return
		}
		if m.more != nil {
			m.more.all(yield)
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
