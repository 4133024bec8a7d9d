package crdt

import "sort"

// Ordering rule. Each run is inserted between its left origin ol (the
// element right before it when it was typed, tombstones included) and its
// right origin or (the element right after it then). In Fugue's tree the
// run is the right child of ol when or is not a descendant of ol, else the
// left child of or; FugueMax orders left siblings by replica and right
// siblings by the reverse list order of their right origins, then by
// replica. Integration finds that place without building the tree: it
// scans the elements between ol and or as Gentle's YjsMod does (reference
// CRDTs, crdts.ts: integrateYjsMod), which orders exactly as FugueMax; the
// tests check it against a tree-based FugueMax (seq_model_test.go).
//
// For each element o after ol, with its own origins at positions oleft and
// oright, and ours at left and right:
//
//	oleft < left:                 o is past ol's subtree: insert before o
//	oleft = left, oright < right: o's subtree may precede us: scan on
//	oleft = left, oright = right: siblings: the lower replica goes first
//	oleft = left, oright > right: o precedes us: skip it
//	oleft > left:                 o is inside a subtree already passed: skip
//
// Only the first element of an item can stop the scan (the others have the
// previous element as left origin), so the scan walks items, not elements.

// Merge applies d: inserts whose origins are present are integrated,
// deletes mark tombstones; an insert whose origin has not arrived, or a
// delete of an element that has not, waits (bounded by MaxPending) and is
// applied when it arrives. Merging is idempotent, commutative and
// associative. Merge returns the patches of the change, in order.
func (s *Seq[V]) Merge(d *SeqDelta[V]) []Patch[V] {
	if d.IsEmpty() {
		return nil
	}
	var ps patches[V]
	if d.dots != nil {
		s.stateDots = d.dots // see mergeDel
		defer func() { s.stateDots = nil }()
	}
	s.pend.cur++ // what this merge holds back is marked with it (see refuse)
	progress := s.mergeRuns(d.runs, &ps)
	for _, del := range d.dels {
		if s.mergeOneDel(pendDel{by: del.by, ranges: del.ranges}, &ps) {
			progress = true
		}
	}
	if d.dots != nil {
		if s.collectedBy(d.dots, &ps) {
			progress = true
		}
		s.pend.addDel(pendDel{dots: d.dots})
	}
	if s.pend.n > 0 && (progress || d.dots != nil) {
		s.retry(&ps)
	}
	if s.pend.n > s.cfg.MaxPending && !s.unbounded {
		// Over the bound: what d itself left held back is refused (not
		// held, its dots in Refused), rather than evicting what others
		// wait on; the caller does not claim it, so it is sent again.
		if s.refused == nil {
			s.refused = NewCausalContext()
		}
		s.stats.Refused += s.pend.refuse(s.refused)
	}
	return ps.list
}

// takeRefused returns the dots of the changes Merge refused since the
// last call (nil when none).
func (s *Seq[V]) takeRefused() *CausalContext {
	r := s.refused
	s.refused = nil
	return r
}

// mergeRuns integrates runs in an order where origins come first. It
// reports whether anything was integrated.
func (s *Seq[V]) mergeRuns(runs []seqRun[V], ps *patches[V]) bool {
	progress := false
	var revive []uint64
	if s.pend.n > 0 && s.orphaned {
		revive = s.revivals(runs) // collected elements held-back inserts need
	}
	for _, i := range s.order(runs) {
		if revive != nil && revive[i] != 0 && s.revive(runs[i], revive[i], ps) {
			progress = true
		}
		if s.mergeRun(runs[i], ps) {
			progress = true
		}
	}
	return progress
}

