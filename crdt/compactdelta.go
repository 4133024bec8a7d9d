package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// The compact splice form of a delta: one change to one text or list,
// written without the document delta's wrapper (WIRE.md §11.5.7). A CBOR
// array, where the classic form (codec.go) is a map, so the first byte
// tells them apart:
//
//	compact = [head, path, c, ol, or, content]          head 0 text, 1 list: an insert
//	        | [head, path, c, ranges]                   head 2 text, 3 list: a delete
//	        | [head, path, c, ol, or, content, ranges]  head 4 text, 5 list: both
//	path    = [key...]                 1 to MaxPathDepth text strings
//	ref     = null | k | [replica, counter]
//	ranges  = [ref, n, ref, n, ...]    the deleted elements, ref never null
//
// The author (origin) is implicit, as in the classic form. An insert is
// one run of the author's elements c, c+1, ... holding content (a text
// string, or an array of byte strings each compact JSON), between its
// left origin ol and its right origin or (null: the start, the end); a
// delete has the author's dot c and deletes n elements from each ref. A
// delete and insert (a splice that does both) has the delete at c and the
// run from c+1. An unsigned ref k is the author's own element c − k
// (1 ≤ k < c); an array ref is another replica's element. The causal
// context is implied: exactly the dots the change carries. An encoder
// uses the form only when the delta is exactly such a change; a decoder
// refuses an encoding the encoder would not write (canonical), so that a
// signed payload has one meaning.

// Compact form heads.
const (
	compactInsert  = 0
	compactDelete  = 2
	compactReplace = 4
	compactHeads   = 6
)

// IsCompactDelta reports whether b is in the compact splice form (a CBOR
// array) rather than the classic one (a map). It looks at the first byte
// only: whether b decodes is DecodeDelta's to say.
func IsCompactDelta(b []byte) bool { return len(b) > 0 && b[0]>>5 == 4 }

// EncodeDeltaCompact returns the compact splice form of delta s of origin,
// and true, when s is one splice of one text or list (see above) and the
// form is shorter than EncodeDelta's (a change next to other replicas'
// elements, which names each of them in full, may not be); it returns nil
// and false otherwise. Its bytes decode (DecodeDelta) to what
// EncodeDelta's do.
func EncodeDeltaCompact(s *State, origin ReplicaID) ([]byte, bool) {
	b, foreign, ok := compactForm(s, origin)
	if !ok || foreign && len(b) >= len(EncodeDelta(s, origin)) {
		// Only a form naming other replicas (in full, where the classic
		// form names each once) can be the longer.
		return nil, false
	}
	return b, true
}

// compactForm returns the compact form of s, whatever its length, and
// whether it names other replicas.
func compactForm(s *State, origin ReplicaID) (b []byte, foreign, ok bool) {
	if origin == "" || s.idx.len() != 0 {
		return nil, false, false // creation dots or writes of other kinds
	}
	path, e, ok := compactTarget(s)
	if !ok {
		return nil, false, false
	}
	var v []any
	var lo, hi uint64
	switch sl := e.v1.(type) {
	case *seqSlot[rune]:
		v, lo, hi, foreign, ok = compactSeq(sl, origin, 0)
	case *seqSlot[json.RawMessage]:
		v, lo, hi, foreign, ok = compactSeq(sl, origin, 1)
	default:
		return nil, false, false
	}
	if !ok || !s.cc.isRange(origin, lo, hi) {
		return nil, false, false
	}
	v[1] = path
	b, err := encMode.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("crdt: encode compact delta: %v", err)) // plain types: cannot fail
	}
	return b, foreign, true
}

// compactTarget returns the path to the one entry below s's root, and the
// entry, when every map on the way holds one key and nothing else and the
// entry holds one store.
func compactTarget(s *State) ([]string, *entry, bool) {
	var path []string
	n := s.root
	for len(path) < MaxPathDepth {
		if n.kids.len() != 1 {
			return nil, nil, false
		}
		var k string
		var e *entry
		for k, e = range n.kids.all() {
		}
		path = append(path, k)
		if e.more != nil || e.v1 == nil {
			return nil, nil, false
		}
		if e.k1 != KindMap {
			return path, e, true
		}
		n = e.sub
	}
	return nil, nil, false
}

