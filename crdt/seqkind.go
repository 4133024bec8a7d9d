package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Sequences in a document. A text or a list at a key is a seqSlot: the
// sequence (a Seq, in a state) or the change to it (a SeqDelta, in a
// delta), and the dots of the ops that created it.
//
// The creation dots are the only dots of a sequence kept in State.idx:
// they make an empty text ("") visible and are removed like a register's
// dots by an observed remove. The elements and their deletes are the
// sequence's own (Seq keeps them in runs); their dots join the document's
// causal context, so version vectors count them. An observed remove of a
// key holding a sequence (a delete of it or of a map above it) deletes the
// elements the remover saw, as a splice would: the tombstones stay as
// anchors, so an insert made concurrently survives and integrates in its
// place, and the key shows what survived (add-wins, like a map).

// seqSlot is a text (V rune) or a list (V json.RawMessage) at one key.
type seqSlot[V SeqValue] struct {
	made  []Dot        // creation dots, in State.idx
	seq   *Seq[V]      // a state's sequence
	delta *SeqDelta[V] // a delta's change to it
}

// SeqPatch is one edit of a text or a list's visible elements, as a change
// reports them (in order: each applies to the view the previous ones left):
// at Index, Delete elements were removed, then Text (code points, for a
// text) or Values (for a list) inserted.
type SeqPatch struct {
	Path   []string
	Index  int
	Delete int
	Text   string
	Values []json.RawMessage
	// List tells a list's patch from a text's (a pure delete has neither
	// Text nor Values).
	List bool
}

// empty reports whether the slot holds nothing. A sequence whose elements
// were all collected still holds its delete dots: they tell a receiver of
// this state which elements are deleted (seqrepair.go).
func (sl *seqSlot[V]) empty() bool {
	return sl == nil || len(sl.made) == 0 && (sl.seq == nil || sl.seq.Items() == 0 && sl.seq.pend.n == 0 && sl.seq.delcc.dotCount() == 0) && sl.delta.IsEmpty()
}

// visible reports whether the key shows the sequence: it was created and
// not removed since, or it has visible elements (inserted concurrently
// with a remove).
func (sl *seqSlot[V]) visible() bool {
	return sl != nil && (len(sl.made) > 0 || sl.seq != nil && sl.seq.Len() > 0 || sl.delta != nil && sl.delta.Elements() > 0)
}

func (sl *seqSlot[V]) unmake(d Dot) {
	if sl == nil {
		return
	}
	if i := slices.Index(sl.made, d); i >= 0 {
		sl.made = slices.Delete(sl.made, i, i+1)
	}
}

// content returns what the slot holds as a delta.
// A state's sequence gives its elements and the changes it holds back
// (their dots are in the document's context: dropping them would lose
// them for whoever takes this state).
func (sl *seqSlot[V]) content() *SeqDelta[V] {
	var c *SeqDelta[V]
	if sl.seq != nil {
		c = sl.seq.Delta()
		if h := sl.seq.held(); h != nil {
			c = c.Join(h)
		}
	}
	switch {
	case c == nil:
		return sl.delta
	case sl.delta != nil:
		return c.Join(sl.delta)
	}
	return c
}

// view returns the sequence to read: the state's, or one built from the
// delta (a delta's view).
func (sl *seqSlot[V]) view() *Seq[V] {
	if sl.delta == nil && sl.seq != nil {
		return sl.seq
	}
	v := NewSeq[V](DefaultSeqConfig())
	if sl.seq != nil {
		v.Merge(sl.seq.Delta())
	}
	if sl.delta != nil {
		v.Merge(sl.delta)
	}
	return v
}

// state returns the slot's sequence, creating it.
func (sl *seqSlot[V]) state() *Seq[V] {
	if sl.seq == nil {
		sl.seq = NewSeq[V](DefaultSeqConfig())
		if sl.delta != nil {
			sl.seq.Merge(sl.delta)
			sl.delta = nil
		}
	}
	return sl.seq
}

// join adds change d to the slot's delta.
func (sl *seqSlot[V]) join(d *SeqDelta[V]) {
	if d.IsEmpty() {
		return
	}
	if sl.delta == nil {
		sl.delta = d
		return
	}
	sl.delta = sl.delta.Join(d)
}

// seqKindOf returns the kind of a sequence of V: KindText or KindList.
func seqKindOf[V SeqValue]() Kind {
	if _, ok := any((*V)(nil)).(*rune); ok {
		return KindText
	}
	return KindList
}

// seqSlotOf returns e's text (V rune) or list, creating it.
func seqSlotOf[V SeqValue](e *entry) *seqSlot[V] {
	k := seqKindOf[V]()
	sl, _ := e.at(k).(*seqSlot[V])
	if sl == nil {
		sl = &seqSlot[V]{}
		e.setAt(k, sl)
	}
	return sl
}

func textSlot(e *entry) *seqSlot[rune]            { return seqSlotOf[rune](e) }
func listSlot(e *entry) *seqSlot[json.RawMessage] { return seqSlotOf[json.RawMessage](e) }

