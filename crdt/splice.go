package crdt

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Splice builds an op that deletes del code points at index of the text at
// path, then inserts text there. A splice on a path that holds nothing
// creates the text (empty text makes an empty one).
func Splice(path []string, index, del int, text string) Op {
	return Op{Kind: OpSplice, Path: path, Index: index, Del: del, Text: text, Seq: KindText}
}

// SpliceList builds an op that deletes del elements at index of the list
// at path, then inserts values there; on a path that holds nothing it
// creates the list.
func SpliceList(path []string, index, del int, values ...json.RawMessage) Op {
	return Op{Kind: OpSplice, Path: path, Index: index, Del: del, Values: values, Seq: KindList}
}

// SpliceDelete builds an op that deletes del elements at index of the text
// or list at path, whichever it holds.
func SpliceDelete(path []string, index, del int) Op {
	return Op{Kind: OpSplice, Path: path, Index: index, Del: del}
}

// inserted returns the number of elements op inserts.
func (op Op) inserted() int {
	if op.Seq == KindList {
		return len(op.Values)
	}
	return utf8.RuneCountInString(op.Text)
}

// splice checks a splice against the transaction so far and returns it
// with its values in compact form, and the kind it writes.
func (o *overlay) splice(op Op) (Op, Kind, error) {
	if op.Index < 0 || op.Del < 0 {
		return op, 0, fmt.Errorf("%w: negative index %d or delete %d", ErrInvalidOp, op.Index, op.Del)
	}
	switch op.Seq {
	case KindText:
		if len(op.Values) > 0 {
			return op, 0, fmt.Errorf("%w: a text splice with values", ErrInvalidOp)
		}
		if !utf8.ValidString(op.Text) {
			return op, 0, fmt.Errorf("%w: text is not valid UTF-8", ErrInvalidUTF8)
		}
	case KindList:
		if op.Text != "" {
			return op, 0, fmt.Errorf("%w: a list splice with text", ErrInvalidOp)
		}
		vs := make([]json.RawMessage, len(op.Values))
		for i, v := range op.Values {
			c, err := compactJSON(v)
			if err != nil {
				return op, 0, fmt.Errorf("%w: value %d: %w", ErrInvalidValue, i, err)
			}
			vs[i] = c
		}
		op.Values = vs
	case KindNone:
		if op.Text != "" || len(op.Values) > 0 {
			return op, 0, fmt.Errorf("%w: a splice that inserts must say text or list", ErrInvalidOp)
		}
		switch k := o.kind(op.Path); k {
		case KindText, KindList:
			op.Seq = k
		case KindNone:
			return op, 0, fmt.Errorf("%w: delete %d at %d: no text or list here", ErrSeqIndex, op.Del, op.Index)
		default:
			return op, 0, fmt.Errorf("%w: key holds a %s, not a text or list", ErrTypeConflict, k)
		}
	default:
		return op, 0, fmt.Errorf("%w: splice of a %s", ErrInvalidOp, op.Seq)
	}
	if k := o.kind(op.Path); k == op.Seq || k == KindNone {
		n := o.seqLen(op.Path)
		if k == KindNone {
			n = 0
		}
		if op.Index > n || op.Del > n-op.Index {
			return op, 0, fmt.Errorf("%w: delete %d at %d, length %d", ErrSeqIndex, op.Del, op.Index, n)
		}
	}
	return op, op.Seq, nil
}

// seqLen returns the length of the sequence at p as the transaction left it.
func (o *overlay) seqLen(p []string) int {
	jp := joinPath(p)
	if n, ok := o.lens[jp]; ok {
		return n
	}
	for j := 1; j <= len(p); j++ {
		if _, ok := o.deleted[joinPath(p[:j])]; ok {
			return 0
		}
	}
	return o.s.SeqLen(p)
}

func (o *overlay) setLen(p []string, n int) {
	if o.lens == nil {
		o.lens = map[string]int{}
	}
	o.lens[joinPath(p)] = n
}

