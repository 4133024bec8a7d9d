package crdt

import (
	"encoding/json"
	"unicode/utf8"
)

// Splitting a delta that changes sequences. SplitDelta splits the rest of
// the delta as usual — the sequences' creation dots go with their entries,
// their element and delete dots into the pieces' contexts like dots nothing
// holds (harmless: no entry holds them, and a sequence integrates what it
// has not seen by its own context) — and cuts every sequence's change into
// pieces of their own that fit the bound: runs split at element
// boundaries (a run's part after the first is inserted after the part
// before it, as the Seq itself splits items), deletes split by ranges.
// Merged in any order the pieces give the change: a part whose origin has
// not arrived is held back until it does.

// hasSeqContent reports whether a delta's map n holds sequence changes.
func hasSeqContent(n *mapNode) bool {
	if n == nil {
		return false
	}
	for _, e := range n.kids.all() {
		if t := e.text(); t != nil && !t.content().IsEmpty() || e.list() != nil && !e.list().content().IsEmpty() || hasSeqContent(e.sub) {
			return true
		}
	}
	return false
}

func splitSeqs(d *State, origin ReplicaID, lim Limits) []*State {
	if lim.MaxBytes <= 0 {
		lim = DefaultLimits()
	}
	if len(encode(d, origin)) <= lim.MaxBytes {
		return []*State{d}
	}
	rest, seqs := New(), New()
	rest.cc.Merge(d.cc)
	partSeqs(d.root, rest, seqs, nil)
	pieces, _ := split(rest, origin, lim)
	return append(pieces, seqPieces(seqs.root, nil, seqBudget(lim))...)
}

// seqBudget is what a piece's sequence change may cost, by the estimate of
// chunkSeq: the bound, less room for the document delta around it.
func seqBudget(lim Limits) int { return max(lim.MaxBytes*3/4-1024, 256) }

// seqPieces returns one piece per chunk of each sequence change under n.
func seqPieces(n *mapNode, prefix []string, budget int) []*State {
	var out []*State
	for _, k := range n.kids.sorted() {
		e := n.kids.get(k)
		path := append(prefix[:len(prefix):len(prefix)], k)
		if t := e.text(); t != nil && t.delta != nil {
			for _, c := range chunkSeq(t.delta, budget) {
				p := New()
				textSlot(p.ensure(path)).delta = c
				p.cc.Merge(c.Context())
				out = append(out, p)
			}
		}
		if l := e.list(); l != nil && l.delta != nil {
			for _, c := range chunkSeq(l.delta, budget) {
				p := New()
				listSlot(p.ensure(path)).delta = c
				p.cc.Merge(c.Context())
				out = append(out, p)
			}
		}
		if e.sub != nil {
			out = append(out, seqPieces(e.sub, path, budget)...)
		}
	}
	return out
}

// chunkSeq cuts change d into changes whose estimated encoding fits
// budget (a single element bigger than that travels alone).
func chunkSeq[V SeqValue](d *SeqDelta[V], budget int) []*SeqDelta[V] {
	const runCost, rangeCost = 32, 16 // IDs and origins of a run; a delete range
	var out []*SeqDelta[V]
	cur, size := &SeqDelta[V]{}, 0
	flush := func() {
		if !cur.IsEmpty() {
			out = append(out, cur)
		}
		cur, size = &SeqDelta[V]{}, 0
	}
	for _, r := range d.runs {
		for r.n > 0 {
			if size+runCost >= budget && size > 0 {
				flush()
			}
			k, cost := uint64(0), runCost
			for k < r.n {
				c := 1
				if !r.del {
					c = valueCost(r.vals[k])
				}
				if k > 0 && size+cost+c > budget {
					break
				}
				cost += c
				k++
			}
			part := seqRun[V]{id: r.id, ol: r.ol, or: r.or, n: k, del: r.del}
			if !r.del {
				part.vals = r.vals[:k:k]
			}
			cur.runs = append(cur.runs, part)
			size += cost
			if k == r.n {
				break
			}
			// The rest is inserted right after the part's last element.
			next := seqRun[V]{id: Dot{r.id.Replica, r.id.Counter + k}, ol: Dot{r.id.Replica, r.id.Counter + k - 1}, or: r.or, n: r.n - k, del: r.del}
			if !r.del {
				next.vals = r.vals[k:]
			}
			r = next
			flush()
		}
	}
	for _, del := range d.dels {
		rs := del.ranges
		for len(rs) > 0 {
			if size > 0 && size+rangeCost > budget {
				flush()
			}
			k := max(1, min(len(rs), (budget-size)/rangeCost))
			cur.dels = append(cur.dels, seqDel{by: del.by, ranges: rs[:k:k]})
			size += k * rangeCost
			rs = rs[k:]
		}
	}
	if d.dots != nil {
		cur.dots = d.dots
	}
	flush()
	return out
}

// valueCost estimates an element's encoded bytes.
func valueCost[V SeqValue](v V) int {
	switch x := any(v).(type) {
	case rune:
		return utf8.RuneLen(x)
	case json.RawMessage:
		return len(x) + 2
	}
	return 1
}

// partSeqs copies d's map n into rest without the sequence changes, and
// those into seqs with their dots.
func partSeqs(n *mapNode, rest, seqs *State, prefix []string) {
	for k, e := range n.kids.all() {
		path := append(prefix[:len(prefix):len(prefix)], k)
		var re *entry
		at := func() *entry {
			if re == nil {
				re = rest.ensure(path)
			}
			return re
		}
		if r := e.register(); r != nil {
			for _, x := range r.values() {
				rest.insertReg(at(), x)
			}
		}
		if c := e.counter(); c != nil {
			for _, x := range c.dots {
				rest.insertCtr(at(), x)
			}
		}
		if st := e.set(); st != nil {
			for el, ds := range st.elems {
				for _, dt := range ds {
					rest.insertElem(at(), el, dt)
				}
			}
		}
		if t := e.text(); t != nil {
			for _, dt := range t.made {
				rest.insertMade(at(), KindText, dt)
			}
			if c := t.content(); !c.IsEmpty() {
				textSlot(seqs.ensure(path)).delta = c
				seqs.cc.Merge(c.Context())
			}
		}
		if l := e.list(); l != nil {
			for _, dt := range l.made {
				rest.insertMade(at(), KindList, dt)
			}
			if c := l.content(); !c.IsEmpty() {
				listSlot(seqs.ensure(path)).delta = c
				seqs.cc.Merge(c.Context())
			}
		}
		if e.sub != nil {
			partSeqs(e.sub, rest, seqs, path)
		}
	}
}