// mergeOneDel applies a delete, holding back what it cannot apply yet; its
// dot is recorded once all of it is applied. It reports progress.
func (s *Seq[V]) mergeOneDel(pd pendDel, ps *patches[V]) bool {
	st := sid{}
	if pd.by.Counter != 0 {
		st = sid{s.intern(pd.by.Replica), pd.by.Counter}
	}
	before := rangeLen(pd.ranges)
	rest := s.mergeDel(pd.ranges, st, ps)
	if len(rest) == 0 {
		if pd.by.Counter != 0 {
			s.cc.Add(pd.by)
			s.delcc.Add(pd.by)
		}
		return true
	}
	pd.ranges = rest
	s.pend.addDel(pd)
	return rangeLen(rest) < before
}

// addStateDots records the delete dots of a whole state, whose tombstones
// carry no stamp of their own.
func (s *Seq[V]) addStateDots(cc *CausalContext) {
	s.orphaned = s.orphaned || s.pend.n > 0 // they may name what these dots say was collected
	s.cc.Merge(cc)
	s.delcc.Merge(cc)
	s.base.Merge(cc)
}

// retry applies held-back changes until none applies. The delete dots of
// a whole state are recorded once no delete and no tombstone waits.
func (s *Seq[V]) retry(ps *patches[V]) {
	for s.pend.n > 0 {
		progress := s.mergeRuns(s.pend.takeRuns(), ps)
		var states []pendDel
		for _, pd := range s.pend.takeDels() {
			if pd.dots != nil {
				states = append(states, pd)
			} else if s.mergeOneDel(pd, ps) {
				progress = true
			}
		}
		for _, pd := range states {
			if s.pend.holdsDeletes() {
				s.pend.addDel(pd)
			} else {
				s.addStateDots(pd.dots)
				progress = true
			}
		}
		if !progress {
			return
		}
	}
}

// mergeRun integrates the elements of run not seen yet (and, for a
// tombstone run, deletes those seen). It reports whether anything was
// integrated; what waits for an origin goes to pending.
func (s *Seq[V]) mergeRun(run seqRun[V], ps *patches[V]) bool {
	if run.id.Counter == 0 || run.n == 0 || !run.del && uint64(len(run.vals)) != run.n {
		return false
	}
	r := s.intern(run.id.Replica)
	lo, hi := run.id.Counter, run.id.Counter+run.n-1
	progress := false
	if run.del {
		s.mergeDel([]seqRange{{run.id, run.n}}, sid{}, ps)
	}
	missingSpans(s.cc, run.id.Replica, lo, hi, func(a, b uint64) {
		ol := s.sidOf(run.ol)
		if a > lo {
			ol = sid{r, a - 1}
		}
		or := s.sidOf(run.or)
		var vals []V
		if !run.del {
			vals = run.vals[a-lo : b-lo+1 : b-lo+1]
		}
		switch st := s.ready(ol, or); st {
		case originsPresent:
			if s.integrate(sid{r, a}, ol, or, int(b-a+1), vals, ps) {
				progress = true
				if !run.del {
					s.deleteCollected(run.id.Replica, a, b, ps)
				}
			} else {
				s.stats.Invalid++
			}
			s.cc.AddRange(run.id.Replica, a, b)
		default:
			held := s.pend.addRun(seqRun[V]{id: Dot{run.id.Replica, a}, ol: s.dot(ol), or: run.or, n: b - a + 1, vals: vals, del: run.del, gen: run.gen})
			s.orphaned = s.orphaned || st == originsCollected
			if held && st == originsCollected && run.gen == 0 {
				// An origin was collected here: held back until a whole
				// state brings it back (seqrepair.go).
				s.stats.Orphans++
			}
		}
	})
	return progress
}

const (
	originsMissing = iota
	originsPresent
	originsCollected
)

// ready tells whether both origins are here, one was garbage-collected, or
// one has not arrived.
func (s *Seq[V]) ready(ol, or sid) int {
	st := originsPresent
	for _, o := range [2]sid{ol, or} {
		if o.none() {
			continue
		}
		if _, _, _, ok := s.locate(o); ok {
			continue
		}
		if s.cc.Contains(Dot{s.reps[o.r], o.c}) {
			st = originsCollected
			continue
		}
		return originsMissing
	}
	return st
}

