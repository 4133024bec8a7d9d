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
		if e.text != nil && !e.text.content().IsEmpty() || e.list != nil && !e.list.content().IsEmpty() || hasSeqContent(e.sub) {
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
		if len(e.reg) > 0 || len(e.ctr) > 0 || len(e.set) > 0 || e.text != nil && len(e.text.made) > 0 || e.list != nil && len(e.list.made) > 0 {
			re := rest.ensure(path)
			for _, r := range e.reg {
				rest.insertReg(re, r)
			}
			for _, c := range e.ctr {
				rest.insertCtr(re, c)
			}
			for el, ds := range e.set {
				for _, dt := range ds {
					rest.insertElem(re, el, dt)
				}
			}
			if e.text != nil {
				for _, dt := range e.text.made {
					rest.insertMade(re, KindText, dt)
				}
			}
			if e.list != nil {
				for _, dt := range e.list.made {
					rest.insertMade(re, KindList, dt)
				}
			}
		}
		if e.text != nil {
			if c := e.text.content(); !c.IsEmpty() {
				textSlot(seqs.ensure(path)).delta = c
				seqs.cc.Merge(c.Context())
			}
		}
		if e.list != nil {
			if c := e.list.content(); !c.IsEmpty() {
				listSlot(seqs.ensure(path)).delta = c
				seqs.cc.Merge(c.Context())
			}
		}
		if e.sub != nil {
			partSeqs(e.sub, rest, seqs, path)
		}
	}
}
