package crdt

// SeqDelta is a change to a Seq, or a whole Seq (see Seq.Delta): inserted
// runs with their origins, and deletes with the ranges of element IDs they
// delete. Deltas join (Join) and merge in any order, any number of times.
//
// A delta is immutable once returned.
type SeqDelta[V SeqValue] struct {
	runs []seqRun[V]
	dels []seqDel
	dots *CausalContext // delete dots not named by dels (a whole state's), or nil
}

// seqRun is a run of n inserted elements: counters id.Counter.. of
// id.Replica, the first inserted between ol and or (zero Dots: the start
// and the end), each next one right after the previous. A tombstone run
// (del, in a whole state) has no values and deletes its elements.
type seqRun[V SeqValue] struct {
	id, ol, or Dot
	n          uint64
	vals       []V // len n, nil when del
	del        bool
	gen        uint64 // held back: the merge that first held it (seqPending)
}

// seqDel is one delete: the ranges of element IDs it deleted, and its dot
// (zero in a whole state, where deletes are not told apart).
type seqDel struct {
	by     Dot
	ranges []seqRange
}

// seqRange is elements id.Counter..id.Counter+n-1 of id.Replica.
type seqRange struct {
	id Dot
	n  uint64
}

// add appends a range, joining it to the last one when they touch.
func (d *seqDel) add(id Dot, n uint64) {
	if k := len(d.ranges); k > 0 {
		last := &d.ranges[k-1]
		if last.id.Replica == id.Replica && last.id.Counter+last.n == id.Counter {
			last.n += n
			return
		}
		if last.id.Replica == id.Replica && id.Counter+n == last.id.Counter { // deleting backwards
			last.id.Counter = id.Counter
			last.n += n
			return
		}
	}
	d.ranges = append(d.ranges, seqRange{id, n})
}

// IsEmpty reports whether d changes nothing.
func (d *SeqDelta[V]) IsEmpty() bool {
	return d == nil || len(d.runs) == 0 && len(d.dels) == 0 && (d.dots == nil || d.dots.dotCount() == 0)
}

// Elements returns the number of visible elements d inserts.
func (d *SeqDelta[V]) Elements() int {
	n := 0
	for i := range d.runs {
		if !d.runs[i].del {
			n += len(d.runs[i].vals)
		}
	}
	return n
}

// Join returns a delta holding both d and o (for batching deltas into one
// message). Neither is modified.
func (d *SeqDelta[V]) Join(o *SeqDelta[V]) *SeqDelta[V] {
	out := &SeqDelta[V]{
		runs: append(make([]seqRun[V], 0, len(d.runs)+len(o.runs)), d.runs...),
		dels: append(append(make([]seqDel, 0, len(d.dels)+len(o.dels)), d.dels...), o.dels...),
	}
	for _, r := range o.runs {
		if k := len(out.runs); k > 0 && continues(&out.runs[k-1], &r) {
			// Typing on: one run, as the author's Seq holds it.
			p := &out.runs[k-1]
			p.vals = append(append(make([]V, 0, len(p.vals)+len(r.vals)), p.vals...), r.vals...)
			p.n += r.n
			continue
		}
		out.runs = append(out.runs, r)
	}
	if d.dots != nil || o.dots != nil {
		out.dots = NewCausalContext()
		if d.dots != nil {
			out.dots.Merge(d.dots)
		}
		if o.dots != nil {
			out.dots.Merge(o.dots)
		}
	}
	return out
}

// continues reports whether run b was typed right after run a: the next
// counters of its replica, after a's last element, before a's right origin.
func continues[V SeqValue](a, b *seqRun[V]) bool {
	return !a.del && !b.del && a.id.Replica == b.id.Replica && a.id.Counter+a.n == b.id.Counter &&
		b.ol == Dot{a.id.Replica, a.id.Counter + a.n - 1} && b.or == a.or
}

// Context returns the dots d carries: its elements and its deletes.
func (d *SeqDelta[V]) Context() *CausalContext {
	cc := NewCausalContext()
	for i := range d.runs {
		r := &d.runs[i]
		cc.AddRange(r.id.Replica, r.id.Counter, r.id.Counter+r.n-1)
	}
	for _, del := range d.dels {
		if del.by.Counter != 0 {
			cc.Add(del.by)
		}
	}
	if d.dots != nil {
		cc.Merge(d.dots)
	}
	return cc
}

// Delta returns the whole of s as a delta, to send to a replica that may
// have nothing, or to join with other deltas.
func (s *Seq[V]) Delta() *SeqDelta[V] {
	d := &SeqDelta[V]{dots: s.delcc.Clone()}
	s.t.each(func(it *sitem[V]) bool {
		if k := len(d.runs); k > 0 {
			p := &d.runs[k-1]
			if p.del == it.del && p.id.Replica == s.reps[it.rep] && p.id.Counter+p.n == it.ctr &&
				it.ol == (sid{it.rep, it.ctr - 1}) && s.dot(it.or) == p.or {
				p.n += uint64(it.n)
				if !it.del {
					p.vals = append(p.vals, it.vals...)
				}
				return true
			}
		}
		r := seqRun[V]{id: Dot{s.reps[it.rep], it.ctr}, ol: s.dot(it.ol), or: s.dot(it.or), n: uint64(it.n), del: it.del}
		if !it.del {
			r.vals = append(make([]V, 0, it.n), it.vals...)
		}
		d.runs = append(d.runs, r)
		return true
	})
	for i := range d.runs {
		if v := d.runs[i].vals; v != nil {
			d.runs[i].vals = v[:len(v):len(v)]
		}
	}
	return d
}