// posOf returns the position of element id among all elements (-1 when
// absent).
func (s *Seq[V]) posOf(id sid) int {
	l, j, off, ok := s.locate(id)
	if !ok {
		return -1
	}
	p, _ := s.t.pos(l, j)
	return p + off
}

// less orders two elements of one parent and side: by replica, then by
// counter (one replica never makes two such siblings; the counter keeps a
// forged delta deterministic).
func (s *Seq[V]) less(a, b sid) bool {
	if a.r != b.r {
		return s.reps[a.r] < s.reps[b.r]
	}
	return a.c < b.c
}

// integrate places the new run (id, n elements, vals nil for a tombstone
// run) with origins ol and or: see the ordering rule above. It refuses
// (false, nothing changed) a run whose right origin is not after its left
// one: no author makes one, but an author that signed two different runs
// with the same IDs (or a forged delta) can.
func (s *Seq[V]) integrate(id, ol, or sid, n int, vals []V, ps *patches[V]) bool {
	left, right := -1, s.t.root.tot
	// cursor: the element at position i
	var l *snode[V]
	var j, off int
	if ol.none() {
		l, j = s.t.first, 0
		if len(l.items) == 0 {
			l = nil
		}
	} else {
		ll, lj, loff, _ := s.locate(ol)
		p, _ := s.t.pos(ll, lj)
		left = p + loff
		if loff+1 < ll.items[lj].n {
			l, j, off = ll, lj, loff+1
		} else {
			l, j = s.t.nextItem(ll, lj)
		}
	}
	if !or.none() {
		right = s.posOf(or)
	}
	if right <= left {
		return false
	}
	i := left + 1
	dl, dj, doff := l, j, off
	scanning := false
scan:
	for {
		if !scanning {
			dl, dj, doff = l, j, off
		}
		if l == nil || i >= right {
			break
		}
		it := &l.items[j]
		oleft := left // an element inside ol's item follows ol
		if off == 0 {
			oleft = -1
			if !it.ol.none() {
				oleft = s.posOf(it.ol)
			}
		}
		if oleft < left {
			break
		}
		if oleft == left {
			oright := s.t.root.tot
			if !it.or.none() {
				if p := s.posOf(it.or); p >= 0 {
					oright = p
				}
			}
			if oright == right && s.less(id, sid{it.rep, it.ctr + uint64(off)}) {
				break scan
			}
			scanning = oright < right
		}
		span := it.n - off
		if right > i && right < i+span {
			if !scanning {
				dl, dj, doff = l, j, off+(right-i)
			}
			break
		}
		i += span
		l, j = s.t.nextItem(l, j)
		off = 0
	}
	s.insertAt(dl, dj, doff, id, ol, or, n, vals, ps)
	return true
}

// insertAt puts the new run before element doff of item dj of leaf dl
// (dl nil: at the end), growing the item before it when the run continues
// it.
func (s *Seq[V]) insertAt(dl *snode[V], dj, doff int, id, ol, or sid, n int, vals []V, ps *patches[V]) {
	del := vals == nil
	if dl == nil {
		dl, dj = s.t.last, len(s.t.last.items)
	}
	if doff > 0 {
		_, _, dl, dj = s.split(dl, dj, doff)
	} else if pl, pj := s.t.prevItem(dl, dj); pl != nil {
		p := &pl.items[pj]
		if p.rep == id.r && p.del == del && p.ctr+uint64(p.n) == id.c && p.last() == ol && p.or == or && (!del || p.st.c == 0) {
			if del {
				p.n += n
				s.t.add(pl, 0, n)
				return
			}
			_, vis := s.t.pos(pl, pj)
			vis += p.n
			p.vals = append(p.vals[:p.n:p.n], vals...)
			p.n += n
			s.t.add(pl, n, n)
			ps.insert(vis, vals)
			return
		}
	}
	dl, dj = s.place(dl, dj, sitem[V]{ol: ol, or: or, ctr: id.c, n: n, rep: id.r, vals: vals, del: del})
	if !del {
		_, vis := s.t.pos(dl, dj)
		ps.insert(vis, vals)
	}
}

