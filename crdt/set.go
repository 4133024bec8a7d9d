package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// The set kind: an add-wins observed-remove set of JSON scalars.

// set is the set kind's store: each element (compact JSON) with the dots
// of the adds that hold it. State.idx locates a dot by its element (elem).
type set struct {
	elems map[string][]Dot
}

var _ kindStore = (*set)(nil)

// set returns e's set, or nil.
func (e *entry) set() *set {
	s, _ := e.at(KindSet).(*set)
	return s
}

func (s *State) insertElem(e *entry, elem string, d Dot) {
	st := e.set()
	if st == nil {
		st = &set{elems: map[string][]Dot{}}
		e.setAt(KindSet, st)
	}
	st.elems[elem] = append(st.elems[elem], d)
	s.idx.put(d, loc{e: e, kind: KindSet, elem: elem})
}

func (st *set) empty() bool { return len(st.elems) == 0 }

func (st *set) visible() bool { return !st.empty() }

// covered: adding or removing an element replaces the adds of that element
// only; every other write at or below the key replaces the whole set.
func (st *set) covered(out []Dot, op Op, _ ReplicaID, below bool) []Dot {
	if op.Kind == OpRemove || op.Kind == OpAdd && !below {
		return append(out, st.elems[string(op.Value)]...)
	}
	for _, ds := range st.elems {
		out = append(out, ds...)
	}
	return out
}

func (st *set) write(_ Dot, elem string) write { return write{kind: KindSet, elem: elem} }

func (st *set) remove(d Dot, elem string) {
	ds := st.elems[elem]
	for i := range ds {
		if ds[i] == d {
			ds = append(ds[:i], ds[i+1:]...)
			break
		}
	}
	if len(ds) == 0 {
		delete(st.elems, elem)
	} else {
		st.elems[elem] = ds
	}
}

// mergeInto adds the adds s has not seen (see register.mergeInto).
func (st *set) mergeInto(s *State, de *entry, m merger) bool {
	added := false
	for el, ds := range st.elems {
		for _, d := range ds {
			if s.unseen(d) {
				s.insertElem(de, el, d)
				added = true
			} else if old, ok := s.yields(d, de, write{kind: KindSet, elem: el}, m); ok {
				s.insertElem(de, el, d)
				s.removeAt(old, d)
				added = true
			}
		}
	}
	return added
}

// writeJSON writes the elements as an array in scalarLess order.
func (st *set) writeJSON(buf *bytes.Buffer) {
	elems := make([]string, 0, len(st.elems))
	for el := range st.elems {
		elems = append(elems, el)
	}
	sort.Slice(elems, func(i, j int) bool { return scalarLess(elems[i], elems[j]) })
	buf.WriteByte('[')
	for i, el := range elems {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(el)
	}
	buf.WriteByte(']')
}

// scalarRank orders JSON scalars by type: null, false, true, numbers, strings.
func scalarRank(s string) int {
	switch {
	case s == "null":
		return 0
	case s == "false":
		return 1
	case s == "true":
		return 2
	case len(s) > 0 && s[0] == '"':
		return 4
	}
	return 3
}

// scalarLess orders set elements (compact JSON scalars) for the view.
func scalarLess(a, b string) bool {
	ra, rb := scalarRank(a), scalarRank(b)
	if ra != rb {
		return ra < rb
	}
	switch ra {
	case 3:
		fa, ea := strconv.ParseFloat(a, 64)
		fb, eb := strconv.ParseFloat(b, 64)
		if ea == nil && eb == nil && fa != fb {
			return fa < fb
		}
	case 4:
		var sa, sb string
		if json.Unmarshal([]byte(a), &sa) == nil && json.Unmarshal([]byte(b), &sb) == nil && sa != sb {
			return sa < sb
		}
	}
	return a < b
}

// wSet is a set encoded: element → its dots as flat (replica index,
// counter) pairs, sorted.
type wSet map[string][]uint64

func (st *set) encode(we *wEntry, index map[ReplicaID]uint64, _ ReplicaID) {
	if len(st.elems) == 0 {
		return
	}
	we.Set = make(wSet, len(st.elems))
	for el, ds := range st.elems {
		pairs := make([][2]uint64, len(ds))
		for i, d := range ds {
			pairs[i] = [2]uint64{index[d.Replica], d.Counter}
		}
		sort.Slice(pairs, func(i, j int) bool {
			return pairs[i][0] < pairs[j][0] || pairs[i][0] == pairs[j][0] && pairs[i][1] < pairs[j][1]
		})
		flat := make([]uint64, 0, 2*len(pairs))
		for _, p := range pairs {
			flat = append(flat, p[0], p[1])
		}
		we.Set[el] = flat
	}
}

func (w *wSet) decode(at *decodeAt) error {
	for el, flat := range *w {
		if c, err := compactScalar(json.RawMessage(el)); err != nil || string(c) != el || len(flat) == 0 || len(flat)%2 != 0 {
			return fmt.Errorf("%w: bad set element %q", ErrMalformed, el)
		}
		for j := 0; j < len(flat); j += 2 {
			d, err := at.dot(flat[j], flat[j+1])
			if err != nil {
				return err
			}
			at.s.insertElem(at.entry(), el, d)
		}
	}
	return nil
}

// splitCost: the element, when the piece does not hold it yet, and the dot.
func (st *set) splitCost(sp *splitter, in *entry, d Dot, elem string) (int, bool) {
	var held *set
	if in != nil {
		held = in.set()
	}
	cost, ok := 0, true
	n := 0
	if held != nil {
		n = len(held.elems[elem])
	}
	if n == 0 {
		k := 0
		if held != nil {
			k = len(held.elems)
		}
		cost, ok = sp.slot(k)
		cost += strLen(len(elem)) + 1
	}
	cost += grow(2*n) + grow(2*n+1) + sp.replicaLen(d) + uintLen(d.Counter)
	return cost, ok && 2*n+2 <= sp.maxElems
}

func (st *set) splitAdd(p *State, in *entry, d Dot, elem string) { p.insertElem(in, elem, d) }
