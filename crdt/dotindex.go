package crdt

import "iter"

// dotIndex locates the dots a state's entries hold (see loc). Its first
// dot is held inline, so that a delta of one write, the usual, needs no
// map.
type dotIndex struct {
	one  Dot
	oneL loc
	has1 bool
	more map[Dot]loc // never holds one while has1
}

// get returns where d lives.
func (x *dotIndex) get(d Dot) (loc, bool) {
	if x.has1 && x.one.Counter == d.Counter && x.one.Replica == d.Replica {
		return x.oneL, true
	}
	l, ok := x.more[d]
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
	case !x.has1 && len(x.more) == 0:
		x.one, x.oneL, x.has1 = d, l, true
	default:
		if x.more == nil {
			x.more = map[Dot]loc{}
		}
		x.more[d] = l
	}
}

// del forgets d.
func (x *dotIndex) del(d Dot) {
	if x.has1 && x.one == d {
		x.one, x.oneL, x.has1 = Dot{}, loc{}, false
		return
	}
	delete(x.more, d)
}

// len returns the number of dots held.
func (x *dotIndex) len() int {
	n := len(x.more)
	if x.has1 {
		n++
	}
	return n
}

// grow makes room for n dots, so that a large merge does not rehash the
// map again and again as it grows.
func (x *dotIndex) grow(n int) { x.more = growMap(x.more, n) }

// all yields every dot held and where it lives. The caller may delete the
// dot it is given.
func (x *dotIndex) all() iter.Seq2[Dot, loc] {
	return func(yield func(Dot, loc) bool) {
		if x.has1 && !yield(x.one, x.oneL) {
			return
		}
		for d, l := range x.more {
			if !yield(d, l) {
				return
			}
		}
	}
}
