package crdt

// Foreign reports whether s, a delta signed by origin, holds something
// dotted as another replica: a value, a creation, or a sequence element
// or delete. Every honest delta — each one a writer makes, their joins,
// their pieces — holds only its author's; a writer that signed another's
// dots could make receivers keep its text under that replica's IDs (the
// first run integrated with a dot wins), so a receiver refuses it.
func (s *State) Foreign(origin ReplicaID) bool {
	for d := range s.idx.all() {
		if d.Replica != origin {
			return true
		}
	}
	return foreignSeqs(s.root, origin)
}

func foreignSeqs(n *mapNode, origin ReplicaID) bool {
	if n == nil {
		return false
	}
	for _, e := range n.kids.all() {
		if t := e.text(); t != nil && (t.seq != nil || foreignChange(t.delta, origin)) {
			return true
		}
		if l := e.list(); l != nil && (l.seq != nil || foreignChange(l.delta, origin)) {
			return true
		}
		if foreignSeqs(e.sub, origin) {
			return true
		}
	}
	return false
}

// foreignChange reports whether d inserts or deletes as another replica
// than origin, or carries a whole sequence's delete dots.
func foreignChange[V SeqValue](d *SeqDelta[V], origin ReplicaID) bool {
	if d == nil {
		return false
	}
	if d.dots != nil {
		return true
	}
	for i := range d.runs {
		if d.runs[i].id.Replica != origin || d.runs[i].del {
			return true
		}
	}
	for _, del := range d.dels {
		if del.by.Replica != origin {
			return true
		}
	}
	return false
}
