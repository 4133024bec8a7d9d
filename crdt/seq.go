// Sequences: the design of Seq, Concord's CRDT for lists and text.
//
// # Ordering
//
// Seq is FugueMax (Weidner, Gentle, Kleppmann, "The Art of the Fugue:
// Minimizing Interleaving in Collaborative Text Editing", 2023). A local
// insert goes right before the next visible element (after any tombstones
// before it) and records two origins: the element right before it then
// (left origin, possibly a tombstone) and the one right after (right
// origin). In Fugue's tree these make the new element the right child of
// its left origin, or the left child of its right origin when that is the
// left origin's descendant. Siblings on the left are ordered by replica, on
// the right by the reverse order of their right origins, then by replica
// (FugueMax). Remote inserts are placed by the origin scan of seqmerge.go,
// which gives FugueMax's order (seq_model_test.go checks it against a
// tree-based FugueMax on random concurrent histories). Words typed
// concurrently at one place never interleave, forwards or backwards.
//
// # Runs, tree, index
//
// An element's ID is a Dot of its author: elements share a causal context
// with deletes (and, later, with a document). A run of elements typed one
// after the other by one author — counters c..c+n-1, each inserted right
// after the previous one with the same right origin — is one item, in
// memory, in deltas and in the encoding; inserting or deleting inside it
// splits it (like Yjs items), and typing on, or merging a remote
// keystroke that continues it, grows it. Items are kept in document order
// in a B-tree whose nodes count visible and all elements (seqtree.go), so
// index → element and element → index take O(log n); an ID finds its item
// through a per-replica sorted index of item starts (seqindex.go).
//
// # Deltas and merging
//
// Insert and Delete return deltas (SeqDelta): the inserted run with its
// origins, or a delete's ID ranges and its dot — a delete takes one dot of
// its replica, so version vectors tell when it has been seen everywhere.
// Merge integrates runs whose origins are here (in an order where origins
// come first), holds back the rest, and applies deletes of elements it
// holds; held-back changes are bounded and retried as what they wait for
// arrives. Merging is idempotent, commutative and associative; Delta
// returns a whole state as a delta (tombstone runs included) for
// anti-entropy. Merge returns the patches (index, deleted, inserted) of
// what changed, in order; a local op's patch is the op itself.
//
// # Encoding
//
// EncodeSeq writes the elements in document order as canonical runs, with
// packed varint columns, each deflated when it is 256 bytes or more
// (seqcodec.go), and only the visible values: the B4 trace's final state
// (104,852 code points, 77,463 tombstones) takes 51,808 bytes (0.49× the
// text; 143,433 undeflated), decoded in about 10-14 ms on a loaded
// machine. A keystroke's delta (EncodeSeqDelta) is 18 bytes.
//
// # Garbage collection
//
// GC (seqgc.go) drops tombstones below a floor every replica has passed
// that nothing kept refers to; the floor's second condition (no insert
// still to come names them) is the caller's.

package crdt

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// SeqValue is what a Seq holds: Unicode code points for text, compact
// JSON values for lists.
type SeqValue interface {
	rune | json.RawMessage
}

// Text is a sequence of Unicode code points.
type Text = Seq[rune]

// List is a sequence of JSON values.
type List = Seq[json.RawMessage]

var (
	// ErrSeqIndex is returned for an index or a range outside a sequence.
	ErrSeqIndex = errors.New("crdt: sequence index out of range")
	// ErrSeqCursor is returned by IndexOf for an element ID the sequence
	// does not hold.
	ErrSeqCursor = errors.New("crdt: unknown sequence element")
)

// SeqConfig configures a Seq.
type SeqConfig struct {
	// MaxPending bounds the elements of remote inserts and deletes held
	// back until what they refer to arrives. A merge that would hold more
	// refuses what it would hold (counted in SeqStats.Refused); its dots
	// are not recorded in the causal context, so it merges when sent
	// again. What was held before stays. Default 1<<16.
	MaxPending int
}

// DefaultSeqConfig returns the default configuration.
func DefaultSeqConfig() SeqConfig { return SeqConfig{MaxPending: 1 << 16} }

