package concord

import (
	"encoding/json"
	"fmt"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
)

// Editing on a view that may be behind. A client that sees a document
// through a view and its change events (a web page) edits a text by index,
// but by the time its splice arrives the node may have applied changes the
// client has not seen yet. The client names the change whose view it
// edited (Change.N, or the number Doc.JSONAt returns), and the node moves
// the splice over the changes since, so that it lands where its author saw
// it: text inserted before the index moves it right (at the same index,
// the other text comes first), text deleted before it moves it left, text
// inserted inside the deleted range stays. The node keeps the patches of
// the last 256 changes with sequence edits (1 MiB) for this.

// ErrStaleBase is returned for a splice whose base can no longer be
// rebased: the changes after it are not kept any more (or were applied
// while nobody subscribed), one of them replaced the sequence outright,
// or the base is newer than the last change. Read the document again
// (Doc.JSONAt) and rebase the edit on the new view.
var ErrStaleBase = engine.ErrStaleBase

// JSONAt returns the document's JSON view and the number of the change it
// follows: the changes after it are those with a larger Change.N. Local
// writes after the call are a new change.
func (d *Doc) JSONAt() (v json.RawMessage, n uint64) {
	d.r.position(func(st *crdt.State, at uint64) { v, n = st.JSON(), at })
	return v, n
}

// Position returns the number of the change the document's view follows
// now, as JSONAt does, without encoding the view.
func (d *Doc) Position() (n uint64) {
	d.r.position(func(_ *crdt.State, at uint64) { n = at })
	return n
}

// Op adds a built op (crdt.Set, crdt.Splice, ...) to the transaction.
func (t *Txn) Op(op crdt.Op) *Txn { return t.OpAt(0, op) }

// OpAt adds op, a splice made on the view after change base (0: on the
// current view), to the transaction: the node rebases it over the changes
// since when it applies it. The transaction fails with ErrStaleBase when
// it cannot. A splice with a base must be the only op on its path (and
// the paths above and below it) in the transaction: another would have to
// be rebased over too (crdt.ErrInvalidOp otherwise).
func (t *Txn) OpAt(base uint64, op crdt.Op) *Txn {
	if base == 0 {
		t.add(op)
		return t
	}
	if op.Kind != crdt.OpSplice && t.err == nil {
		t.err = fmt.Errorf("%w: only a splice takes a base", crdt.ErrInvalidOp)
	}
	if t.bases == nil {
		t.bases = make([]uint64, len(t.ops), len(t.ops)+1)
	}
	t.ops = append(t.ops, op)
	t.bases = append(t.bases, base)
	return t
}

// add adds an op without a base.
func (t *Txn) add(op crdt.Op) {
	t.ops = append(t.ops, op)
	if t.bases != nil {
		t.bases = append(t.bases, 0)
	}
}

// SpliceAt is Splice on the view after change base (see OpAt).
func (t *Txn) SpliceAt(base uint64, path []string, index, del int, text string) *Txn {
	return t.OpAt(base, crdt.Splice(path, index, del, text))
}

// SpliceListAt is SpliceList on the view after change base (see OpAt).
func (t *Txn) SpliceListAt(base uint64, path []string, index, del int, values ...any) *Txn {
	vs := make([]json.RawMessage, len(values))
	for i, v := range values {
		vs[i] = t.value(v)
	}
	return t.OpAt(base, crdt.SpliceList(path, index, del, vs...))
}

// CursorAt returns the cursor at index of the text or list at path, index
// being on the view after change base (0: the current view); see Cursor.
func (d *Doc) CursorAt(base uint64, path []string, index int) (c Cursor, err error) {
	d.r.view(func(st *crdt.State) {
		if base != 0 {
			if index, err = d.r.eng.RebaseIndexSince(base, path, index); err != nil {
				return
			}
		}
		c.id, err = st.Cursor(path, index)
	})
	return c, err
}

// CursorIndexes returns where each cursor is now in the text or list at
// path (see CursorIndex), -1 for one unknown here, and the number of the
// change whose view the indexes are on.
func (d *Doc) CursorIndexes(path []string, cs []Cursor) (idx []int, n uint64) {
	idx = make([]int, len(cs))
	d.r.position(func(st *crdt.State, at uint64) {
		n = at
		for i, c := range cs {
			j, err := st.CursorIndex(path, c.id)
			if err != nil {
				j = -1
			}
			idx[i] = j
		}
	})
	return idx, n
}