// mergeDel deletes the elements of ranges that are here, stamping the
// tombstones st, and returns the ranges of elements that have not arrived.
func (s *Seq[V]) mergeDel(ranges []seqRange, st sid, ps *patches[V]) []seqRange {
	var rest []seqRange
	for _, rg := range ranges {
		if rg.n == 0 || rg.id.Counter == 0 {
			continue
		}
		lo, hi := rg.id.Counter, rg.id.Counter+rg.n-1
		missingSpans(s.cc, rg.id.Replica, lo, hi, func(a, b uint64) {
			if s.stateDots != nil {
				// Elements the whole state being merged collected: deleted
				// there, never to arrive here.
				missingSpans(s.stateDots, rg.id.Replica, a, b, func(a, b uint64) {
					rest = append(rest, seqRange{Dot{rg.id.Replica, a}, b - a + 1})
				})
				return
			}
			rest = append(rest, seqRange{Dot{rg.id.Replica, a}, b - a + 1})
		})
		r, ok := s.repIdx[rg.id.Replica]
		if !ok {
			continue
		}
		for c := lo; c <= hi; {
			l, j, off, ok := s.locate(sid{r, c})
			if !ok { // not here: not arrived (kept in rest) or collected
				nx, ok := s.idx[r].succ(c)
				if !ok || nx > hi {
					break
				}
				c = nx
				continue
			}
			it := &l.items[j]
			k := min(hi-c+1, uint64(it.n-off))
			if !it.del {
				_, vis := s.t.pos(l, j)
				s.deleteIn(l, j, off, int(k), st)
				ps.delete(vis+off, int(k))
			}
			c += k
		}
	}
	return rest
}

// order returns the indexes of runs so that a run comes after the runs of
// the same list holding its origins.
func (s *Seq[V]) order(runs []seqRun[V]) []int {
	out := make([]int, 0, len(runs))
	if len(runs) < 2 {
		for i := range runs {
			out = append(out, i)
		}
		return out
	}
	byID := make([]int, len(runs))
	for i := range byID {
		byID[i] = i
	}
	sort.Slice(byID, func(a, b int) bool {
		x, y := runs[byID[a]].id, runs[byID[b]].id
		return x.Replica < y.Replica || x.Replica == y.Replica && x.Counter < y.Counter
	})
	holder := func(d Dot) int {
		if d.Counter == 0 {
			return -1
		}
		k := sort.Search(len(byID), func(k int) bool {
			x := runs[byID[k]].id
			return x.Replica > d.Replica || x.Replica == d.Replica && x.Counter > d.Counter
		})
		if k == 0 {
			return -1
		}
		r := &runs[byID[k-1]]
		if r.id.Replica == d.Replica && d.Counter < r.id.Counter+r.n {
			return byID[k-1]
		}
		return -1
	}
	state := make([]uint8, len(runs)) // 0 new, 1 on the stack, 2 done
	type frame struct{ i, dep int }
	var stack []frame
	for root := range runs {
		if state[root] != 0 {
			continue
		}
		stack = append(stack[:0], frame{root, 0})
		state[root] = 1
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.dep < 2 {
				o := runs[f.i].ol
				if f.dep == 1 {
					o = runs[f.i].or
				}
				f.dep++
				if h := holder(o); h >= 0 && state[h] == 0 {
					state[h] = 1
					stack = append(stack, frame{h, 0})
				}
				continue
			}
			state[f.i] = 2
			out = append(out, f.i)
			stack = stack[:len(stack)-1]
		}
	}
	return out
}