// applySplice applies a validated splice to entry target of s and joins
// its delta into d. The dots it covers (the creation dots of the other
// sequence kind at the key: seqSlot.covered) are the caller's.
func (s *State) applySplice(replica ReplicaID, target *entry, op Op, d *State) {
	before := target.kind()
	if op.Seq == KindText {
		spliceSlot(s, d, replica, target, op, KindText, textSlot, []rune(op.Text))
	} else {
		spliceSlot(s, d, replica, target, op, KindList, listSlot, op.Values)
	}
	if l := s.edits(); l != nil {
		p := SeqPatch{Path: op.Path, Index: op.Index, Delete: op.Del, Text: op.Text, Values: op.Values, List: op.Seq == KindList}
		l.add(p, before)
	}
}

func spliceSlot[V SeqValue](s, d *State, replica ReplicaID, target *entry, op Op, k Kind, slot func(*entry) *seqSlot[V], vals []V) {
	sl := slot(target)
	seq := sl.state()
	de := d.ensure(op.Path)
	next := func() Dot {
		dot := Dot{replica, s.cc.Max(replica) + 1}
		s.cc.Add(dot)
		d.cc.Add(dot)
		return dot
	}
	if len(sl.made) == 0 {
		dot := next()
		s.insertMade(target, k, dot)
		d.insertMade(de, k, dot)
	}
	if op.Del > 0 {
		sd, err := seq.deleteWith(next(), op.Index, op.Del)
		if err != nil {
			panic(fmt.Sprintf("crdt: validated splice failed: %v", err))
		}
		slot(de).join(sd)
	}
	if len(vals) > 0 {
		ctr := s.cc.Max(replica) + 1
		sd, err := seq.insertWith(replica, ctr, op.Index, vals)
		if err != nil {
			panic(fmt.Sprintf("crdt: validated splice failed: %v", err))
		}
		last := ctr + uint64(len(vals)) - 1
		s.cc.AddRange(replica, ctr, last)
		d.cc.AddRange(replica, ctr, last)
		slot(de).join(sd)
	}
}

// deleteSeqs deletes the visible elements of every sequence in e's
// subtree (the op deleting e covers their creation dots), joining the
// deletes into d.
func (s *State) deleteSeqs(replica ReplicaID, e *entry, d *State) {
	s.deleteSeqsAt(replica, e, d)
	if e.sub != nil {
		// In key order: the deletes' dots are numbered alike on every run.
		for _, k := range e.sub.kids.sorted() {
			s.deleteSeqs(replica, e.sub.kids.get(k), d)
		}
	}
}

// deleteSeqsAt deletes the visible elements of e's own text and list.
func (s *State) deleteSeqsAt(replica ReplicaID, e *entry, d *State) {
	if e.text() != nil {
		deleteSlot(s, d, replica, e, textSlot)
	}
	if e.list() != nil {
		deleteSlot(s, d, replica, e, listSlot)
	}
}

func deleteSlot[V SeqValue](s, d *State, replica ReplicaID, e *entry, slot func(*entry) *seqSlot[V]) {
	before := e.kind()
	seq := slot(e).state()
	n := seq.Len()
	if n == 0 {
		return
	}
	dot := Dot{replica, s.cc.Max(replica) + 1}
	sd, err := seq.deleteWith(dot, 0, n)
	if err != nil {
		panic(fmt.Sprintf("crdt: delete of a whole sequence failed: %v", err))
	}
	s.cc.Add(dot)
	d.cc.Add(dot)
	path := e.path()
	slot(d.ensure(path)).join(sd)
	if l := s.edits(); l != nil {
		var zero []V
		l.add(seqPatch(path, Patch[V]{Index: 0, Delete: n, Insert: zero}), before)
	}
}

// ApplyEdits is ApplyTo that also returns the sequence patches of the
// transaction, in order (see patches.go for which keys have them).
func (s *State) ApplyEdits(acc *State, replica ReplicaID, ts HLC, ops ...Op) ([]SeqPatch, error) {
	l := &editLog{}
	s.notes().edits = l
	err := s.ApplyTo(acc, replica, ts, ops...)
	s.side.edits = nil
	if err != nil {
		return nil, err
	}
	return l.patches(s), nil
}
