package crdt

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// drun is a canonical run while decoding.
type drun struct {
	rep    uint32
	ctr, n uint64
	ol, or sid
	segs   []uint64
	olRun  int    // the run holding ol, or -1
	orK    uint64 // forward reference, resolved once every run is read
	orOff  uint64
	orMode byte
}

// DecodeSeq decodes a sequence written by EncodeSeq. Input that is not a
// valid encoding is refused with an error wrapping ErrMalformed,
// ErrTooLarge or ErrVersion; the document order of the elements is taken
// as written (it is not re-derived from their origins).
func DecodeSeq[V SeqValue](b []byte, lim Limits) (*Seq[V], error) {
	if lim.MaxBytes <= 0 {
		lim = DefaultLimits()
	}
	budget := lim.MaxBytes
	return decodeSeq[V](b, lim, &budget)
}

// decodeSeq is DecodeSeq with the inflation budget given: compressed
// columns may inflate to at most *budget bytes, which is decreased.
func decodeSeq[V SeqValue](b []byte, lim Limits, budget *int) (*Seq[V], error) {
	var w wSeq
	if err := decodeLimited(b, lim, &w); err != nil {
		return nil, err
	}
	if w.V != SeqFormatVersion {
		return nil, fmt.Errorf("%w: sequence version %d", ErrVersion, w.V)
	}
	if w.Kind != seqKind[V]() {
		return nil, fmt.Errorf("%w: sequence of kind %d, want %d", ErrMalformed, w.Kind, seqKind[V]())
	}
	if err := w.unzip(budget); err != nil {
		return nil, err
	}
	table, err := decodeTable("", w.Table)
	if err != nil {
		return nil, err
	}
	cc, err := decodeContext(w.VV, w.Cloud, table)
	if err != nil {
		return nil, err
	}
	if w.Runs != uint64(len(w.Hdr)) {
		return nil, fmt.Errorf("%w: %d runs, %d headers", ErrMalformed, w.Runs, len(w.Hdr))
	}
	s := NewSeq[V](DefaultSeqConfig())
	for _, r := range table {
		s.intern(r)
	}
	runs, err := decodeRuns(&w, len(table))
	if err != nil {
		return nil, err
	}
	order, err := checkElements(runs, table, cc)
	if err != nil {
		return nil, err
	}
	items, err := seqItems[V](runs, &w)
	if err != nil {
		return nil, err
	}
	s.cc = cc
	s.t.build(items)
	s.buildIndex()
	s.delcc = deleteDots(cc, runs, order, table)
	s.orphaned = true // what it holds back may name collected elements (seqrepair.go)
	s.base = s.delcc.Clone()
	return s, nil
}