// text returns e's text, or nil.
func (e *entry) text() *seqSlot[rune] {
	sl, _ := e.at(KindText).(*seqSlot[rune])
	return sl
}

// list returns e's list, or nil.
func (e *entry) list() *seqSlot[json.RawMessage] {
	sl, _ := e.at(KindList).(*seqSlot[json.RawMessage])
	return sl
}

func (s *State) insertMade(e *entry, k Kind, d Dot) {
	if k == KindText {
		sl := textSlot(e)
		sl.made = append(sl.made, d)
	} else {
		sl := listSlot(e)
		sl.made = append(sl.made, d)
	}
	s.idx.put(d, loc{e: e, kind: k})
}

// mergeSlot merges src, a sequence of a merged state, into de's. In a
// join (of deltas into a delta) the changes are joined; otherwise they are
// integrated into de's sequence, and their patches collected.
func mergeSlot[V SeqValue](s *State, de *entry, k Kind, slot func(*entry) *seqSlot[V], src *seqSlot[V], join bool) bool {
	added := false
	for _, d := range src.made {
		if s.unseen(d) {
			s.insertMade(de, k, d)
			added = true
		}
	}
	c := src.content()
	if c.IsEmpty() {
		return added
	}
	dst := slot(de)
	if join {
		dst.join(c)
		return true
	}
	seq := dst.state()
	lost, orphans := seq.stats.Invalid, seq.stats.Orphans
	notes := s.notes()
	seq.unbounded = notes.unbounded
	ps := seq.Merge(c)
	seq.unbounded = false
	notes.lost += seq.stats.Invalid - lost
	if seq.stats.Orphans != orphans || seq.pend.n > 0 {
		notes.mayWant = true // WantsCollected looks again
	}
	if r := seq.takeRefused(); r != nil {
		if notes.refused == nil {
			notes.refused = NewCausalContext()
		}
		notes.refused.Merge(r)
	}
	if len(ps) > 0 {
		added = true
		if notes.edits != nil {
			path := de.path()
			for _, p := range ps {
				notes.edits.add(seqPatch(path, p), KindNone) // the merge recorded the kind before
			}
		}
	}
	return added
}

func seqPatch[V SeqValue](path []string, p Patch[V]) SeqPatch {
	out := SeqPatch{Path: path, Index: p.Index, Delete: p.Delete}
	switch vs := any(p.Insert).(type) {
	case []rune:
		out.Text = string(vs)
	case []json.RawMessage:
		out.List = true
		if len(vs) > 0 {
			out.Values = slices.Clone(vs)
		}
	}
	return out
}

// SeqLost returns how many inserts merges into s have dropped so far:
// inserts naming collected or inconsistent origins (see SeqStats).
func (s *State) SeqLost() uint64 {
	if s.side == nil {
		return 0
	}
	return s.side.lost
}

// SeqRefused returns how many merges into s refused part of what they
// merged: sequence changes that would have been held back past the bound
// (Seq.Merge). Their dots are not in s's context; the caller must not
// claim them (not log or acknowledge the delta), so they are sent again.
func (s *State) SeqRefused() uint64 {
	if s.side == nil {
		return 0
	}
	return s.side.refusals
}

// HasSequences reports whether s holds texts or lists (their content or
// their creation): what a peer that does not speak them cannot decode.
func (s *State) HasSequences() bool { return hasSeqs(s.root) }

func hasSeqs(n *mapNode) bool {
	if n == nil {
		return false
	}
	for _, e := range n.kids.all() {
		if !e.text().empty() || !e.list().empty() || hasSeqs(e.sub) {
			return true
		}
	}
	return false
}

// MergeStored is Merge for what this replica accepted once (its log,
// replayed at open): sequence changes are held back past the bound rather
// than refused — the order of a replay is the log's, not the arrival's,
// and refusing would lose what the log claims.
func (s *State) MergeStored(src *State) {
	s.notes().unbounded = true
	s.merge(src, nil, false)
	s.side.unbounded = false
}

// JoinDelta joins delta src into s, a delta too (a batch of deltas into
// one): sequence changes are joined as changes, not integrated, so the
// result holds all of them even when what they refer to is in neither.
func (s *State) JoinDelta(src *State) {
	s.notes().joining = true
	s.merge(src, nil, false)
	s.side.joining = false
}

// MergeEdits is MergeChanges that also returns the sequence patches of
// the merge, in order (see patches.go for which keys have them).
func (s *State) MergeEdits(src *State) ([][]string, []SeqPatch) { return s.mergeEdits(src, false) }

// MergeUnverifiedEdits is MergeUnverifiedChanges with the patches.
func (s *State) MergeUnverifiedEdits(src *State) ([][]string, []SeqPatch) {
	return s.mergeEdits(src, true)
}

func (s *State) mergeEdits(src *State, keepHeld bool) ([][]string, []SeqPatch) {
	l := &editLog{}
	l.noteBefore(s, src.root, nil)
	s.notes().edits = l
	paths := s.mergeChanges(src, keepHeld)
	s.side.edits = nil
	return paths, l.patches(s)
}

