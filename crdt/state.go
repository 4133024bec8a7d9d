package crdt

import "encoding/json"

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
	// KindText is a sequence of Unicode code points (see Seq).
	KindText
	// KindList is a sequence of JSON values (see Seq).
	KindList
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
	case KindText:
		return "text"
	case KindList:
		return "list"
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
// several, and the visible kind is then the highest of map > list > text >
// set > counter > register (see Kind resolution in doc.go). A later local write at the key
// clears the slots of the other kinds it observed.
type entry struct {
	parent *mapNode
	key    string
	reg    []regDot
	ctr    []ctrDot
	set    map[string][]Dot
	sub    *mapNode
	text   *seqSlot[rune]
	list   *seqSlot[json.RawMessage]
}

type mapNode struct {
	owner *entry // nil for the document root
	kids  map[string]*entry
}

func (e *entry) empty() bool {
	return len(e.reg) == 0 && len(e.ctr) == 0 && len(e.set) == 0 && (e.sub == nil || len(e.sub.kids) == 0) &&
		e.text.empty() && e.list.empty()
}

func (e *entry) kind() Kind {
	switch {
	case e == nil:
		return KindNone
	case e.sub != nil && len(e.sub.kids) > 0:
		return KindMap
	case e.list.visible():
		return KindList
	case e.text.visible():
		return KindText
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
	// edits, while a merge runs, collects the sequence patches it makes.
	edits *[]SeqPatch
	// joining, while JoinDelta runs, joins sequence changes as changes.
	joining bool
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
	case KindText:
		e.text.unmake(d)
	case KindList:
		e.list.unmake(d)
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

// write is what one dot carries, for comparing two writes with one dot.
type write struct {
	kind Kind
	elem string // KindSet
	hlc  HLC    // KindRegister
	val  []byte // KindRegister
	n    int64  // KindCounter
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
