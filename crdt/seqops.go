package crdt

import "fmt"

// Patch is one change to a sequence's visible elements: at Index, Delete
// elements were removed, then Insert inserted. Patches of one change apply
// in order, each to the result of the previous.
type Patch[V SeqValue] struct {
	Index  int
	Delete int
	Insert []V
}

// Insert inserts vals at index (0 ≤ index ≤ Len) as replica and returns
// the delta. The elements get the replica's next counters; the change's
// patch is {index, 0, vals}. It returns ErrSeqIndex, ErrInvalidOp (empty
// replica or values) or, for a list value that is not JSON, ErrInvalidValue.
func (s *Seq[V]) Insert(replica ReplicaID, index int, vals ...V) (*SeqDelta[V], error) {
	return s.insertWith(replica, s.cc.Max(replica)+1, index, vals)
}

// insertWith is Insert with the first counter given: a sequence inside a
// document takes its dots from the document's counter (ctr must be past
// every dot of replica the sequence holds).
func (s *Seq[V]) insertWith(replica ReplicaID, ctr uint64, index int, vals []V) (*SeqDelta[V], error) {
	if err := checkLocal(replica); err != nil {
		return nil, err
	}
	if ctr <= s.cc.Max(replica) {
		return nil, fmt.Errorf("%w: counter %d of %s already used", ErrInvalidOp, ctr, replica)
	}
	if index < 0 || index > s.Len() {
		return nil, fmt.Errorf("%w: insert at %d, length %d", ErrSeqIndex, index, s.Len())
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("%w: insert of nothing", ErrInvalidOp)
	}
	n := uint64(len(vals))
	if ctr+n-1 > MaxCounter {
		return nil, fmt.Errorf("%w: replica %s has used its counters", ErrInvalidOp, replica)
	}
	// One allocation for the delta of a keystroke.
	a := &struct {
		d   SeqDelta[V]
		run [1]seqRun[V]
		val [1]V
	}{}
	d := &a.d
	var cp []V
	if n == 1 {
		cp = a.val[:]
	}
	cp, err := copyValues(cp, vals)
	if err != nil {
		return nil, err
	}
	r := s.intern(replica)
	ol, or := s.insertLocal(r, ctr, index, cp)
	s.cc.AddRange(replica, ctr, ctr+n-1)
	a.run[0] = seqRun[V]{id: Dot{replica, ctr}, ol: s.dot(ol), or: s.dot(or), n: n, vals: cp[:n:n]}
	d.runs = a.run[:]
	return d, nil
}

// insertLocal puts the run (r, ctr..) with vals right before the visible
// element at index (after any tombstones before it), or at the very end,
// and returns its origins: the element before it and the one after.
func (s *Seq[V]) insertLocal(r uint32, ctr uint64, index int, vals []V) (ol, or sid) {
	var l *snode[V]
	var j, off int
	if index == s.Len() {
		l, j = s.t.last, len(s.t.last.items)
	} else {
		l, j, off = s.t.seekVis(index)
		it := &l.items[j]
		or = sid{it.rep, it.ctr + uint64(off)}
	}
	n := len(vals)
	if off > 0 {
		it := &l.items[j]
		ol = sid{it.rep, it.ctr + uint64(off) - 1}
		_, _, l, j = s.split(l, j, off)
	} else if pl, pj := s.t.prevItem(l, j); pl != nil {
		p := &pl.items[pj]
		ol = p.last()
		if p.rep == r && !p.del && p.ctr+uint64(p.n) == ctr && p.or == or {
			p.vals = append(p.vals, vals...) // typing on: the run grows
			p.n += n
			s.t.add(pl, n, n)
			return ol, or
		}
	}
	s.place(l, j, sitem[V]{ol: ol, or: or, ctr: ctr, n: n, rep: r, vals: vals})
	return ol, or
}

// Delete deletes count elements from index as replica and returns the
// delta. A delete takes one dot of the replica (recorded in the causal
// context, so that peers' version vectors tell when it has been seen
// everywhere); the change's patch is {index, count, nil}. It returns
// ErrSeqIndex or ErrInvalidOp.
func (s *Seq[V]) Delete(replica ReplicaID, index, count int) (*SeqDelta[V], error) {
	return s.deleteWith(Dot{replica, s.cc.Max(replica) + 1}, index, count)
}