// compactSeq returns sl's change as the compact form (path left to the
// caller) and the interval of the author's counters it carries.
func compactSeq[V SeqValue](sl *seqSlot[V], origin ReplicaID, kind uint64) (v []any, lo, hi uint64, foreign, ok bool) {
	d := sl.delta
	if len(sl.made) != 0 || sl.seq != nil || d.IsEmpty() || d.dots != nil && d.dots.dotCount() != 0 || len(d.runs) > 1 || len(d.dels) > 1 {
		return nil, 0, 0, false, false
	}
	var run *seqRun[V]
	var del *seqDel
	if len(d.runs) == 1 {
		run = &d.runs[0]
	}
	if len(d.dels) == 1 {
		del = &d.dels[0]
	}
	own := func(c uint64) func(Dot) (any, bool) {
		return func(o Dot) (any, bool) {
			switch {
			case o.Counter == 0:
				return nil, o.Replica == ""
			case o.Replica != origin:
				foreign = true
				return []any{string(o.Replica), o.Counter}, o.Replica != ""
			case o.Counter < c:
				return c - o.Counter, true
			}
			return nil, false
		}
	}
	var ranges []any
	if del != nil {
		if del.by.Replica != origin || del.by.Counter == 0 || len(del.ranges) == 0 {
			return nil, 0, 0, false, false
		}
		ref := own(del.by.Counter)
		for _, rg := range del.ranges {
			r, ok := ref(rg.id)
			if !ok || r == nil || rg.n == 0 {
				return nil, 0, 0, false, false
			}
			ranges = append(ranges, r, rg.n)
		}
		lo, hi = del.by.Counter, del.by.Counter
	}
	if run != nil {
		if run.id.Replica != origin || run.del || run.n == 0 || uint64(len(run.vals)) != run.n ||
			del != nil && run.id.Counter != del.by.Counter+1 {
			return nil, 0, 0, false, false
		}
		ref := own(run.id.Counter)
		ol, okl := ref(run.ol)
		or, okr := ref(run.or)
		if !okl || !okr {
			return nil, 0, 0, false, false
		}
		var content any
		switch vs := any(run.vals).(type) {
		case []rune:
			content = string(vs)
		case []json.RawMessage:
			bs := make([][]byte, len(vs))
			for k, x := range vs {
				bs[k] = x
			}
			content = bs
		}
		if del == nil {
			return []any{compactInsert + kind, nil, run.id.Counter, ol, or, content}, run.id.Counter, run.id.Counter + run.n - 1, foreign, true
		}
		return []any{compactReplace + kind, nil, del.by.Counter, ol, or, content, ranges}, lo, run.id.Counter + run.n - 1, foreign, true
	}
	return []any{compactDelete + kind, nil, del.by.Counter, ranges}, lo, hi, foreign, true
}

// isRange reports whether c holds exactly r's counters lo..hi.
func (c *CausalContext) isRange(r ReplicaID, lo, hi uint64) bool {
	reps := c.replicas()
	return len(reps) == 1 && reps[0] == r && c.dotCount() == hi-lo+1 && c.containsRange(r, lo, hi)
}

// wCompactRef is a ref to another replica's element.
type wCompactRef struct {
	_ struct{} `cbor:",toarray"`
	R string
	C uint64
}

// decodeCompact decodes the compact form b of a delta of origin (not
// empty); lim has been checked against len(b).
func decodeCompact(b []byte, origin ReplicaID, lim Limits) (*State, error) {
	var top []cbor.RawMessage
	if err := decodeLimited(b, lim, &top); err != nil {
		return nil, err
	}
	dm, err := decModes.Get(lim)
	if err != nil {
		return nil, fmt.Errorf("%w: limits: %v", ErrMalformed, err)
	}
	if len(top) < 4 {
		return nil, fmt.Errorf("%w: compact delta of %d items", ErrMalformed, len(top))
	}
	var head, c uint64
	var path []string
	if err := dm.Unmarshal(top[0], &head); err != nil {
		return nil, fmt.Errorf("%w: compact delta head: %v", ErrMalformed, err)
	}
	if head >= compactHeads {
		return nil, fmt.Errorf("%w: compact delta head %d", ErrVersion, head)
	}
	if want := [...]int{6, 4, 7}[head/2]; len(top) != want {
		return nil, fmt.Errorf("%w: compact delta head %d with %d items, want %d", ErrMalformed, head, len(top), want)
	}
	if err := dm.Unmarshal(top[1], &path); err != nil || len(path) == 0 || len(path) > MaxPathDepth {
		return nil, fmt.Errorf("%w: compact delta path (%d keys): %v", ErrMalformed, len(path), err)
	}
	if err := dm.Unmarshal(top[2], &c); err != nil || c == 0 || c > MaxCounter {
		return nil, fmt.Errorf("%w: compact delta counter %d: %v", ErrMalformed, c, err)
	}
	var s *State
	if head%2 == 0 {
		s, err = decodeCompactSeq[rune](dm, top, head, path, c, origin)
	} else {
		s, err = decodeCompactSeq[json.RawMessage](dm, top, head, path, c, origin)
	}
	if err != nil {
		return nil, err
	}
	if again, _, ok := compactForm(s, origin); !ok || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: a compact delta not in canonical form", ErrMalformed)
	}
	return s, nil
}

