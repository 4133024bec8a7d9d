package crdt

// The patches of a change. A change's patches are the edits of texts and
// lists, in order, such that applying them to the previous view gives the
// new one. That holds only where the key showed the same kind before and
// after the change (or nothing before: a text created by the change starts
// empty): where a change makes a key switch kinds (a list created
// concurrently with a text at one key, a map hiding a text, a delete of the
// key), its path is among the change's paths but has no patches — the
// caller reads it again.

// seqEdit is a patch with the kind its key showed before the change.
type seqEdit struct {
	SeqPatch
	before Kind
}

// editLog collects a change's patches while it is applied (seqNotes.edits).
type editLog struct {
	edits  []seqEdit
	before map[string]Kind // joined path → kind before a merge (nil for local ops)
}

// add records patch p at path, whose key showed kind before the change
// (a merge's recorded kind is used when there is one).
func (l *editLog) add(p SeqPatch, before Kind) {
	if k, ok := l.before[joinPath(p.Path)]; ok {
		before = k
	}
	l.edits = append(l.edits, seqEdit{p, before})
}

// noteBefore records, for a merge of src into s, the kind each key of s
// that src changes a sequence at shows before the merge.
func (l *editLog) noteBefore(s *State, n *mapNode, prefix []string) {
	if n == nil {
		return
	}
	for k, e := range n.kids.all() {
		path := append(prefix[:len(prefix):len(prefix)], k)
		if e.text() != nil || e.list() != nil {
			if l.before == nil {
				l.before = map[string]Kind{}
			}
			l.before[joinPath(path)] = s.lookup(path).kind()
		}
		l.noteBefore(s, e.sub, path)
	}
}

// patches returns the patches of the paths whose key showed the patches'
// kind after the change and the same kind, or nothing, before it (that of
// the path's first patch), in order.
func (l *editLog) patches(s *State) []SeqPatch {
	if len(l.edits) == 0 {
		return nil
	}
	keep := map[string]bool{}
	out := make([]SeqPatch, 0, len(l.edits))
	for _, e := range l.edits {
		jp := joinPath(e.Path)
		ok, seen := keep[jp]
		if !seen {
			want := KindText
			if e.List {
				want = KindList
			}
			ok = s.lookup(e.Path).kind() == want && (e.before == KindNone || e.before == want)
			keep[jp] = ok
		}
		if ok {
			out = append(out, e.SeqPatch)
		}
	}
	return out
}