// Seq is a delta-state sequence CRDT for text and lists: FugueMax
// (Weidner, Gentle, Kleppmann, "The Art of the Fugue", 2023), which never
// interleaves the elements of two runs typed concurrently at one place,
// forwards or backwards. See the design notes at the top of seq.go, and
// seqmerge.go for the ordering rule.
//
// Every element has an ID, a Dot of its author; a run of elements typed one
// after the other by one author is stored, sent and encoded as one item.
// Deletes leave tombstones, which stay as anchors for concurrent inserts
// until GC drops them.
//
// A Seq is not safe for concurrent use.
type Seq[V SeqValue] struct {
	t       stree[V]
	reps    []ReplicaID
	repIdx  map[ReplicaID]uint32
	idx     []repIndex[V]
	cc      *CausalContext // every dot integrated: elements and deletes
	delcc   *CausalContext // dots that are not elements: deletes', collected elements'
	base    *CausalContext // stamp of tombstones whose delete dot is unknown
	pend    seqPending[V]
	refused *CausalContext // dots of changes refused (see Merge), until taken
	// unbounded, during a merge, holds back past MaxPending (replaying
	// what was accepted once: State.MergeStored).
	unbounded bool
	cfg       SeqConfig
	stats     SeqStats
	// orphaned tells that an insert may be held back for a collected
	// origin (merges then look for what would bring it back: seqrepair.go).
	orphaned bool
	// stateDots, while a whole state merges, are its delete dots.
	stateDots *CausalContext
}

// SeqStats counts what a Seq did that is not visible in its value.
type SeqStats struct {
	// Orphans counts the inserts held back because they name an element
	// this replica has garbage-collected (see GC), until a whole state
	// brings it back (Revived).
	Orphans uint64
	// Revived counts the collected elements integrated again, as
	// tombstones, because a held-back insert named them.
	Revived uint64
	// Refused counts the held-back changes Merge refused because holding
	// them would exceed MaxPending: their dots stay out of the context
	// (and the caller's: see State.SeqRefused), so they merge when sent
	// again.
	Refused uint64
	// Invalid counts the inserts dropped because their right origin is
	// not after their left one (only an author that signed two different
	// runs with one ID, or a forged delta, makes one).
	Invalid uint64
	// Collected counts the tombstones dropped by GC.
	Collected uint64
}

// NewSeq returns an empty sequence.
func NewSeq[V SeqValue](cfg SeqConfig) *Seq[V] {
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultSeqConfig().MaxPending
	}
	s := &Seq[V]{
		repIdx: map[ReplicaID]uint32{},
		cc:     NewCausalContext(),
		delcc:  NewCausalContext(),
		base:   NewCausalContext(),
		cfg:    cfg,
	}
	s.t.init()
	s.t.onMove = func(it *sitem[V], to *snode[V]) { s.idx[it.rep].put(it.ctr, to) }
	return s
}

// NewText returns an empty text with the default configuration.
func NewText() *Text { return NewSeq[rune](DefaultSeqConfig()) }

// NewList returns an empty list with the default configuration.
func NewList() *List { return NewSeq[json.RawMessage](DefaultSeqConfig()) }

// Len returns the number of visible elements.
func (s *Seq[V]) Len() int { return s.t.root.vis }

// Tombstones returns the number of deleted elements kept as anchors.
func (s *Seq[V]) Tombstones() int { return s.t.root.tot - s.t.root.vis }

// Items returns the number of items (runs) the sequence is stored in.
func (s *Seq[V]) Items() int {
	n := 0
	for i := range s.idx {
		n += s.idx[i].count()
	}
	return n
}

// Context returns the causal context: the IDs of every element and the
// dots of every delete integrated. The caller must not modify it.
func (s *Seq[V]) Context() *CausalContext { return s.cc }

// Stats returns the counters of s.
func (s *Seq[V]) Stats() SeqStats { return s.stats }

// Values returns the visible elements in order. List values are shared
// with s: the caller must not modify them.
func (s *Seq[V]) Values() []V {
	out := make([]V, 0, s.Len())
	s.t.each(func(it *sitem[V]) bool {
		if !it.del {
			out = append(out, it.vals...)
		}
		return true
	})
	return out
}

// String returns a text as a string and a list as a JSON array.
func (s *Seq[V]) String() string {
	var b strings.Builder
	switch t := any(s).(type) {
	case *Text:
		b.Grow(t.Len())
		t.t.each(func(it *sitem[rune]) bool {
			if !it.del {
				for _, r := range it.vals {
					b.WriteRune(r)
				}
			}
			return true
		})
	case *List:
		b.WriteByte('[')
		i := 0
		t.t.each(func(it *sitem[json.RawMessage]) bool {
			if !it.del {
				for _, v := range it.vals {
					if i > 0 {
						b.WriteByte(',')
					}
					b.Write(v)
					i++
				}
			}
			return true
		})
		b.WriteByte(']')
	}
	return b.String()
}

func (s *Seq[V]) intern(r ReplicaID) uint32 {
	if i, ok := s.repIdx[r]; ok {
		return i
	}
	i := uint32(len(s.reps))
	s.reps = append(s.reps, r)
	s.repIdx[r] = i
	s.idx = append(s.idx, repIndex[V]{})
	return i
}

// dot converts an internal ID to a Dot (the zero Dot for none).
func (s *Seq[V]) dot(id sid) Dot {
	if id.none() {
		return Dot{}
	}
	return Dot{s.reps[id.r], id.c}
}

