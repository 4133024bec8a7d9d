package crdt

import "iter"

// Pages of a replica's dots (see repDots).
const (
	pageDots = 64 // dots per page, by counter
	// pageMin: a page other than the newest holds at least this many
	// dots; one that falls below moves them to the sparse map, which
	// bounds what a page costs per dot.
	pageMin = 8
	// pagesFrom: a replica's dots go to pages once it holds this many,
	// so that a replica with few dots costs no page.
	pagesFrom = 64
)

// dotPage holds the dots of one range of pageDots counters, at counter
// modulo pageDots (an empty slot has a nil entry).
type dotPage struct {
	n    int
	locs [pageDots]loc
}

// repDots is where one replica's dots live, by counter. A replica mints
// its dots in order, and receivers mostly get them in order too: once it
// has many, they go to pages of consecutive counters, made as the
// counters grow, so that adding a new dot touches the newest page (in
// cache, and no hash table to grow) and removing one is a probe in the
// small map of pages. Dots below the newest page that have none (a merge
// in random order, the rest of a page that emptied) live in a sparse
// map. A dot's page, when it exists, is where it lives: the sparse map
// holds dots of pages below next only, and pages are made at next or
// above.
//
// Before any of that, a replica's first dots, while they are consecutive
// counters, live in a run: a slice by counter, grown by appending — a
// delta's own writes, most of the time, which then need no hash table
// (see putRun).
type repDots struct {
	pages  map[uint64]*dotPage // by counter / pageDots; nil until the first is made
	top    uint64              // the newest page's number (when pages is set)
	next   uint64              // the lowest number a new page may have
	sparse map[uint64]loc
	// run[i] is where the dot with counter runAt+i lives (an empty slot
	// has a nil entry). It holds dots only while pages and sparse hold
	// none, and at most pagesFrom.
	run   []loc
	runAt uint64
	n     int // dots held
}

// get returns where the dot with counter c lives.
func (r *repDots) get(c uint64) (loc, bool) {
	if i := c - r.runAt; i < uint64(len(r.run)) {
		l := r.run[i]
		return l, l.e != nil
	}
	if p := r.pages[c/pageDots]; p != nil {
		l := p.locs[c%pageDots]
		return l, l.e != nil
	}
	l, ok := r.sparse[c]
	return l, ok
}

// has reports whether the dot with counter c is held.
func (r *repDots) has(c uint64) bool {
	_, ok := r.get(c)
	return ok
}

// put records that the dot with counter c lives at l (l.e is not nil).
func (r *repDots) put(c uint64, l loc) {
	if !r.putRun(c, l) {
		r.putMapped(c, l)
	}
}

// putRun puts the dot in the run, and reports whether it did: when the
// run is all r holds and c falls in it or extends it, up to pagesFrom
// dots. A dot that does not ends the run.
func (r *repDots) putRun(c uint64, l loc) bool {
	if len(r.pages) > 0 || len(r.sparse) > 0 {
		return false
	}
	if r.n == 0 { // (re)start the run at c
		r.run, r.runAt = r.run[:0], c
	}
	switch i := c - r.runAt; {
	case i < uint64(len(r.run)):
		if r.run[i].e == nil {
			r.n++
		}
		r.run[i] = l
		return true
	case i == uint64(len(r.run)) && i < pagesFrom:
		r.run = append(r.run, l)
		r.n++
		return true
	}
	r.endRun()
	return false
}

// endRun moves the run's dots to the sparse map and pages, where put
// would have placed them had there been no run.
func (r *repDots) endRun() {
	run, at := r.run, r.runAt
	r.run, r.n = nil, 0
	for i, l := range run {
		if l.e != nil {
			r.putMapped(at+uint64(i), l)
		}
	}
}

// putMapped is put past the run: in a page or the sparse map.
func (r *repDots) putMapped(c uint64, l loc) {
	pn := c / pageDots
	p := r.pages[pn]
	if p == nil && pn >= r.next && (r.pages != nil || r.n >= pagesFrom) {
		p = r.newPage(pn)
	}
	if p == nil {
		n := len(r.sparse)
		if r.sparse == nil {
			r.sparse = map[uint64]loc{}
		}
		r.sparse[c] = l
		r.n += len(r.sparse) - n
		r.next = max(r.next, pn+1)
		return
	}
	if p.locs[c%pageDots].e == nil {
		p.n++
		r.n++
	}
	p.locs[c%pageDots] = l
}

// newPage makes page pn (at next or above), the newest; the one it
// succeeds moves its dots to the sparse map when it holds few.
func (r *repDots) newPage(pn uint64) *dotPage {
	if r.pages == nil {
		r.pages = map[uint64]*dotPage{}
	} else if old := r.pages[r.top]; old != nil && old.n < pageMin {
		r.demote(r.top, old)
	}
	p := &dotPage{}
	r.pages[pn] = p
	r.top, r.next = pn, pn
	return p
}

// demote moves page pn's dots (pn is below next) to the sparse map. It
// leaves the page's slots as they are, for a walk of all that holds it.
func (r *repDots) demote(pn uint64, p *dotPage) {
	delete(r.pages, pn)
	if p.n == 0 {
		return
	}
	if r.sparse == nil {
		r.sparse = make(map[uint64]loc, p.n)
	}
	for i, l := range p.locs {
		if l.e != nil {
			r.sparse[pn*pageDots+uint64(i)] = l
		}
	}
}

// del forgets the dot with counter c.
func (r *repDots) del(c uint64) {
	if i := c - r.runAt; i < uint64(len(r.run)) {
		if r.run[i].e != nil {
			r.run[i] = loc{}
			r.n--
		}
		return
	}
	pn := c / pageDots
	if p := r.pages[pn]; p != nil {
		if p.locs[c%pageDots].e == nil {
			return
		}
		p.locs[c%pageDots] = loc{}
		p.n--
		r.n--
		if p.n < pageMin && pn != r.top {
			r.demote(pn, p)
		}
		return
	}
	n := len(r.sparse)
	delete(r.sparse, c)
	r.n -= n - len(r.sparse)
}

// grow makes room in the sparse map for n more dots.
func (r *repDots) grow(n int) {
	if n > 2*len(r.sparse)+1024 {
		r.sparse = growMap(r.sparse, len(r.sparse)+n)
	}
}

// all yields every dot's counter and where it lives. The caller may
// delete the dot it is given.
func (r *repDots) all() iter.Seq2[uint64, loc] {
	return func(yield func(uint64, loc) bool) {
		for i := range r.run {
			if l := r.run[i]; l.e != nil && !yield(r.runAt+uint64(i), l) {
				return
			}
		}
		// The sparse map first: a page that empties while it is walked
		// moves its dots there, and they are not seen twice.
		for c, l := range r.sparse {
			if !yield(c, l) {
				return
			}
		}
		for pn, p := range r.pages {
			for i := range p.locs {
				if l := p.locs[i]; l.e != nil && !yield(pn*pageDots+uint64(i), l) {
					return
				}
			}
		}
	}
}
