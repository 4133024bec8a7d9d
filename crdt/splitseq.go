package crdt

// Splitting a delta that changes sequences. A sequence's change (its
// SeqDelta) is one unit: its inserts name each other as origins. SplitDelta
// splits the rest of the delta as usual — the sequences' creation dots go
// with their entries, their element and delete dots into the pieces'
// contexts like dots nothing holds (harmless: no entry holds them, and a
// sequence integrates what it has not seen by its own context) — and adds
// one piece holding every sequence change, which, like a single big value,
// travels alone when it exceeds the bound.

// hasSeqContent reports whether a delta's map n holds sequence changes.
func hasSeqContent(n *mapNode) bool {
	if n == nil {
		return false
	}
	for _, e := range n.kids {
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
	return append(pieces, seqs)
}

// partSeqs copies d's map n into rest without the sequence changes, and
// those into seqs with their dots.
func partSeqs(n *mapNode, rest, seqs *State, prefix []string) {
	for k, e := range n.kids {
		path := append(prefix[:len(prefix):len(prefix)], k)
		var re *entry
		at := func() *entry {
			if re == nil {
				re = rest.ensure(path)
			}
			return re
		}
		if r := e.register(); r != nil {
			for _, x := range r.dots {
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
