package crdt

// MaxPathDepth bounds the nesting of maps in a document, so that every state
// decodes within the codec's nesting limit.
const MaxPathDepth = 32

// entry is the value at one key of a map: one store per CRDT kind it has
// received (see kindStore, at and setAt). Normally one store is
// non-empty; concurrent writes of different kinds can fill several, and
// the visible kind is then the first of kindOrder: map > list > text >
// set > counter > register (see Kind resolution in doc.go). A later local write at the key
// clears the stores of the other kinds it observed.
type entry struct {
	parent *mapNode
	key    string
	// The stores: the first the key received, of kind k1, in v1 (most
	// keys only ever hold one kind), and any other in more, at index
	// kind-1 — so that an entry is small and holds few pointers.
	v1   kindStore
	more *[numKinds]kindStore
	sub  *mapNode // at(KindMap) as a map, for walking paths (see subMap)
	k1   Kind
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
	elem string // the store's sub-key: a set's element
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
	idx  dotIndex
	// side is what a state keeps while it merges, decodes and applies
	// transactions; nil until it first does (see notes), so that a delta
	// is small.
	side *stateSide
}

// stateSide is what a state keeps on the side of its content.
type stateSide struct {
	seqNotes
	// covered is applyOne's buffer for the dots an op covers, kept
	// between ops while small.
	covered []Dot
}

// seqNotes is what a state notes about its texts and lists while merges,
// decodes and transactions run, and what it counts of them.
type seqNotes struct {
	// edits, while a merge runs, collects the sequence patches it makes.
	edits *editLog
	// joining, while JoinDelta runs, joins sequence changes as changes.
	joining bool
	// unbounded, while MergeStored runs, holds sequence changes back past
	// their bound.
	unbounded bool
	// decodingState, while a whole state decodes, makes its sequences
	// Seqs (a delta's stay changes).
	decodingState bool
	// mayWant, unless wantChecked is unset, tells that a sequence may
	// hold back an insert for a collected element (WantsCollected).
	mayWant, wantChecked bool
	// lost counts what merges into the sequences dropped (SeqLost).
	lost uint64
	// refused, during a merge, collects the dots the sequences refused;
	// refusals counts the merges that refused some (SeqRefused).
	refused  *CausalContext
	refusals uint64
}

// notes returns what s keeps on the side, making it when it has none.
func (s *State) notes() *stateSide {
	if s.side == nil {
		s.side = &stateSide{}
	}
	return s.side
}

// edits returns the log collecting the patches of the merge or
// transaction running on s, or nil.
func (s *State) edits() *editLog {
	if s.side == nil {
		return nil
	}
	return s.side.edits
}

// New returns an empty document state.
func New() *State {
	a := &struct {
		s    State
		cc   CausalContext
		root mapNode
	}{}
	a.s = State{cc: &a.cc, root: &a.root}
	return &a.s
}

// Context returns the causal context of s. The caller must not modify it.
func (s *State) Context() *CausalContext { return s.cc }

// Dots returns the number of live dots in s (its metadata size in events).
func (s *State) Dots() int { return s.idx.len() }

// IsEmpty reports whether s holds no dots and an empty causal context.
func (s *State) IsEmpty() bool { return s.idx.len() == 0 && s.cc.dotCount() == 0 }

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
		e = n.kids.get(k)
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
		e = n.kids.get(k)
		if e == nil {
			e = &entry{parent: n, key: k}
			n.kids.put(k, e)
		}
		if i < len(path)-1 {
			n = e.subMap(0)
		}
	}
	return e
}

// ensureReg is ensure for a register write: a key it creates gets its
// register in the same allocation.
func (s *State) ensureReg(path []string) *entry {
	n := s.root
	if len(path) > 1 {
		n = s.ensure(path[:len(path)-1]).subMap(0)
	}
	k := path[len(path)-1]
	e := n.kids.get(k)
	if e == nil {
		x := &regEntry{e: entry{parent: n, key: k}}
		x.e.setAt(KindRegister, x.r.init())
		e = &x.e
		n.kids.put(k, e)
	}
	return e
}

// removeDot deletes d from the store and prunes emptied entries. It returns
// the entry that held it (nil when absent).
func (s *State) removeDot(d Dot) *entry {
	l, ok := s.idx.get(d)
	if !ok {
		return nil
	}
	s.idx.del(d)
	s.removeAt(l, d)
	return l.e
}

// removeAt deletes d's write from location l (leaving the index alone)
// and prunes emptied entries.
func (s *State) removeAt(l loc, d Dot) {
	l.e.at(l.kind).remove(d, l.elem)
	s.prune(l.e)
}

// prune removes e and its ancestors while they hold nothing.
func (s *State) prune(e *entry) {
	for e != nil && e.empty() {
		p := e.parent
		if p.kids.get(e.key) == e {
			p.kids.del(e.key)
		}
		e = p.owner
	}
}

// write is what one dot carries, for comparing two writes with one dot
// (compareWrites). Each kind fills the fields it has (kindStore.write).
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
