package crdt

import "iter"

// dotIndex locates the dots a state's entries hold (see loc). Its first
// dot is held inline, so that a delta of one write, the usual, needs no
// map; the others are kept per replica, by counter (see repDots), so that
// a replica's ID is hashed once per probe, or not at all for the replica
// most of a state's dots belong to.
type dotIndex struct {
	one  Dot
	oneL loc // oneL.e is nil when no dot is held inline
	// past holds the dots past the inline one: nil until there are some
	// (or grow is told of them), so that a delta's index is small.
	past *dotReps
}

// dotReps is a dot index's dots past its inline one: r1's in m1 (nil when
// no replica is held there) and every other replica's in more, which
// never holds r1 while m1 is set. An emptied replica's dots are dropped
// (but for those made by growFor, which merge fills).
type dotReps struct {
	r1   ReplicaID
	m1   *repDots
	more map[ReplicaID]*repDots
	n    int // dots in m1 and more
	hint int // room for the first replica's sparse map (see grow)
}

// has1 reports whether a dot is held inline.
func (x *dotIndex) has1() bool { return x.oneL.e != nil }

// makePast returns x.past, making it when x has none.
func (x *dotIndex) makePast() *dotReps {
	if x.past == nil {
		x.past = &dotReps{}
	}
	return x.past
}

// of returns r's dots past the inline one (nil when it has none).
func (x *dotIndex) of(r ReplicaID) *repDots {
	if x.past == nil {
		return nil
	}
	if x.past.m1 != nil && x.past.r1 == r {
		return x.past.m1
	}
	return x.past.more[r]
}

// ensure returns r's dots, making them when r has none.
func (x *dotIndex) ensure(r ReplicaID) *repDots {
	if m := x.of(r); m != nil {
		return m
	}
	xr := x.makePast()
	m := &repDots{}
	if xr.hint > 0 {
		m.sparse = make(map[uint64]loc, xr.hint)
		xr.hint = 0
	}
	if xr.m1 == nil {
		xr.r1, xr.m1 = r, m
		return m
	}
	if xr.more == nil {
		xr.more = map[ReplicaID]*repDots{}
	}
	xr.more[r] = m
	return m
}

// pastLen returns the number of dots past the inline one.
func (x *dotIndex) pastLen() int {
	if x.past == nil {
		return 0
	}
	return x.past.n
}

// get returns where d lives.
func (x *dotIndex) get(d Dot) (loc, bool) {
	if x.has1() && x.one.Counter == d.Counter && x.one.Replica == d.Replica {
		return x.oneL, true
	}
	if x.pastLen() == 0 {
		return loc{}, false
	}
	m := x.of(d.Replica)
	if m == nil {
		return loc{}, false
	}
	return m.get(d.Counter)
}

// has reports whether d is held.
func (x *dotIndex) has(d Dot) bool {
	_, ok := x.get(d)
	return ok
}

// put records that d lives at l (l.e is not nil).
func (x *dotIndex) put(d Dot, l loc) {
	switch {
	case x.has1() && x.one == d:
		x.oneL = l
	case !x.has1() && x.pastLen() == 0:
		x.one, x.oneL = d, l
	default:
		m := x.ensure(d.Replica)
		n := m.n
		m.put(d.Counter, l)
		x.past.n += m.n - n
	}
}

// del forgets d.
func (x *dotIndex) del(d Dot) {
	if x.has1() && x.one == d {
		x.one, x.oneL = Dot{}, loc{}
		return
	}
	m := x.of(d.Replica)
	if m == nil {
		return
	}
	n := m.n
	m.del(d.Counter)
	x.past.n -= n - m.n
	if m.n == 0 {
		x.past.drop(d.Replica)
	}
}

// drop forgets r's dots.
func (xr *dotReps) drop(r ReplicaID) {
	if xr.m1 != nil && xr.r1 == r {
		xr.r1, xr.m1 = "", nil
		return
	}
	delete(xr.more, r)
}

// len returns the number of dots held.
func (x *dotIndex) len() int {
	n := x.pastLen()
	if x.has1() {
		n++
	}
	return n
}

// grow makes room for n dots in the first replica's sparse map, when
// made (a decoded state's dots are mostly one replica's, and in no
// order), so that a large decode does not rehash it again and again as it
// grows.
func (x *dotIndex) grow(n int) {
	if xr := x.makePast(); xr.m1 == nil && xr.more == nil {
		xr.hint = n
	}
}

// growFor makes room for the dots of src, so that a large merge of it
// does not rehash the maps again and again as they grow.
func (x *dotIndex) growFor(src *dotIndex) {
	for r, m := range src.reps() {
		x.ensure(r).grow(m.n)
	}
}

// reps yields every replica's dots past the inline one.
func (x *dotIndex) reps() iter.Seq2[ReplicaID, *repDots] {
	return func(yield func(ReplicaID, *repDots) bool) {
		xr := x.past
		if xr == nil {
			return
		}
		if xr.m1 != nil && !yield(xr.r1, xr.m1) {
			return
		}
		for r, m := range xr.more {
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
		if x.has1() && !yield(x.one, x.oneL) {
			return
		}
		for r, m := range x.reps() {
			for c, l := range m.all() {
				if !yield(Dot{r, c}, l) {
					return
				}
			}
		}
	}
}