// seqAt returns the text or list at path, for reading.
func (s *State) textAt(path []string) *Seq[rune] {
	e := s.lookup(path)
	if e.kind() != KindText {
		return nil
	}
	return e.text().view()
}

func (s *State) listAt(path []string) *Seq[json.RawMessage] {
	e := s.lookup(path)
	if e.kind() != KindList {
		return nil
	}
	return e.list().view()
}

// Text returns the text at path, and false when path holds no text.
func (s *State) Text(path []string) (string, bool) {
	t := s.textAt(path)
	if t == nil {
		return "", false
	}
	return t.String(), true
}

// List returns the values of the list at path, and false when path holds
// no list.
func (s *State) List(path []string) ([]json.RawMessage, bool) {
	l := s.listAt(path)
	if l == nil {
		return nil, false
	}
	vs := l.Values()
	out := make([]json.RawMessage, len(vs))
	for i, v := range vs {
		out[i] = slices.Clone(v)
	}
	return out, true
}

// SeqLen returns the length of the text or list at path (0 when there is
// none).
func (s *State) SeqLen(path []string) int {
	e := s.lookup(path)
	switch e.kind() {
	case KindText:
		return e.text().view().Len()
	case KindList:
		return e.list().view().Len()
	}
	return 0
}

// Cursor returns a stable position in the text or list at path: the ID of
// the element at index (0 ≤ index ≤ length; the length gives the end),
// which stays on that element whatever is inserted or deleted around it.
// CursorIndex turns it back into an index.
func (s *State) Cursor(path []string, index int) (Dot, error) {
	e := s.lookup(path)
	switch e.kind() {
	case KindText:
		return e.text().view().CursorAt(index)
	case KindList:
		return e.list().view().CursorAt(index)
	}
	return Dot{}, fmt.Errorf("%w: no text or list at %q", ErrTypeConflict, path)
}

// CursorIndex returns the index of the element a cursor of Cursor names:
// for a deleted element, the index it would have. It returns an error
// wrapping ErrSeqCursor for an element this state does not hold.
func (s *State) CursorIndex(path []string, c Dot) (int, error) {
	e := s.lookup(path)
	switch e.kind() {
	case KindText:
		return e.text().view().IndexOf(c)
	case KindList:
		return e.list().view().IndexOf(c)
	}
	return 0, fmt.Errorf("%w: no text or list at %q", ErrTypeConflict, path)
}

// The sequence kinds' kindStore methods.

var (
	_ kindStore = (*seqSlot[rune])(nil)
	_ kindStore = (*seqSlot[json.RawMessage])(nil)
)

// covered: a delete of the key, and a splice of the other sequence kind,
// observe the creation dots; the elements are deleted explicitly (see
// deleteSeqs), as a splice deletes them.
func (sl *seqSlot[V]) covered(out []Dot, op Op, _ ReplicaID, below bool) []Dot {
	// A delete covers the creation; so does a write below the key (it
	// resolves the conflict in favour of the map, as it does for the other
	// kinds; applyOne deletes the elements) and a splice of the other
	// sequence kind.
	if op.Kind == OpDelete || below || op.Kind == OpSplice && op.Seq != seqKindOf[V]() {
		return append(out, sl.made...)
	}
	return out
}

func (sl *seqSlot[V]) write(Dot, string) write { return write{kind: seqKindOf[V]()} }

func (sl *seqSlot[V]) remove(d Dot, _ string) { sl.unmake(d) }

func (sl *seqSlot[V]) mergeInto(s *State, de *entry, _ merger) bool {
	return mergeSlot(s, de, seqKindOf[V](), seqSlotOf[V], sl, s.side != nil && s.side.joining)
}

// writeJSON writes a text as a JSON string, a list as an array.
func (sl *seqSlot[V]) writeJSON(buf *bytes.Buffer) {
	switch v := any(sl.view()).(type) {
	case *Seq[rune]:
		b, _ := json.Marshal(v.String()) // valid UTF-8: cannot fail
		buf.Write(b)
	case *Seq[json.RawMessage]:
		buf.WriteByte('[')
		for i, x := range v.Values() {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(x)
		}
		buf.WriteByte(']')
	}
}

func (sl *seqSlot[V]) encode(we *wEntry, index map[ReplicaID]uint64, origin ReplicaID) {
	if seqKindOf[V]() == KindText {
		we.Text = encodeSlot(sl, index, origin)
	} else {
		we.List = encodeSlot(sl, index, origin)
	}
}

// splitCost: a creation dot, in its slot (the sequence's change travels
// in a piece of its own: see splitSeqs).
func (sl *seqSlot[V]) splitCost(sp *splitter, _ *entry, d Dot, _ string) (int, bool) {
	return 8 + 1 + sp.replicaLen(d) + uintLen(d.Counter), true
}

func (sl *seqSlot[V]) splitAdd(p *State, in *entry, d Dot, _ string) {
	p.insertMade(in, seqKindOf[V](), d)
}
