package crdt

import (
	"bytes"
	"cmp"
	"slices"
	"sort"
	"strings"
)

// Merging: joining a delta (or a whole state) into a state.

// Merge joins src into s. src is not modified and may be any state: a delta
// from a mutator, a decoded remote delta or a whole remote document.
func (s *State) Merge(src *State) { s.merge(src, nil, false) }

// MergeChanges joins src into s like Merge and returns the paths of the
// entries whose content changed, sorted and without duplicates.
func (s *State) MergeChanges(src *State) [][]string { return s.mergeChanges(src, false) }

// MergeUnverifiedChanges is MergeChanges for a state whose writes no
// author signed (a snapshot): a write at a dot s already holds is kept,
// never replaced by src's. Merge and MergeChanges let a smaller write
// replace a held one with the same dot — the rule that makes an
// equivocating author's forked deltas converge (see yields) — which only
// signed deltas may invoke: an unsigned state could otherwise rewrite
// anything s holds.
func (s *State) MergeUnverifiedChanges(src *State) [][]string { return s.mergeChanges(src, true) }

func (s *State) mergeChanges(src *State, keepHeld bool) [][]string {
	changed := map[*entry]struct{}{}
	var removedPaths [][]string
	s.merge(src, func(e *entry, removed bool) {
		if removed {
			removedPaths = append(removedPaths, e.path())
			return
		}
		changed[e] = struct{}{}
	}, keepHeld)
	paths := removedPaths
	for e := range changed {
		paths = append(paths, e.path())
	}
	return dedupPaths(paths)
}

func dedupPaths(paths [][]string) [][]string {
	sort.Slice(paths, func(i, j int) bool { return strings.Join(paths[i], "\x00") < strings.Join(paths[j], "\x00") })
	out := paths[:0]
	for i, p := range paths {
		if i > 0 && strings.Join(p, "\x00") == strings.Join(out[len(out)-1], "\x00") {
			continue
		}
		out = append(out, p)
	}
	return out
}

func (s *State) merge(src *State, touched func(e *entry, removed bool), keepHeld bool) {
	if src == s {
		return
	}
	// 1. Remove our dots that src has seen but no longer holds.
	remove := func(d Dot) {
		if _, live := src.idx[d]; live {
			return
		}
		if _, ok := s.idx[d]; !ok {
			return
		}
		if touched != nil {
			touched(s.idx[d].e, true)
		}
		s.removeDot(d)
	}
	if src.cc.dotCount() <= uint64(len(s.idx)) {
		src.cc.eachDot(func(d Dot) bool { remove(d); return true })
	} else {
		for d := range s.idx {
			if src.cc.Contains(d) {
				remove(d)
			}
		}
	}
	// 2. Add the dots src holds that we have not seen, walking both trees
	// together (no per-dot path lookups).
	if len(src.idx) > 2*len(s.idx)+1024 {
		s.idx = growMap(s.idx, len(s.idx)+len(src.idx))
	}
	s.mergeNode(s.root, src.root, touched, keepHeld)
	// 3. Join the causal contexts.
	s.cc.Merge(src.cc)
}

