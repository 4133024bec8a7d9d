package concord

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/concord-p2p/concord/crdt"
)

// Texts and lists. A text is a sequence of Unicode code points, a list a
// sequence of JSON values; both are edited by splices (delete some at an
// index, insert some there), merge without interleaving concurrent runs
// (crdt.Seq), and report their edits as patches in change events.
// Positions count code points in a text and elements in a list.

// Splice deletes del code points at index of the text at path and inserts
// text there. On a path that holds nothing it creates the text.
func (t *Txn) Splice(path []string, index, del int, text string) *Txn {
	t.add(crdt.Splice(path, index, del, text))
	return t
}

// SpliceList deletes del elements at index of the list at path and inserts
// values there (each JSON-marshalable, or json.RawMessage). On a path that
// holds nothing it creates the list. A list element is any JSON value; a
// map inside one is a value (replaced whole), not a nested CRDT map.
func (t *Txn) SpliceList(path []string, index, del int, values ...any) *Txn {
	vs := make([]json.RawMessage, len(values))
	for i, v := range values {
		vs[i] = t.value(v)
	}
	t.add(crdt.SpliceList(path, index, del, vs...))
	return t
}

// SpliceDelete deletes del elements at index of the text or list at path.
func (t *Txn) SpliceDelete(path []string, index, del int) *Txn {
	t.add(crdt.SpliceDelete(path, index, del))
	return t
}

// Splice applies one text splice as a transaction (see Txn.Splice).
func (d *Doc) Splice(ctx context.Context, path []string, index, del int, text string) error {
	return d.Apply(ctx, crdt.Splice(path, index, del, text))
}

// Text returns the text at path; false when path holds no text.
func (d *Doc) Text(path ...string) (s string, ok bool) {
	d.r.view(func(st *crdt.State) { s, ok = st.Text(path) })
	return s, ok
}

// List returns the values of the list at path; false when path holds no
// list.
func (d *Doc) List(path ...string) (vs []json.RawMessage, ok bool) {
	d.r.view(func(st *crdt.State) { vs, ok = st.List(path) })
	return vs, ok
}

// Cursor is a stable position in a text or a list: it names an element
// (or the end), and stays on it whatever is inserted or deleted around it,
// here or on other peers. Its String form travels (presence, a web page)
// and parses back with ParseCursor.
type Cursor struct{ id crdt.Dot }

// End is the cursor at the end of any text or list.
var End = Cursor{}

// String returns "end" or "<counter>@<replica>".
func (c Cursor) String() string {
	if c.id.Counter == 0 {
		return "end"
	}
	return strconv.FormatUint(c.id.Counter, 10) + "@" + string(c.id.Replica)
}

// ParseCursor parses the String form of a cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "end" {
		return End, nil
	}
	n, rep, ok := strings.Cut(s, "@")
	c, err := strconv.ParseUint(n, 10, 64)
	if !ok || err != nil || c == 0 || rep == "" {
		return Cursor{}, fmt.Errorf("concord: bad cursor %q", s)
	}
	return Cursor{crdt.Dot{Replica: crdt.ReplicaID(rep), Counter: c}}, nil
}

// Cursor returns the cursor at index of the text or list at path (0 ≤
// index ≤ length; the length gives End).
func (d *Doc) Cursor(path []string, index int) (c Cursor, err error) {
	d.r.view(func(st *crdt.State) { c.id, err = st.Cursor(path, index) })
	return c, err
}

// CursorIndex returns where cursor c is now in the text or list at path:
// the index of its element, or for a deleted one the index it would have.
// The error wraps crdt.ErrSeqCursor when the element is unknown here (not
// received yet, or collected long after its delete).
func (d *Doc) CursorIndex(path []string, c Cursor) (i int, err error) {
	d.r.view(func(st *crdt.State) { i, err = st.CursorIndex(path, c.id) })
	return i, err
}
