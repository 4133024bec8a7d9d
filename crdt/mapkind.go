package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The map kind: a nested observed-remove map, whose content is entries.

// mapNode is a map of a document: the root, or the map kind's store at a
// key. It holds no dots itself: its writes are those of its entries, and
// State.idx locates them there. Its entries are a keyMap.
type mapNode struct {
	owner *entry // nil for the document root
	kids  keyMap
}

var _ kindStore = (*mapNode)(nil)

// subMap returns e's map, creating it with room for hint keys.
func (e *entry) subMap(hint int) *mapNode {
	if e.sub == nil {
		e.sub = &mapNode{owner: e}
		e.sub.kids.grow(hint)
		e.setAt(KindMap, e.sub)
	}
	return e.sub
}

func (n *mapNode) empty() bool { return n.kids.len() == 0 }

// visible reports whether a key of the map shows something: a map whose
// keys hold only deleted texts (tombstones kept as anchors) shows as
// nothing, as it would had they been registers.
func (n *mapNode) visible() bool {
	for _, e := range n.kids.all() {
		if e.kind() != KindNone {
			return true
		}
	}
	return false
}

// covered: only a delete of the key observes what the map holds, all of
// it; a write below the key keeps the map.
func (n *mapNode) covered(out []Dot, op Op, replica ReplicaID, _ bool) []Dot {
	if op.Kind != OpDelete {
		return out
	}
	for _, e := range n.kids.all() {
		out = e.covered(out, op, replica, false)
	}
	return out
}

// write, remove, splitCost and splitAdd are never called: no dot is
// located at a map itself.
func (n *mapNode) write(Dot, string) write { return write{kind: KindMap} }

func (n *mapNode) remove(Dot, string) {}

func (n *mapNode) splitCost(*splitter, *entry, Dot, string) (int, bool) { return 0, true }

func (n *mapNode) splitAdd(*State, *entry, Dot, string) {}

// mergeInto merges the map's entries into de's map (see State.mergeNode);
// what it adds is at those entries, not at de.
func (n *mapNode) mergeInto(s *State, de *entry, m merger) bool {
	if n.kids.len() > 0 {
		s.mergeNode(de.subMap(n.kids.len()), n, m)
	}
	return false
}

// writeJSON writes the map as an object with sorted keys, leaving out the
// keys that show nothing.
func (n *mapNode) writeJSON(buf *bytes.Buffer) {
	type shown struct {
		key  string
		e    *entry
		kind Kind
	}
	kids := make([]shown, 0, n.kids.len())
	for k, e := range n.kids.all() {
		if kind := e.kind(); kind != KindNone {
			kids = append(kids, shown{k, e, kind})
		}
	}
	slices.SortFunc(kids, func(a, b shown) int { return strings.Compare(a.key, b.key) })
	buf.WriteByte('{')
	for i, x := range kids {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONKey(buf, x.key)
		buf.WriteByte(':')
		x.e.at(x.kind).writeJSON(buf)
	}
	buf.WriteByte('}')
}

// writeJSONKey writes k as a JSON string, as encoding/json does: a key of
// printable ASCII that needs no escape is written as it is, any other
// through json.Marshal (which escapes HTML characters, U+2028 and U+2029,
// and replaces invalid UTF-8).
func writeJSONKey(buf *bytes.Buffer, k string) {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(k)
	buf.WriteByte('"')
}

// wMap is a map encoded: key → entry.
type wMap map[string]*wEntry

func (n *mapNode) encode(we *wEntry, index map[ReplicaID]uint64, origin ReplicaID) {
	we.Map = n.encodeKids(index, origin)
}

// encodeKids encodes the map's entries (nil when it has none).
func (n *mapNode) encodeKids(index map[ReplicaID]uint64, origin ReplicaID) wMap {
	if n.kids.len() == 0 {
		return nil
	}
	out := make(wMap, n.kids.len())
	for k, e := range n.kids.all() {
		we := &wEntry{}
		for v := range e.stores() {
			v.encode(we, index, origin)
		}
		out[k] = we
	}
	return out
}

func (w *wMap) decode(at *decodeAt) error {
	return decodeMap(at.s, at.path, *w, at.rep, at.depth+1, at.lim, at.budget)
}

// decodeMap adds the entries of m, the map at prefix (depth maps deep), to
// s; budget is shared by the document's sequences (see decodeSlot).
func decodeMap(s *State, prefix []string, m wMap, rep func(uint64) (ReplicaID, error), depth int, lim Limits, budget *int) error {
	if len(m) > 0 && depth >= MaxPathDepth {
		return fmt.Errorf("%w: maps nested deeper than %d", ErrMalformed, MaxPathDepth)
	}
	at := &decodeAt{s: s, rep: rep, depth: depth, lim: lim, budget: budget}
	for k, we := range m {
		if we == nil {
			return fmt.Errorf("%w: null entry at %q", ErrMalformed, k)
		}
		at.path, at.e = append(append([]string(nil), prefix...), k), nil
		for _, w := range we.kinds() {
			if err := w.decode(at); err != nil {
				return err
			}
		}
	}
	return nil
}
