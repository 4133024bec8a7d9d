package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/concord-p2p/concord/crdt"
)

// Change numbers and rebasing. Every change of the state gets a number,
// one more than the change before, in the order the changes are applied
// (Change.N). A client that sees the document only through its views and
// change events — a web page — edits a text by index, but the state may
// have moved on by the time its splice arrives. It names the change whose
// view it edited (the base), and the engine moves the splice's index and
// deleted range over the sequence patches of the changes applied since
// (operational transformation of index ranges), then applies it. So a
// keystroke lands where its author saw it, whatever came in between.

// ErrStaleBase: a splice's base is too old to rebase (the changes after
// it are no longer kept, or one of them replaced the sequence without
// patches) or newer than the last change. The client reads the document
// again and rebases its edits itself.
var ErrStaleBase = errors.New("concord: stale base")

// Bounds of the changes kept for rebasing: those with sequence patches,
// at most this many and this many bytes of patches, per document (so at
// most MaxDocs MiB for a node whose documents all have listeners). A
// client is rarely more than a few changes behind; one further behind
// reads the document again.
const (
	maxRebaseChanges = 256
	maxRebaseBytes   = 1 << 20
	maxBarePaths     = 64 // paths changed without patches kept per change
)

// rebaseLog keeps the patches of the latest changes.
type rebaseLog struct {
	last    uint64 // number of the last change
	floor   uint64 // a base below it cannot be rebased
	changes []keptChange
	bytes   int
}

// keptChange is one change kept for rebasing.
type keptChange struct {
	n       uint64
	patches []crdt.SeqPatch
	bare    [][]string // paths changed without patches (a kind switch)
	bytes   int
}

// startNumbers makes first the number of the first change.
func (l *rebaseLog) startNumbers(first uint64) {
	if first == 0 {
		first = 1
	}
	l.last, l.floor = first-1, first-1
}

// next returns the number of a new change.
func (l *rebaseLog) next() uint64 {
	l.last++
	return l.last
}

// record keeps what change n (the last one, or the open local change)
// did: its patches and the paths it changed without patches. tracked is
// false when neither was computed (no subscriber): nothing before n can
// then be rebased over it.
func (l *rebaseLog) record(n uint64, tracked bool, paths [][]string, patches []crdt.SeqPatch) {
	if !tracked {
		l.barrier(n)
		return
	}
	var bare [][]string
	for _, p := range paths {
		if !slices.ContainsFunc(patches, func(sp crdt.SeqPatch) bool { return slices.Equal(sp.Path, p) }) {
			bare = append(bare, p)
		}
	}
	if len(patches) == 0 && len(bare) == 0 {
		return
	}
	size := 0
	for _, p := range patches {
		size += 48 + len(p.Text) + 16*len(p.Values)
		for _, v := range p.Values {
			size += len(v)
		}
	}
	for _, p := range bare {
		size += 24 * len(p)
	}
	var c *keptChange
	if k := len(l.changes); k > 0 && l.changes[k-1].n == n {
		c = &l.changes[k-1]
	} else {
		l.changes = append(l.changes, keptChange{n: n})
		c = &l.changes[len(l.changes)-1]
	}
	if len(c.bare)+len(bare) > maxBarePaths || size > maxRebaseBytes/4 {
		l.barrier(n)
		return
	}
	c.patches = append(c.patches, patches...)
	c.bare = append(c.bare, bare...)
	c.bytes += size
	l.bytes += size
	for len(l.changes) > maxRebaseChanges || l.bytes > maxRebaseBytes {
		l.floor = l.changes[0].n
		l.bytes -= l.changes[0].bytes
		l.changes[0] = keptChange{}
		l.changes = l.changes[1:]
	}
}

// barrier forgets every change up to n: no base before n can be rebased.
func (l *rebaseLog) barrier(n uint64) {
	l.floor = max(l.floor, n)
	i := 0
	for i < len(l.changes) && l.changes[i].n <= n {
		l.bytes -= l.changes[i].bytes
		i++
	}
	clear(l.changes[:i])
	l.changes = l.changes[i:]
	if len(l.changes) == 0 {
		l.changes = nil
	}
}