// mergeNode adds to dst (a map of s) the dots of src (the same map in
// another state) that s has not seen.
func (s *State) mergeNode(dst, src *mapNode, touched func(e *entry, removed bool), keepHeld bool) {
	if len(src.kids) > 2*len(dst.kids)+1024 {
		dst.kids = growMap(dst.kids, len(dst.kids)+len(src.kids))
	}
	// Large merges allocate new entries, and room for one register value
	// each, in slabs rather than one by one.
	var slab []entry
	var regSlab []regDot
	if len(src.kids) >= 64 {
		slab = make([]entry, 0, len(src.kids))
		regSlab = make([]regDot, len(src.kids))
	}
	for k, se := range src.kids {
		de := dst.kids[k]
		created := false
		if de == nil {
			if len(slab) < cap(slab) {
				i := len(slab)
				slab = append(slab, entry{parent: dst, key: k, reg: regSlab[i : i : i+1]})
				de = &slab[i]
			} else {
				de = &entry{parent: dst, key: k}
			}
			dst.kids[k] = de
			created = true
		}
		added := false
		// A held dot is normally the same write; when it is not (yields),
		// src's write goes in first, so that removing ours cannot prune de.
		for _, r := range se.reg {
			if s.unseen(r.dot) {
				s.insertReg(de, r)
				added = true
			} else if old, ok := s.yields(r.dot, de, write{kind: KindRegister, hlc: r.hlc, val: r.val}, touched, keepHeld); ok {
				s.insertReg(de, r)
				s.removeAt(old, r.dot)
				added = true
			}
		}
		for _, c := range se.ctr {
			if s.unseen(c.dot) {
				s.insertCtr(de, c)
				added = true
			} else if old, ok := s.yields(c.dot, de, write{kind: KindCounter, n: c.n}, touched, keepHeld); ok {
				s.insertCtr(de, c)
				s.removeAt(old, c.dot)
				added = true
			}
		}
		for el, ds := range se.set {
			for _, d := range ds {
				if s.unseen(d) {
					s.insertElem(de, el, d)
					added = true
				} else if old, ok := s.yields(d, de, write{kind: KindSet, elem: el}, touched, keepHeld); ok {
					s.insertElem(de, el, d)
					s.removeAt(old, d)
					added = true
				}
			}
		}
		if (se.text != nil || se.list != nil) && s.mergeSeqs(de, se, s.joining) {
			added = true
		}
		if se.sub != nil && len(se.sub.kids) > 0 {
			if de.sub == nil {
				de.sub = &mapNode{owner: de, kids: make(map[string]*entry, len(se.sub.kids))}
			}
			s.mergeNode(de.sub, se.sub, touched, keepHeld)
		}
		if added && touched != nil {
			touched(de, false)
		}
		if created && de.empty() {
			delete(dst.kids, k)
		}
	}
}

func (s *State) writeAt(l loc, d Dot) write {
	w := write{kind: l.kind, elem: l.elem}
	switch l.kind {
	case KindRegister:
		for _, r := range l.e.reg {
			if r.dot == d {
				w.hlc, w.val = r.hlc, r.val
			}
		}
	case KindCounter:
		for _, c := range l.e.ctr {
			if c.dot == d {
				w.n = c.n
			}
		}
	}
	return w
}

// compareWrites orders two writes carrying one dot at entries a and b:
// by path, kind, set element, HLC, value, counter.
func compareWrites(a *entry, wa write, b *entry, wb write) int {
	if a != b {
		if c := slices.Compare(a.path(), b.path()); c != 0 {
			return c
		}
	}
	return cmp.Or(
		cmp.Compare(wa.kind, wb.kind),
		strings.Compare(wa.elem, wb.elem),
		cmp.Compare(wa.hlc, wb.hlc),
		bytes.Compare(wa.val, wb.val),
		cmp.Compare(wa.n, wb.n),
	)
}

// yields reports whether s holds d with a write other than w (at entry de)
// that w replaces, and returns where s holds it: the caller inserts w, then
// removes the old write with removeAt. A dot names one write, so two writes
// with one dot come only from an author that equivocated (signed two
// deltas with one sequence number); every replica keeps the same one, the
// smaller by compareWrites, whatever order the deltas arrive in, so merge
// stays a join.
func (s *State) yields(d Dot, de *entry, w write, touched func(e *entry, removed bool), keepHeld bool) (loc, bool) {
	if keepHeld {
		return loc{}, false
	}
	l, ok := s.idx[d]
	if !ok {
		return loc{}, false // seen and removed
	}
	if compareWrites(de, w, l.e, s.writeAt(l, d)) >= 0 {
		return loc{}, false // the same write, or ours is the smaller
	}
	if touched != nil {
		touched(l.e, true)
	}
	return l, true
}

// unseen reports whether d is neither held nor in the causal context.
func (s *State) unseen(d Dot) bool {
	if _, ok := s.idx[d]; ok {
		return false
	}
	return !s.cc.Contains(d)
}
