package crdt

import "iter"

// dotIndex locates the dots a state's entries hold (see loc). Its first
// dot is held inline, so that a delta of one write, the usual, needs no
// map; the others are kept per replica, by counter, so that a probe
// hashes and compares one integer (a replica's ID is hashed once, or not
// at all for the replica most of a state's dots belong to).
type dotIndex struct {
	one  Dot
	oneL loc
	has1 bool
	// The dots past the inline one: r1's in m1 (nil when no replica is
	// held there) and every other replica's in more, which never holds
	// r1 while m1 is set. An emptied replica's map is dropped (but for
	// one made by growFor, which merge fills).
	r1   ReplicaID
	m1   map[uint64]loc
	more map[ReplicaID]map[uint64]loc
	n    int // dots in m1 and more
	hint int // room for the first replica's map (see grow)
}

// of returns r's map of dots past the inline one (nil when it has none).
func (x *dotIndex) of(r ReplicaID) map[uint64]loc {
	if x.m1 != nil && x.r1 == r {
		return x.m1
	}
	return x.more[r]
}

// ensure returns r's map, making it when r has none.
func (x *dotIndex) ensure(r ReplicaID) map[uint64]loc {
	if m := x.of(r); m != nil {
		return m
	}
	m := make(map[uint64]loc, x.hint)
	x.hint = 0
	x.set(r, m)
	return m
}

// grow makes room for n dots in the first replica's map, when made (a
// decoded state's dots are mostly one replica's), so that a large decode
// does not rehash it again and again as it grows.
func (x *dotIndex) grow(n int) {
	if x.m1 == nil && x.more == nil {
		x.hint = n
	}
}

// get returns where d lives.
func (x *dotIndex) get(d Dot) (loc, bool) {
	if x.has1 && x.one.Counter == d.Counter && x.one.Replica == d.Replica {
		return x.oneL, true
	}
	if x.n == 0 {
		return loc{}, false
	}
	l, ok := x.of(d.Replica)[d.Counter]
	return l, ok
}

// has reports whether d is held.
func (x *dotIndex) has(d Dot) bool {
	_, ok := x.get(d)
	return ok
}

// put records that d lives at l.
func (x *dotIndex) put(d Dot, l loc) {
	switch {
	case x.has1 && x.one == d:
		x.oneL = l
	case !x.has1 && x.n == 0:
		x.one, x.oneL, x.has1 = d, l, true
	default:
		m := x.ensure(d.Replica)
		n := len(m)
		m[d.Counter] = l
		x.n += len(m) - n
	}
}

// del forgets d.
func (x *dotIndex) del(d Dot) {
	if x.has1 && x.one == d {
		x.one, x.oneL, x.has1 = Dot{}, loc{}, false
		return
	}
	m := x.of(d.Replica)
	if m == nil {
		return
	}
	n := len(m)
	delete(m, d.Counter)
	x.n -= n - len(m)
	if len(m) == 0 {
		x.drop(d.Replica)
	}
}

// drop forgets r's map.
func (x *dotIndex) drop(r ReplicaID) {
	if x.m1 != nil && x.r1 == r {
		x.r1, x.m1 = "", nil
		return
	}
	delete(x.more, r)
}

// len returns the number of dots held.
func (x *dotIndex) len() int {
	n := x.n
	if x.has1 {
		n++
	}
	return n
}

// growFor makes room for the dots of src, so that a large merge of it
// does not rehash the maps again and again as they grow.
func (x *dotIndex) growFor(src *dotIndex) {
	counts := map[ReplicaID]int{}
	for r, m := range src.maps() {
		counts[r] += len(m)
	}
	for r, c := range counts {
		m := x.of(r)
		if c <= 2*len(m)+1024 {
			continue
		}
		g := make(map[uint64]loc, len(m)+c)
		for k, l := range m {
			g[k] = l
		}
		if m != nil {
			x.drop(r)
		}
		x.set(r, g)
	}
}

// set makes m r's map (r has none).
func (x *dotIndex) set(r ReplicaID, m map[uint64]loc) {
	if x.m1 == nil {
		x.r1, x.m1 = r, m
		return
	}
	if x.more == nil {
		x.more = map[ReplicaID]map[uint64]loc{}
	}
	x.more[r] = m
}

// maps yields every replica's map of dots past the inline one.
func (x *dotIndex) maps() iter.Seq2[ReplicaID, map[uint64]loc] {
	return func(yield func(ReplicaID, map[uint64]loc) bool) {
		if x.m1 != nil && !yield(x.r1, x.m1) {
			return
		}
		for r, m := range x.more {
			if !yield(r, m) {
				return
			}
		}
	}
}

// all yields every dot held and where it lives. The caller may delete the
// dot it is given.
func (x *dotIndex) all() iter.Seq2[Dot, loc] {
	return func(yield func(Dot, loc) bool) {
		if x.has1 && !yield(x.one, x.oneL) {
			return
		}
		for r, m := range x.maps() {
			for c, l := range m {
				if !yield(Dot{r, c}, l) {
					return
				}
			}
		}
	}
}