// decodeRuns reads the columns into runs and resolves their origins.
func decodeRuns(w *wSeq, nreps int) ([]drun, error) {
	hdr := w.Hdr
	rep := varints{b: w.Rep, name: "rep"}
	ctr := varints{b: w.Ctr, name: "ctr"}
	ln := varints{b: w.Len, name: "len"}
	refs := varints{b: w.Refs, name: "refs"}
	dels := varints{b: w.Dels, name: "dels"}
	runs := make([]drun, len(hdr))
	lastEnd := make([]uint64, nreps)
	cur := uint64(0)
	for i, h := range hdr {
		r := &runs[i]
		olMode, orMode, delMode := h&3, h>>2&7, h>>5&3
		if orMode > 4 {
			return nil, fmt.Errorf("%w: run %d: bad header %#x", ErrMalformed, i, h)
		}
		if h&hdrRep != 0 {
			nr := rep.next()
			if nr >= uint64(nreps) || nr == cur && i > 0 || i == 0 && nr == 0 {
				return nil, fmt.Errorf("%w: run %d: bad replica index %d", ErrMalformed, i, nr)
			}
			cur = nr
		}
		if nreps == 0 {
			return nil, fmt.Errorf("%w: runs without replicas", ErrMalformed)
		}
		r.rep = uint32(cur)
		r.olRun = -1
		switch olMode {
		case hdrOLPrev:
			if i == 0 {
				return nil, fmt.Errorf("%w: run 0: left origin before the start", ErrMalformed)
			}
			p := &runs[i-1]
			r.ol, r.olRun = sid{p.rep, p.ctr + p.n - 1}, i-1
		case hdrOLRef:
			k, off := refs.ref()
			if k >= uint64(i) {
				return nil, fmt.Errorf("%w: run %d: left origin %d runs back", ErrMalformed, i, k)
			}
			r.olRun = int(uint64(i) - 1 - k)
			p := &runs[r.olRun]
			if off >= p.n {
				return nil, fmt.Errorf("%w: run %d: left origin offset %d", ErrMalformed, i, off)
			}
			r.ol = sid{p.rep, p.ctr + p.n - 1 - off}
		case hdrOLSame:
			if i == 0 || runs[i-1].olRun < 0 {
				return nil, fmt.Errorf("%w: run %d: no previous left origin", ErrMalformed, i)
			}
			r.ol, r.olRun = runs[i-1].ol, runs[i-1].olRun
		}
		dc := unzigzag(ctr.next())
		if dc > MaxCounter || dc < -MaxCounter {
			return nil, fmt.Errorf("%w: run %d: counter delta %d", ErrMalformed, i, dc)
		}
		start := int64(ctrBase(r.rep, r.ol, lastEnd)) + dc
		r.n = ln.next()
		if start < 1 || r.n == 0 || r.n > MaxCounter || uint64(start) > MaxCounter-r.n+1 {
			return nil, fmt.Errorf("%w: run %d: bad counters %d+%d", ErrMalformed, i, start, r.n)
		}
		r.ctr = uint64(start)
		lastEnd[cur] = r.ctr + r.n - 1
		r.orMode = orMode
		if orMode == hdrORRef {
			r.orK, r.orOff = refs.ref()
		}
		switch delMode {
		case hdrVisible:
			r.segs = []uint64{r.n}
		case hdrDeleted:
			r.segs = []uint64{0, r.n}
		case hdrTail:
			k := dels.next()
			if k == 0 || k >= r.n {
				return nil, fmt.Errorf("%w: run %d: deleted tail of %d", ErrMalformed, i, k)
			}
			r.segs = []uint64{r.n - k, k}
		default:
			m := dels.next()
			if m < 3 || m > r.n+1 || dels.err != nil {
				return nil, fmt.Errorf("%w: run %d: %d deletion segments", ErrMalformed, i, m)
			}
			r.segs = make([]uint64, m)
			sum := uint64(0)
			for k := range r.segs {
				r.segs[k] = dels.next()
				if k > 0 && r.segs[k] == 0 || r.segs[k] > r.n {
					return nil, fmt.Errorf("%w: run %d: empty or long deletion segment", ErrMalformed, i)
				}
				sum += r.segs[k]
			}
			if sum != r.n {
				return nil, fmt.Errorf("%w: run %d: deletion segments cover %d of %d", ErrMalformed, i, sum, r.n)
			}
		}
		for _, c := range []*varints{&rep, &ctr, &ln, &refs, &dels} {
			if c.err != nil {
				return nil, c.err
			}
		}
	}
	for _, c := range []*varints{&rep, &ctr, &ln, &refs, &dels} {
		if err := c.done(); err != nil {
			return nil, err
		}
	}
	for i := range runs {
		r := &runs[i]
		switch r.orMode {
		case hdrORNext:
			if i+1 == len(runs) {
				return nil, fmt.Errorf("%w: run %d: right origin past the end", ErrMalformed, i)
			}
			r.or = sid{runs[i+1].rep, runs[i+1].ctr}
		case hdrORPrev:
			if i == 0 {
				return nil, fmt.Errorf("%w: run 0: no previous right origin", ErrMalformed)
			}
			r.or = runs[i-1].or
		case hdrORParent:
			if r.olRun < 0 {
				return nil, fmt.Errorf("%w: run %d: no left origin's right origin", ErrMalformed, i)
			}
			r.or = runs[r.olRun].or
		case hdrORRef:
			if r.orK >= uint64(len(runs)-i-1) {
				return nil, fmt.Errorf("%w: run %d: right origin %d runs ahead", ErrMalformed, i, r.orK)
			}
			p := &runs[uint64(i)+1+r.orK]
			if r.orOff >= p.n {
				return nil, fmt.Errorf("%w: run %d: right origin offset %d", ErrMalformed, i, r.orOff)
			}
			r.or = sid{p.rep, p.ctr + r.orOff}
		}
	}
	return runs, nil
}

// checkElements refuses element IDs outside the context or held twice. It
// returns the runs' indices sorted by replica, then counter.
func checkElements(runs []drun, table []ReplicaID, cc *CausalContext) ([]int, error) {
	byRep := make([][]int, len(table))
	for i := range runs {
		r := &runs[i]
		var missing bool
		missingSpans(cc, table[r.rep], r.ctr, r.ctr+r.n-1, func(a, b uint64) { missing = true })
		if missing {
			return nil, fmt.Errorf("%w: run %d: elements outside the causal context", ErrMalformed, i)
		}
		byRep[r.rep] = append(byRep[r.rep], i)
	}
	order := make([]int, 0, len(runs))
	for _, l := range byRep {
		slices.SortFunc(l, func(a, b int) int { return cmp.Compare(runs[a].ctr, runs[b].ctr) })
		for k := 1; k < len(l); k++ {
			p, q := &runs[l[k-1]], &runs[l[k]]
			if p.ctr+p.n > q.ctr {
				return nil, fmt.Errorf("%w: element %s:%d appears twice", ErrMalformed, table[q.rep], q.ctr)
			}
		}
		order = append(order, l...)
	}
	return order, nil
}