// deleteWith is Delete with the delete's dot given (see insertWith).
func (s *Seq[V]) deleteWith(dot Dot, index, count int) (*SeqDelta[V], error) {
	replica := dot.Replica
	if err := checkLocal(replica); err != nil {
		return nil, err
	}
	if dot.Counter <= s.cc.Max(replica) {
		return nil, fmt.Errorf("%w: counter %d of %s already used", ErrInvalidOp, dot.Counter, replica)
	}
	if count < 1 {
		return nil, fmt.Errorf("%w: delete of %d elements", ErrInvalidOp, count)
	}
	if index < 0 || index > s.Len()-count {
		return nil, fmt.Errorf("%w: delete %d at %d, length %d", ErrSeqIndex, count, index, s.Len())
	}
	if dot.Counter > MaxCounter {
		return nil, fmt.Errorf("%w: replica %s has used its counters", ErrInvalidOp, replica)
	}
	st := sid{s.intern(replica), dot.Counter}
	a := &struct {
		d   SeqDelta[V]
		del [1]seqDel
		rng [1]seqRange
	}{}
	d := &a.d
	del := &a.del[0]
	del.by, del.ranges = dot, a.rng[:0]
	for left := count; left > 0; {
		l, j, off := s.t.seekVis(index)
		it := &l.items[j]
		k := min(left, it.n-off)
		del.add(Dot{s.reps[it.rep], it.ctr + uint64(off)}, uint64(k))
		s.deleteIn(l, j, off, k, st)
		left -= k
	}
	s.cc.Add(dot)
	s.delcc.Add(dot)
	d.dels = a.del[:]
	return d, nil
}

// deleteIn turns elements off..off+k-1 of the visible item j of leaf l
// into a tombstone stamped st.
func (s *Seq[V]) deleteIn(l *snode[V], j, off, k int, st sid) {
	it := &l.items[j]
	if k < it.n && s.deleteEdge(l, j, off, k, st) {
		return
	}
	if off > 0 {
		_, _, l, j = s.split(l, j, off)
	}
	if k < l.items[j].n {
		l, j, _, _ = s.split(l, j, k)
	}
	it = &l.items[j]
	it.del, it.vals, it.st = true, nil, st
	s.t.add(l, -it.n, 0)
	s.coalesce(l, j)
}

// deleteEdge deletes the last (or first) k elements of the visible item j
// by moving them into the tombstone item after (or before) it, when that
// continues them: backspacing over a run costs no new item. It reports
// whether it could.
func (s *Seq[V]) deleteEdge(l *snode[V], j, off, k int, st sid) bool {
	it := &l.items[j]
	piece := sitem[V]{ol: it.ol, or: it.or, st: st, ctr: it.ctr + uint64(off), n: k, rep: it.rep, del: true}
	if off > 0 {
		piece.ol = sid{it.rep, piece.ctr - 1}
	}
	switch {
	case off+k == it.n && j+1 < len(l.items) && s.mergeable(&piece, &l.items[j+1]):
		nx := &l.items[j+1]
		old := nx.ctr
		nx.ctr, nx.n, nx.ol = piece.ctr, nx.n+k, piece.ol
		nx.st.c = max(nx.st.c, st.c)
		it.n = off
		it.vals = it.vals[:off:off]
		s.idx[it.rep].rekey(old, nx.ctr)
	case off == 0 && j > 0 && s.mergeable(&l.items[j-1], &piece):
		pv := &l.items[j-1]
		pv.n += k
		pv.st.c = max(pv.st.c, st.c)
		old := it.ctr
		it.ctr += uint64(k)
		it.n -= k
		it.ol = sid{it.rep, it.ctr - 1}
		it.vals = it.vals[k : it.n+k : it.n+k]
		s.idx[it.rep].rekey(old, it.ctr)
	default:
		return false
	}
	s.t.add(l, -k, 0)
	return true
}

// CursorAt returns the ID of the element at index, a cursor that stays
// on that element whatever is inserted or deleted around it; index Len
// returns the zero Dot, the end. It returns ErrSeqIndex.
func (s *Seq[V]) CursorAt(index int) (Dot, error) {
	if index < 0 || index > s.Len() {
		return Dot{}, fmt.Errorf("%w: cursor at %d, length %d", ErrSeqIndex, index, s.Len())
	}
	if index == s.Len() {
		return Dot{}, nil
	}
	l, j, off := s.t.seekVis(index)
	it := &l.items[j]
	return Dot{s.reps[it.rep], it.ctr + uint64(off)}, nil
}

// IndexOf returns the index of the element with ID id; for a deleted one,
// the index it would have (the number of visible elements before it). The
// zero Dot is the end (Len). It returns ErrSeqCursor for an element s does
// not hold (not received yet, or garbage-collected).
func (s *Seq[V]) IndexOf(id Dot) (int, error) {
	if id.Counter == 0 {
		return s.Len(), nil
	}
	r, ok := s.repIdx[id.Replica]
	if !ok {
		return 0, fmt.Errorf("%w: %s:%d", ErrSeqCursor, id.Replica, id.Counter)
	}
	l, j, off, ok := s.locate(sid{r, id.Counter})
	if !ok {
		return 0, fmt.Errorf("%w: %s:%d", ErrSeqCursor, id.Replica, id.Counter)
	}
	_, vis := s.t.pos(l, j)
	if !l.items[j].del {
		vis += off
	}
	return vis, nil
}
