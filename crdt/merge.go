package crdt

import (
	"bytes"
	"cmp"
	"iter"
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

// merger is what merging one state into another passes down: the state
// merged, the callback told of every entry whose content changes (removed:
// a write at it was removed) and whether held writes are kept (see
// MergeUnverifiedChanges).
type merger struct {
	src      *State
	touched  func(e *entry, removed bool)
	keepHeld bool
}

func (s *State) merge(src *State, touched func(e *entry, removed bool), keepHeld bool) {
	if src == s {
		return
	}
	m := merger{src: src, touched: touched, keepHeld: keepHeld}
	// 1. Remove our dots that src has seen but no longer holds.
	remove := func(d Dot) {
		if src.idx.has(d) {
			return
		}
		l, ok := s.idx.get(d)
		if !ok {
			return
		}
		if touched != nil {
			touched(l.e, true)
		}
		s.removeDot(d)
	}
	if src.cc.dotCount() <= uint64(s.idx.len()) {
		src.cc.eachDot(func(d Dot) bool { remove(d); return true })
	} else {
		for d := range s.idx.all() {
			if src.cc.Contains(d) {
				remove(d)
			}
		}
	}
	// 2. Add the dots src holds that we have not seen, walking both trees
	// together (no per-dot path lookups).
	if src.idx.len() > 2*s.idx.len()+1024 {
		s.idx.growFor(&src.idx)
	}
	s.mergeNode(s.root, src.root, m)
	// 3. Join the causal contexts, but for what the sequences refused.
	s.cc.Merge(src.cc)
	if s.side != nil && s.side.refused != nil {
		s.cc.remove(s.side.refused)
		s.side.refused = nil
		s.side.refusals++
	}
}

// mergeNode adds to dst (a map of s) the dots of src (the same map in
// another state) that s has not seen.
func (s *State) mergeNode(dst, src *mapNode, m merger) {
	if src.kids.len() > 2*dst.kids.len()+1024 {
		dst.kids.grow(dst.kids.len() + src.kids.len())
	}
	// Large merges allocate new entries, and their registers, in slabs
	// rather than one by one.
	var slab []entry
	var regSlab []register // made when first needed, as big as what is left of slab
	if src.kids.len() >= 64 {
		slab = make([]entry, 0, src.kids.len())
	}
	for k, se := range mergeOrder(src) {
		de := dst.kids.get(k)
		created := false
		if de == nil {
			if len(slab) < cap(slab) {
				slab = append(slab, entry{parent: dst, key: k})
				de = &slab[len(slab)-1]
				if se.register() != nil {
					if regSlab == nil {
						regSlab = make([]register, 0, cap(slab)-len(slab)+1)
					}
					regSlab = append(regSlab, register{})
					de.setAt(KindRegister, regSlab[len(regSlab)-1].init())
				}
			} else {
				de = &entry{parent: dst, key: k}
			}
			dst.kids.put(k, de)
			created = true
		}
		added := false
		for _, k := range storeOrder {
			if v := se.at(k); v != nil && v.mergeInto(s, de, m) {
				added = true
			}
		}
		if added && m.touched != nil {
			m.touched(de, false)
		}
		if created && de.empty() {
			dst.kids.del(k)
		}
	}
}

// mergeOrder yields the keys of src, a large map in the order of their
// registers' first dots: a replica's dots then reach the state's dot index
// in counter order, where they fill pages (see repDots) rather than the
// sparse map that dots out of order go to — the difference, for a late
// joiner, between its document's 100k dots in pages and in a hash map.
// A small map's keys come in map order.
func mergeOrder(src *mapNode) iter.Seq2[string, *entry] {
	if src.kids.len() < 1024 {
		return src.kids.all()
	}
	type kid struct {
		key string
		e   *entry
		c   uint64
	}
	kids := make([]kid, 0, src.kids.len())
	for k, e := range src.kids.all() {
		var c uint64
		if r := e.register(); r != nil && len(r.values()) > 0 {
			c = r.values()[0].dot.Counter
		}
		kids = append(kids, kid{k, e, c})
	}
	slices.SortFunc(kids, func(a, b kid) int { return cmp.Compare(a.c, b.c) })
	return func(yield func(string, *entry) bool) {
		for _, x := range kids {
			if !yield(x.key, x.e) {
				return
			}
		}
	}
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
func (s *State) yields(d Dot, de *entry, w write, m merger) (loc, bool) {
	if m.keepHeld {
		return loc{}, false
	}
	l, ok := s.idx.get(d)
	if !ok {
		return loc{}, false // seen and removed
	}
	if compareWrites(de, w, l.e, l.e.at(l.kind).write(d, l.elem)) >= 0 {
		return loc{}, false // the same write, or ours is the smaller
	}
	if m.touched != nil {
		m.touched(l.e, true)
	}
	return l, true
}

// unseen reports whether d is neither held nor in the causal context.
func (s *State) unseen(d Dot) bool {
	if s.idx.has(d) {
		return false
	}
	return !s.cc.Contains(d)
}