// since returns the patches on path of the changes after base, in order.
func (l *rebaseLog) since(base uint64, path []string) ([]crdt.SeqPatch, error) {
	if base > l.last {
		return nil, fmt.Errorf("%w: change %d is after the last one (%d)", ErrStaleBase, base, l.last)
	}
	if base < l.floor {
		return nil, fmt.Errorf("%w: the changes after %d are no longer kept (from %d)", ErrStaleBase, base, l.floor)
	}
	i, _ := slices.BinarySearchFunc(l.changes, base+1, func(c keptChange, n uint64) int { return cmpU64(c.n, n) })
	var out []crdt.SeqPatch
	for _, c := range l.changes[i:] {
		for _, b := range c.bare {
			if isPrefix(b, path) || isPrefix(path, b) {
				return nil, fmt.Errorf("%w: change %d replaced %q", ErrStaleBase, c.n, path)
			}
		}
		for _, p := range c.patches {
			if slices.Equal(p.Path, path) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func isPrefix(p, of []string) bool { return len(p) <= len(of) && slices.Equal(p, of[:len(p)]) }

// Span is a range of a sequence: N elements from At.
type Span struct{ At, N int }

// RebaseSplice moves a splice — delete del at index, then insert at index
// — made on some view over patches applied to that view since, in order.
// It returns where to insert and what to delete now, the spans from last
// to first (each delete leaving the ones before it in place); every span
// is at or after the insert index. The rules: a patch that inserted at or
// before the index moves it right (at one index, the patch's elements
// come first); one that deleted before it moves it left; elements a patch
// inserted inside the deleted range stay (the delete splits around them),
// and elements it deleted already are not deleted twice.
func RebaseSplice(index, del int, patches []crdt.SeqPatch) (ins int, dels []Span) {
	ins = index
	if del > 0 {
		dels = []Span{{index, del}}
	}
	for _, p := range patches {
		pi, pd, pl := p.Index, p.Delete, patchLen(p)
		var out []Span
		for _, s := range dels {
			a, b := s.At, s.At+s.N
			if a < pi {
				out = append(out, Span{a, min(b, pi) - a})
			}
			if b > pi+pd {
				c := max(a, pi+pd)
				out = append(out, Span{c - pd + pl, b - c})
			}
		}
		dels = out
		ins = RebaseIndex(ins, p)
	}
	slices.Reverse(dels)
	return ins, dels
}

// RebaseIndex moves an index (a caret between elements) over one patch
// applied to its view: a patch inserting at the index moves it after the
// inserted elements.
func RebaseIndex(i int, p crdt.SeqPatch) int {
	pi, pd, pl := p.Index, p.Delete, patchLen(p)
	switch {
	case i < pi:
		return i
	case i <= pi+pd:
		return pi + pl
	default:
		return i - pd + pl
	}
}

// patchLen returns how many elements (code points of a text) p inserted.
func patchLen(p crdt.SeqPatch) int {
	if p.List {
		return len(p.Values)
	}
	return utf8.RuneCountInString(p.Text)
}

// Position returns the number of the last change: the state's view is the
// one after it. Local writes after it are a new change (the open one is
// closed), so a client that edits on this view can name it as the base.
func (d *Doc) Position() uint64 {
	d.openLocal = nil
	return d.rebase.last
}

// RebaseIndexSince moves index, on the view of path after change base,
// to the current view.
func (d *Doc) RebaseIndexSince(base uint64, path []string, index int) (int, error) {
	ps, err := d.rebase.since(base, path)
	if err != nil {
		return 0, err
	}
	for _, p := range ps {
		index = RebaseIndex(index, p)
	}
	return index, nil
}

// rebaseOps replaces each splice of ops with a base (bases[i] != 0) by the
// splices that do the same on the current view.
func (d *Doc) rebaseOps(ops []crdt.Op, bases []uint64) ([]crdt.Op, error) {
	if len(bases) == 0 {
		return ops, nil
	}
	out := make([]crdt.Op, 0, len(ops))
	for i, op := range ops {
		if i >= len(bases) || bases[i] == 0 {
			out = append(out, op)
			continue
		}
		if op.Kind != crdt.OpSplice {
			return nil, fmt.Errorf("%w: op %d: only a splice takes a base", crdt.ErrInvalidOp, i)
		}
		if op.Index < 0 || op.Del < 0 || op.Index > math.MaxInt32 || op.Del > math.MaxInt32 {
			return nil, fmt.Errorf("%w: op %d: splice at %d deleting %d", crdt.ErrInvalidOp, i, op.Index, op.Del)
		}
		// Another op of the transaction on the path (a second splice, with
		// a base or not, or a write at or above it) would have to be
		// rebased over too: a splice with a base is its path's only op.
		for j, o := range ops {
			if j != i && (isPrefix(o.Path, op.Path) || isPrefix(op.Path, o.Path)) {
				return nil, fmt.Errorf("%w: op %d: a splice with a base must be the only op on %q in its transaction (op %d is on %q)", crdt.ErrInvalidOp, i, op.Path, j, o.Path)
			}
		}
		ps, err := d.rebase.since(bases[i], op.Path)
		if err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
		ins, dels := RebaseSplice(op.Index, op.Del, ps)
		for _, s := range dels {
			out = append(out, crdt.SpliceDelete(op.Path, s.At, s.N))
		}
		// A pure delete of what others deleted already stays as an empty
		// splice: the transaction is not empty, and changes nothing.
		if op.Text != "" || len(op.Values) > 0 || op.Del == 0 || len(dels) == 0 {
			op.Index, op.Del = ins, 0
			out = append(out, op)
		}
	}
	return out, nil
}
