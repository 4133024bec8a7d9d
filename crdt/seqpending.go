package crdt

import (
	"cmp"
	"slices"
)

// seqPending holds the remote changes a Seq cannot apply yet: inserts
// whose origins have not arrived and deletes of elements that have not.
// Their dots are not in the causal context, so anti-entropy still offers
// them; past the bound the oldest are dropped (and sent again later).
type seqPending[V SeqValue] struct {
	runs []seqRun[V]
	dels []pendDel
	seen map[pendKey]struct{}
	// delBy holds the dots of the deletes held; dots, when set, is the one
	// held set of a whole state's delete dots (also in dels).
	delBy map[delKey]struct{}
	dots  *CausalContext
	n     int    // elements held
	cur   uint64 // the merge running (a generation: what it holds back is marked with it)
}

type pendKey struct {
	id Dot
	n  uint64
}

// pendDel is a delete waiting for elements, or (dots set) the delete dots
// of a whole state waiting for its deletes.
type pendDel struct {
	by     Dot
	ranges []seqRange
	dots   *CausalContext
	gen    uint64 // the merge that first held it
}

func (pd *pendDel) size() int {
	if pd.dots != nil {
		return 1
	}
	return int(min(rangeLen(pd.ranges), 1<<30))
}

func (p *seqPending[V]) addRun(r seqRun[V]) bool {
	k := pendKey{r.id, r.n}
	if _, dup := p.seen[k]; dup {
		return false
	}
	if p.seen == nil {
		p.seen = map[pendKey]struct{}{}
	}
	p.seen[k] = struct{}{}
	if r.gen == 0 {
		r.gen = p.cur
	}
	p.runs = append(p.runs, r)
	p.n += int(r.n)
	return true
}

// addDel holds a delete back. A delete already held (one dot names one
// delete: the same change received again, or from a state and a delta)
// is held once, and the delete dots of whole states are held as one set.
func (p *seqPending[V]) addDel(d pendDel) {
	switch {
	case d.dots != nil && p.dots != nil:
		p.dots.Merge(d.dots)
		return
	case d.dots != nil:
		d.dots = d.dots.Clone()
		p.dots = d.dots
	case d.by.Counter != 0:
		k := d.key()
		if _, dup := p.delBy[k]; dup {
			return
		}
		if p.delBy == nil {
			p.delBy = map[delKey]struct{}{}
		}
		p.delBy[k] = struct{}{}
	}
	if d.gen == 0 {
		d.gen = p.cur
	}
	p.dels = append(p.dels, d)
	p.n += d.size()
}

// forgetDel undoes addDel's bookkeeping for a delete no longer held.
func (p *seqPending[V]) forgetDel(d pendDel) {
	if d.dots != nil {
		p.dots = nil
	} else {
		delete(p.delBy, d.key())
	}
}

// delKey names a held delete: its dot and where its ranges start (a
// delete split into pieces has one dot and several range lists).
type delKey struct{ by, first Dot }

func (d *pendDel) key() delKey {
	k := delKey{by: d.by}
	if len(d.ranges) > 0 {
		k.first = d.ranges[0].id
	}
	return k
}

// holdsDeletes reports whether a delete or a tombstone run waits.
func (p *seqPending[V]) holdsDeletes() bool {
	if len(p.dels) > 0 {
		return true
	}
	for i := range p.runs {
		if p.runs[i].del {
			return true
		}
	}
	return false
}

// takeRuns removes and returns the held inserts.
func (p *seqPending[V]) takeRuns() []seqRun[V] {
	rs := p.runs
	p.runs = nil
	clear(p.seen)
	for i := range rs {
		p.n -= int(rs[i].n)
	}
	return rs
}

// takeDels removes and returns the held deletes.
func (p *seqPending[V]) takeDels() []pendDel {
	ds := p.dels
	p.dels = nil
	for i := range ds {
		p.n -= ds[i].size()
	}
	clear(p.delBy)
	p.dots = nil
	return ds
}

// refuse stops holding what the running merge (cur) held back for the
// first time, adding its dots to out, and returns how many changes it
// refused. What earlier merges held stays: their callers claimed it.
func (p *seqPending[V]) refuse(out *CausalContext) uint64 {
	var n uint64
	keep := p.runs[:0]
	for _, r := range p.runs {
		if r.gen == p.cur {
			delete(p.seen, pendKey{r.id, r.n})
			p.n -= int(r.n)
			out.AddRange(r.id.Replica, r.id.Counter, r.id.Counter+r.n-1)
			n++
			continue
		}
		keep = append(keep, r)
	}
	clear(p.runs[len(keep):])
	p.runs = keep
	held := p.dels[:0]
	for _, d := range p.dels {
		if d.dots == nil && d.by.Counter != 0 && d.gen == p.cur {
			p.n -= d.size()
			p.forgetDel(d)
			out.Add(d.by)
			n++
			continue
		}
		held = append(held, d)
	}
	clear(p.dels[len(held):])
	p.dels = held
	return n
}

// Pending returns the number of elements of remote changes held back
// until what they refer to arrives.
func (s *Seq[V]) Pending() int { return s.pend.n }

// held returns the changes s holds back as one delta (nil when none), in a
// canonical order: runs and deletes by ID, so that two replicas holding
// the same changes encode them alike.
func (s *Seq[V]) held() *SeqDelta[V] {
	p := &s.pend
	if len(p.runs) == 0 && len(p.dels) == 0 {
		return nil
	}
	d := &SeqDelta[V]{runs: slices.Clone(p.runs)}
	for i := range d.runs {
		d.runs[i].gen = 0 // this Seq's bookkeeping
	}
	for _, pd := range p.dels {
		if pd.dots != nil {
			if d.dots == nil {
				d.dots = NewCausalContext()
			}
			d.dots.Merge(pd.dots)
			continue
		}
		d.dels = append(d.dels, seqDel{by: pd.by, ranges: slices.Clone(pd.ranges)})
	}
	slices.SortFunc(d.runs, func(a, b seqRun[V]) int { return cmp.Or(compareDots(a.id, b.id), cmp.Compare(a.n, b.n)) })
	slices.SortFunc(d.dels, func(a, b seqDel) int {
		if c := compareDots(a.by, b.by); c != 0 {
			return c
		}
		return slices.CompareFunc(a.ranges, b.ranges, func(x, y seqRange) int {
			return cmp.Or(compareDots(x.id, y.id), cmp.Compare(x.n, y.n))
		})
	})
	return d
}