// sidOf converts a Dot to an internal ID, interning its replica.
func (s *Seq[V]) sidOf(d Dot) sid {
	if d.Counter == 0 {
		return sid{}
	}
	return sid{s.intern(d.Replica), d.Counter}
}

// locate returns the item holding element id and the offset in it.
func (s *Seq[V]) locate(id sid) (*snode[V], int, int, bool) {
	if id.none() || int(id.r) >= len(s.idx) {
		return nil, 0, 0, false
	}
	l := s.idx[id.r].find(id.c)
	if l == nil {
		return nil, 0, 0, false
	}
	for j := range l.items {
		if it := &l.items[j]; it.has(id.r, id.c) {
			return l, j, int(id.c - it.ctr), true
		}
	}
	return nil, 0, 0, false
}

// place inserts item it before item j of leaf l and indexes it.
func (s *Seq[V]) place(l *snode[V], j int, it sitem[V]) (*snode[V], int) {
	l, j = s.t.insert(l, j, it)
	s.idx[it.rep].put(it.ctr, l)
	return l, j
}

// split cuts item j of leaf l before offset off (0 < off < n) and returns
// where its two halves are.
func (s *Seq[V]) split(l *snode[V], j, off int) (ll *snode[V], lj int, rl *snode[V], rj int) {
	it := &l.items[j]
	right := sitem[V]{
		ol:  sid{it.rep, it.ctr + uint64(off) - 1},
		or:  it.or,
		st:  it.st,
		ctr: it.ctr + uint64(off),
		n:   it.n - off,
		rep: it.rep,
		del: it.del,
	}
	if !it.del {
		right.vals = it.vals[off:it.n:it.n]
		it.vals = it.vals[:off:off]
	}
	it.n = off
	s.t.add(l, -right.vis(), -right.n)
	rl, rj = s.place(l, j+1, right)
	if rj > 0 {
		return rl, rj - 1, rl, rj
	}
	ll, lj = s.t.prevItem(rl, rj)
	return ll, lj, rl, rj
}

// mergeable reports whether b continues a (the next counters, inserted
// right after it) and both can be one item.
func (s *Seq[V]) mergeable(a, b *sitem[V]) bool {
	if a.rep != b.rep || a.del != b.del || a.ctr+uint64(a.n) != b.ctr || b.ol != a.last() || b.or != a.or {
		return false
	}
	return !a.del || a.st.r == b.st.r && (a.st.c == 0) == (b.st.c == 0)
}

// coalesce joins item j of leaf l with its neighbours in the same leaf when
// they are one run.
func (s *Seq[V]) coalesce(l *snode[V], j int) {
	if j+1 < len(l.items) && s.mergeable(&l.items[j], &l.items[j+1]) {
		s.absorb(l, j)
	}
	if j > 0 && s.mergeable(&l.items[j-1], &l.items[j]) {
		s.absorb(l, j-1)
	}
}

// absorb appends item j+1 of leaf l to item j.
func (s *Seq[V]) absorb(l *snode[V], j int) {
	a, b := &l.items[j], &l.items[j+1]
	if !a.del {
		a.vals = append(a.vals[:a.n:a.n], b.vals...)
	}
	a.st.c = max(a.st.c, b.st.c) // a conservative stamp for both
	a.n += b.n
	s.idx[b.rep].del(b.ctr)
	b.n, b.del = 0, true // the counts stay: a now holds b's elements
	s.t.remove(l, j+1)
}

// checkLocal validates the author of a local op.
func checkLocal(replica ReplicaID) error {
	if replica == "" {
		return fmt.Errorf("%w: empty replica", ErrInvalidOp)
	}
	return nil
}

// copyValues returns a copy of vals that the sequence owns (in buf when it
// is long enough), list values in compact form.
func copyValues[V SeqValue](buf, vals []V) ([]V, error) {
	out := buf
	if len(out) != len(vals) {
		out = make([]V, len(vals))
	}
	copy(out, vals)
	if js, ok := any(out).([]json.RawMessage); ok {
		for i, v := range js {
			c, err := compactJSON(v)
			if err != nil {
				return nil, fmt.Errorf("%w: value %d: %w", ErrInvalidValue, i, err)
			}
			js[i] = append(json.RawMessage(nil), c...)
		}
	}
	if rs, ok := any(out).([]rune); ok {
		for i, r := range rs {
			if !validRune(r) {
				return nil, fmt.Errorf("%w: value %d: %U is not a Unicode scalar value", ErrInvalidUTF8, i, r)
			}
		}
	}
	return out, nil
}

func validRune(r rune) bool { return r >= 0 && r <= 0x10ffff && (r < 0xd800 || r > 0xdfff) }