func decodeCompactSeq[V SeqValue](dm cbor.DecMode, top []cbor.RawMessage, head uint64, path []string, c uint64, origin ReplicaID) (*State, error) {
	ref := func(x cbor.RawMessage, base uint64) (Dot, error) {
		switch {
		case len(x) == 1 && x[0] == 0xf6:
			return Dot{}, nil
		case len(x) > 0 && x[0]>>5 == 0:
			var k uint64
			if err := dm.Unmarshal(x, &k); err != nil {
				return Dot{}, fmt.Errorf("%w: compact delta ref: %v", ErrMalformed, err)
			}
			if k == 0 || k >= base {
				return Dot{}, fmt.Errorf("%w: compact delta ref %d from %d", ErrMalformed, k, base)
			}
			return Dot{origin, base - k}, nil
		}
		var w wCompactRef
		if err := dm.Unmarshal(x, &w); err != nil {
			return Dot{}, fmt.Errorf("%w: compact delta ref: %v", ErrMalformed, err)
		}
		if w.R == "" || ReplicaID(w.R) == origin || w.C == 0 || w.C > MaxCounter {
			return Dot{}, fmt.Errorf("%w: compact delta ref %q:%d", ErrMalformed, w.R, w.C)
		}
		return Dot{ReplicaID(w.R), w.C}, nil
	}
	d := &SeqDelta[V]{}
	lo, hi := c, c
	if head >= compactDelete {
		var rs []cbor.RawMessage
		if err := dm.Unmarshal(top[len(top)-1], &rs); err != nil {
			return nil, fmt.Errorf("%w: compact delta ranges: %v", ErrMalformed, err)
		}
		if len(rs) == 0 || len(rs)%2 != 0 {
			return nil, fmt.Errorf("%w: compact delta of %d range items", ErrMalformed, len(rs))
		}
		del := seqDel{by: Dot{origin, c}}
		for k := 0; k < len(rs); k += 2 {
			id, err := ref(rs[k], c)
			if err != nil {
				return nil, err
			}
			var n uint64
			if err := dm.Unmarshal(rs[k+1], &n); err != nil || id.Counter == 0 || n == 0 || n > MaxCounter || id.Counter > MaxCounter-n+1 {
				return nil, fmt.Errorf("%w: compact delta range %d+%d: %v", ErrMalformed, id.Counter, n, err)
			}
			del.ranges = append(del.ranges, seqRange{id, n})
		}
		d.dels = append(d.dels, del)
	}
	if head < compactDelete || head >= compactReplace {
		ctr := c
		if head >= compactReplace {
			if c >= MaxCounter {
				return nil, fmt.Errorf("%w: compact delta counter %d", ErrMalformed, c)
			}
			ctr = c + 1
		}
		run := seqRun[V]{id: Dot{origin, ctr}}
		var err error
		if run.ol, err = ref(top[3], ctr); err != nil {
			return nil, err
		}
		if run.or, err = ref(top[4], ctr); err != nil {
			return nil, err
		}
		if err := decodeRunContent(dm, top[5], &run); err != nil {
			return nil, fmt.Errorf("%w: compact delta content", err)
		}
		if run.del || run.n == 0 || ctr > MaxCounter-run.n+1 {
			return nil, fmt.Errorf("%w: compact delta run %d+%d", ErrMalformed, ctr, run.n)
		}
		d.runs = append(d.runs, run)
		hi = ctr + run.n - 1
	}
	s := New()
	s.cc.AddRange(origin, lo, hi)
	seqSlotOf[V](s.ensure(path)).delta = d
	return s, nil
}
