package crdt

import (
	"bytes"
	"cmp"
	"slices"
	"sort"
	"strings"
)

// Kind is the CRDT type held at a key of a document map.
type Kind uint8

const (
	// KindNone means the key holds nothing.
	KindNone Kind = iota
	// KindRegister is a multi-value register of JSON values.
	KindRegister
	// KindCounter is a PN-counter of int64.
	KindCounter
	// KindSet is an add-wins observed-remove set of JSON scalars.
	KindSet
	// KindMap is a nested observed-remove map.
	KindMap
)

func (k Kind) String() string {
	switch k {
	case KindRegister:
		return "register"
	case KindCounter:
		return "counter"
	case KindSet:
		return "set"
	case KindMap:
		return "map"
	}
	return "none"
}

// MaxPathDepth bounds the nesting of maps in a document, so that every state
// decodes within the codec's nesting limit.
const MaxPathDepth = 32

type regDot struct {
	dot Dot
	hlc HLC
	val []byte // compact JSON
}

type ctrDot struct {
	dot Dot
	n   int64 // the replica's whole contribution
}

// entry is the value at one key of a map: one slot per CRDT kind. Normally
// one slot is non-empty; concurrent writes of different kinds can fill
// several, and the visible kind is then the highest of map > set > counter >
// register (see Kind resolution in doc.go). A later local write at the key
// clears the slots of the other kinds it observed.
type entry struct {
	parent *mapNode
	key    string
	reg    []regDot
	ctr    []ctrDot
	set    map[string][]Dot
	sub    *mapNode
}

type mapNode struct {
	owner *entry // nil for the document root
	kids  map[string]*entry
}

func (e *entry) empty() bool {
	return len(e.reg) == 0 && len(e.ctr) == 0 && len(e.set) == 0 && (e.sub == nil || len(e.sub.kids) == 0)
}

func (e *entry) kind() Kind {
	switch {
	case e == nil:
		return KindNone
	case e.sub != nil && len(e.sub.kids) > 0:
		return KindMap
	case len(e.set) > 0:
		return KindSet
	case len(e.ctr) > 0:
		return KindCounter
	case len(e.reg) > 0:
		return KindRegister
	}
	return KindNone
}

func (e *entry) path() []string {
	var rev []string
	for x := e; x != nil; x = x.parent.owner {
		rev = append(rev, x.key)
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}

// loc is where a dot lives in a state.
type loc struct {
	e    *entry
	kind Kind
	elem string // set element, for KindSet
}

// State is a document: an observed-remove map whose values are registers,
// counters, sets and nested maps, with the causal context of everything it
// has seen. Every delta produced by a mutator is itself a State, and Merge is
// a join: commutative, associative and idempotent.
//
// A State is not safe for concurrent use.
type State struct {
	cc   *CausalContext
	root *mapNode
	idx  map[Dot]loc
}

// New returns an empty document state.
func New() *State {
	a := &struct {
		s    State
		cc   CausalContext
		root mapNode
	}{}
	a.cc.vv = VersionVector{}
	a.root.kids = map[string]*entry{}
	a.s = State{cc: &a.cc, root: &a.root, idx: map[Dot]loc{}}
	return &a.s
}

// Context returns the causal context of s. The caller must not modify it.
func (s *State) Context() *CausalContext { return s.cc }

// Dots returns the number of live dots in s (its metadata size in events).
func (s *State) Dots() int { return len(s.idx) }

// IsEmpty reports whether s holds no dots and an empty causal context.
func (s *State) IsEmpty() bool { return len(s.idx) == 0 && s.cc.dotCount() == 0 }

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	out := New()
	out.Merge(s)
	return out
}

// lookup returns the entry at path, or nil.
func (s *State) lookup(path []string) *entry {
	n := s.root
	var e *entry
	for i, k := range path {
		if n == nil {
			return nil
		}
		e = n.kids[k]
		if e == nil {
			return nil
		}
		if i < len(path)-1 {
			n = e.sub
		}
	}
	return e
}

// ensure returns the entry at path, creating entries and maps on the way.
func (s *State) ensure(path []string) *entry {
	n := s.root
	var e *entry
	for i, k := range path {
		e = n.kids[k]
		if e == nil {
			e = &entry{parent: n, key: k}
			n.kids[k] = e
		}
		if i < len(path)-1 {
			if e.sub == nil {
				e.sub = &mapNode{owner: e, kids: map[string]*entry{}}
			}
			n = e.sub
		}
	}
	return e
}

func (s *State) insertReg(e *entry, r regDot) {
	e.reg = append(e.reg, r)
	s.idx[r.dot] = loc{e: e, kind: KindRegister}
}

func (s *State) insertCtr(e *entry, c ctrDot) {
	e.ctr = append(e.ctr, c)
	s.idx[c.dot] = loc{e: e, kind: KindCounter}
}

func (s *State) insertElem(e *entry, elem string, d Dot) {
	if e.set == nil {
		e.set = map[string][]Dot{}
	}
	e.set[elem] = append(e.set[elem], d)
	s.idx[d] = loc{e: e, kind: KindSet, elem: elem}
}

// removeDot deletes d from the store and prunes emptied entries. It returns
// the entry that held it (nil when absent).
func (s *State) removeDot(d Dot) *entry {
	l, ok := s.idx[d]
	if !ok {
		return nil
	}
	delete(s.idx, d)
	s.removeAt(l, d)
	return l.e
}

// removeAt deletes d's write from location l (leaving the index alone)
// and prunes emptied entries.
func (s *State) removeAt(l loc, d Dot) {
	e := l.e
	switch l.kind {
	case KindRegister:
		for i := range e.reg {
			if e.reg[i].dot == d {
				e.reg = append(e.reg[:i], e.reg[i+1:]...)
				break
			}
		}
	case KindCounter:
		for i := range e.ctr {
			if e.ctr[i].dot == d {
				e.ctr = append(e.ctr[:i], e.ctr[i+1:]...)
				break
			}
		}
	case KindSet:
		ds := e.set[l.elem]
		for i := range ds {
			if ds[i] == d {
				ds = append(ds[:i], ds[i+1:]...)
				break
			}
		}
		if len(ds) == 0 {
			delete(e.set, l.elem)
		} else {
			e.set[l.elem] = ds
		}
	}
	s.prune(e)
}

// prune removes e and its ancestors while they hold nothing.
func (s *State) prune(e *entry) {
	for e != nil && e.empty() {
		p := e.parent
		if p.kids[e.key] == e {
			delete(p.kids, e.key)
		}
		e = p.owner
	}
}

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

// write is what one dot carries, for comparing two writes with one dot.
type write struct {
	kind Kind
	elem string // KindSet
	hlc  HLC    // KindRegister
	val  []byte // KindRegister
	n    int64  // KindCounter
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

// growMap returns a copy of m with room for n entries, so a large merge
// does not rehash the map again and again as it grows.
func growMap[K comparable, V any](m map[K]V, n int) map[K]V {
	out := make(map[K]V, n)
	for k, v := range m {
		out[k] = v
	}
	return out
}