// seqItems cuts the runs into items (one per deletion segment) and gives
// the visible ones their values.
func seqItems[V SeqValue](runs []drun, w *wSeq) ([]sitem[V], error) {
	visible := uint64(0)
	nitems := 0
	for i := range runs {
		for k, n := range runs[i].segs {
			if n > 0 {
				nitems++
				if k%2 == 0 {
					visible += n
				}
			}
		}
	}
	var text []rune
	var vals []json.RawMessage
	switch seqKind[V]() {
	case 0:
		if len(w.Vals) > 0 {
			return nil, fmt.Errorf("%w: list values in a text", ErrMalformed)
		}
		if !utf8.Valid(w.Text) {
			return nil, fmt.Errorf("%w: text is not UTF-8", ErrMalformed)
		}
		if uint64(utf8.RuneCount(w.Text)) != visible {
			return nil, fmt.Errorf("%w: %d code points for %d visible elements", ErrMalformed, utf8.RuneCount(w.Text), visible)
		}
		text = make([]rune, 0, visible)
		for b := w.Text; len(b) > 0; {
			r, n := utf8.DecodeRune(b)
			if !validRune(r) {
				return nil, fmt.Errorf("%w: invalid code point", ErrMalformed)
			}
			text = append(text, r)
			b = b[n:]
		}
	default:
		if len(w.Text) > 0 {
			return nil, fmt.Errorf("%w: text in a list", ErrMalformed)
		}
		if uint64(len(w.Vals)) != visible {
			return nil, fmt.Errorf("%w: %d values for %d visible elements", ErrMalformed, len(w.Vals), visible)
		}
		vals = make([]json.RawMessage, len(w.Vals))
		for i, v := range w.Vals {
			if err := checkSeqValue(v); err != nil {
				return nil, err
			}
			vals[i] = v
		}
	}
	items := make([]sitem[V], 0, nitems)
	pos := 0
	for i := range runs {
		r := &runs[i]
		at := uint64(0)
		for k, n := range r.segs {
			if n == 0 {
				continue
			}
			it := sitem[V]{ol: r.ol, or: r.or, ctr: r.ctr + at, n: int(n), rep: r.rep, del: k%2 == 1}
			if at > 0 {
				it.ol = sid{r.rep, r.ctr + at - 1}
			}
			if !it.del {
				switch vs := any(&it.vals).(type) {
				case *[]rune:
					*vs = text[pos : pos+int(n) : pos+int(n)]
				case *[]json.RawMessage:
					*vs = vals[pos : pos+int(n) : pos+int(n)]
				}
				pos += int(n)
			}
			items = append(items, it)
			at += n
		}
	}
	return items, nil
}

// buildIndex rebuilds the ID index from the tree.
func (s *Seq[V]) buildIndex() {
	type ent struct {
		c uint64
		l *snode[V]
	}
	per := make([][]ent, len(s.reps))
	s.idx = make([]repIndex[V], len(s.reps))
	for l := s.t.first; l != nil; l = l.next {
		for j := range l.items {
			it := &l.items[j]
			per[it.rep] = append(per[it.rep], ent{it.ctr, l})
		}
	}
	for r, es := range per {
		slices.SortFunc(es, func(a, b ent) int { return cmp.Compare(a.c, b.c) })
		keys := make([]uint64, len(es))
		leaves := make([]*snode[V], len(es))
		for i, e := range es {
			keys[i], leaves[i] = e.c, e.l
		}
		s.idx[r].build(keys, leaves)
	}
}

// deleteDots returns the dots of cc that are not elements: the deletes'.
// order lists the runs by replica, then counter (as checkElements does).
func deleteDots(cc *CausalContext, runs []drun, order []int, table []ReplicaID) *CausalContext {
	el := NewCausalContext()
	for _, i := range order { // in order, each range extends the last
		r := &runs[i]
		el.AddRange(table[r.rep], r.ctr, r.ctr+r.n-1)
	}
	out := NewCausalContext()
	for _, r := range cc.replicas() {
		walk := func(lo, hi uint64) {
			missingSpans(el, r, lo, hi, func(a, b uint64) { out.AddRange(r, a, b) })
		}
		if v := cc.vv[r]; v > 0 {
			walk(1, v)
		}
		for _, iv := range cc.cloudOf(r) {
			walk(iv.lo, iv.hi)
		}
	}
	return out
}
