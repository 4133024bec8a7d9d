package crdt

// The B-tree of a Seq: its leaves hold the items (runs of elements) in
// document order, tombstones included; every node keeps the number of
// visible and of all elements below it, so a visible index or a position
// among all elements is found in O(log n), and an item's index is computed
// by walking up from its leaf.

const (
	seqLeafMax  = 32 // items per leaf
	seqInnerMax = 16 // children per inner node
)

// sid is an element ID inside a Seq: an interned replica and a counter.
// Counter 0 means "none" (the start or the end of the sequence).
type sid struct {
	r uint32
	c uint64
}

func (a sid) none() bool { return a.c == 0 }

// sitem is a run of elements: counters ctr..ctr+n-1 of replica rep, each
// element after the first inserted right after the previous one (its left
// origin) with the same right origin. All of an item is visible or all of
// it is deleted.
type sitem[V any] struct {
	ol, or sid // origins of the first element; none = start / end
	st     sid // delete stamp of a tombstone (see seqgc.go); c 0 = unknown
	ctr    uint64
	n      int
	rep    uint32
	del    bool
	vals   []V // len n when visible, nil when deleted
}

func (it *sitem[V]) vis() int {
	if it.del {
		return 0
	}
	return it.n
}

func (it *sitem[V]) first() sid { return sid{it.rep, it.ctr} }
func (it *sitem[V]) last() sid  { return sid{it.rep, it.ctr + uint64(it.n) - 1} }

func (it *sitem[V]) has(r uint32, c uint64) bool {
	return it.rep == r && c >= it.ctr && c < it.ctr+uint64(it.n)
}

type snode[V any] struct {
	parent     *snode[V]
	kids       []*snode[V] // inner nodes
	items      []sitem[V]  // leaves
	prev, next *snode[V]   // leaves, in document order
	vis, tot   int
	leaf       bool
}

// stree is the B-tree. It calls onMove for every item that changes leaf, so
// the ID index stays right.
type stree[V any] struct {
	root, first, last *snode[V]
	onMove            func(it *sitem[V], to *snode[V])
}

func (t *stree[V]) init() {
	l := &snode[V]{leaf: true, items: make([]sitem[V], 0, 4)}
	t.root, t.first, t.last = l, l, l
}

// add adds dv visible and dt elements to n and its ancestors.
func (t *stree[V]) add(n *snode[V], dv, dt int) {
	for ; n != nil; n = n.parent {
		n.vis += dv
		n.tot += dt
	}
}

// seekVis returns where the element with visible index i (0 ≤ i < vis)
// is: its leaf, item index and offset in the item, and the visible index
// of the leaf's first element.
func (t *stree[V]) seekVis(i int) (*snode[V], int, int) {
	n := t.root
	for !n.leaf {
		k := 0
		for ; k < len(n.kids)-1; k++ {
			if i < n.kids[k].vis {
				break
			}
			i -= n.kids[k].vis
		}
		n = n.kids[k]
	}
	for j := range n.items {
		it := &n.items[j]
		if it.del {
			continue
		}
		if i < it.n {
			return n, j, i
		}
		i -= it.n
	}
	panic("crdt: seq tree counts are inconsistent")
}

// seekTot returns where the element at position p among all elements
// (0 ≤ p < tot) is.
func (t *stree[V]) seekTot(p int) (*snode[V], int, int) {
	n := t.root
	for !n.leaf {
		k := 0
		for ; k < len(n.kids)-1; k++ {
			if p < n.kids[k].tot {
				break
			}
			p -= n.kids[k].tot
		}
		n = n.kids[k]
	}
	for j := range n.items {
		if p < n.items[j].n {
			return n, j, p
		}
		p -= n.items[j].n
	}
	panic("crdt: seq tree counts are inconsistent")
}

// pos returns the position among all elements and the visible index of
// the first element of item j of leaf l.
func (t *stree[V]) pos(l *snode[V], j int) (tot, vis int) {
	for k := 0; k < j; k++ {
		tot += l.items[k].n
		vis += l.items[k].vis()
	}
	for c, p := l, l.parent; p != nil; c, p = p, p.parent {
		for _, k := range p.kids {
			if k == c {
				break
			}
			tot += k.tot
			vis += k.vis
		}
	}
	return tot, vis
}

// prevItem returns the item before item j of leaf l, or nil.
func (t *stree[V]) prevItem(l *snode[V], j int) (*snode[V], int) {
	if j > 0 {
		return l, j - 1
	}
	for l = l.prev; l != nil; l = l.prev {
		if len(l.items) > 0 {
			return l, len(l.items) - 1
		}
	}
	return nil, 0
}

// nextItem returns the item after item j of leaf l, or nil.
func (t *stree[V]) nextItem(l *snode[V], j int) (*snode[V], int) {
	if j+1 < len(l.items) {
		return l, j + 1
	}
	for l = l.next; l != nil; l = l.next {
		if len(l.items) > 0 {
			return l, 0
		}
	}
	return nil, 0
}

// insert puts it before item j of leaf l (j = len(items) appends) and
// returns where it landed. The caller registers it in the ID index.
func (t *stree[V]) insert(l *snode[V], j int, it sitem[V]) (*snode[V], int) {
	if len(l.items) >= seqLeafMax {
		r := t.splitLeaf(l)
		if j > len(l.items) {
			j -= len(l.items)
			l = r
		}
	}
	l.items = append(l.items, sitem[V]{})
	copy(l.items[j+1:], l.items[j:])
	l.items[j] = it
	t.add(l, it.vis(), it.n)
	return l, j
}

// remove deletes item j of leaf l, and the leaf if it empties (the root
// leaf stays).
func (t *stree[V]) remove(l *snode[V], j int) {
	it := &l.items[j]
	t.add(l, -it.vis(), -it.n)
	copy(l.items[j:], l.items[j+1:])
	l.items[len(l.items)-1] = sitem[V]{}
	l.items = l.items[:len(l.items)-1]
	if len(l.items) == 0 && l.parent != nil {
		t.unlink(l)
	}
}

// unlink removes the empty node n from its parent, and the parent if it
// empties.
func (t *stree[V]) unlink(n *snode[V]) {
	if n.leaf {
		if n.prev != nil {
			n.prev.next = n.next
		} else {
			t.first = n.next
		}
		if n.next != nil {
			n.next.prev = n.prev
		} else {
			t.last = n.prev
		}
	}
	p := n.parent
	for k, c := range p.kids {
		if c == n {
			copy(p.kids[k:], p.kids[k+1:])
			p.kids[len(p.kids)-1] = nil
			p.kids = p.kids[:len(p.kids)-1]
			break
		}
	}
	switch {
	case len(p.kids) == 0 && p.parent != nil:
		t.unlink(p)
	case len(p.kids) == 1 && p == t.root:
		t.root = p.kids[0]
		t.root.parent = nil
	}
}

// splitLeaf moves the upper half of l into a new leaf after it.
func (t *stree[V]) splitLeaf(l *snode[V]) *snode[V] {
	h := len(l.items) / 2
	r := &snode[V]{leaf: true, items: make([]sitem[V], len(l.items)-h, seqLeafMax)}
	copy(r.items, l.items[h:])
	clear(l.items[h:])
	l.items = l.items[:h]
	for j := range r.items {
		it := &r.items[j]
		r.vis += it.vis()
		r.tot += it.n
		if t.onMove != nil {
			t.onMove(it, r)
		}
	}
	r.prev, r.next = l, l.next
	if l.next != nil {
		l.next.prev = r
	} else {
		t.last = r
	}
	l.next = r
	t.addSibling(l, r)
	l.vis -= r.vis
	l.tot -= r.tot
	return r
}

// addSibling puts the new node r right after n in n's parent, splitting
// parents as needed. n's counts still include r's (the caller takes them
// off after), so every ancestor's counts stay right throughout.
func (t *stree[V]) addSibling(n, r *snode[V]) {
	p := n.parent
	if p == nil {
		p = &snode[V]{kids: make([]*snode[V], 1, seqInnerMax+1), vis: n.vis, tot: n.tot}
		p.kids[0] = n
		n.parent = p
		t.root = p
	}
	if len(p.kids) >= seqInnerMax {
		q := t.splitInner(p)
		if n.parent == q {
			p = q
		}
	}
	k := 0
	for p.kids[k] != n {
		k++
	}
	p.kids = append(p.kids, nil)
	copy(p.kids[k+2:], p.kids[k+1:])
	p.kids[k+1] = r
	r.parent = p
}

// splitInner moves the upper half of p's children into a new inner node
// after p.
func (t *stree[V]) splitInner(p *snode[V]) *snode[V] {
	h := len(p.kids) / 2
	q := &snode[V]{kids: make([]*snode[V], len(p.kids)-h, seqInnerMax+1)}
	copy(q.kids, p.kids[h:])
	clear(p.kids[h:])
	p.kids = p.kids[:h]
	for _, c := range q.kids {
		c.parent = q
		q.vis += c.vis
		q.tot += c.tot
	}
	t.addSibling(p, q)
	p.vis -= q.vis
	p.tot -= q.tot
	return q
}

// each calls fn for every item in document order until fn returns false.
func (t *stree[V]) each(fn func(it *sitem[V]) bool) {
	for l := t.first; l != nil; l = l.next {
		for j := range l.items {
			if !fn(&l.items[j]) {
				return
			}
		}
	}
}

// build replaces the tree's contents with items, in order, leaves and
// inner nodes three quarters full.
func (t *stree[V]) build(items []sitem[V]) {
	if len(items) == 0 {
		t.init()
		return
	}
	const leafFill, innerFill = seqLeafMax * 3 / 4, seqInnerMax * 3 / 4
	var level []*snode[V]
	var prev *snode[V]
	for i := 0; i < len(items); i += leafFill {
		end := min(i+leafFill, len(items))
		l := &snode[V]{leaf: true, items: make([]sitem[V], end-i, seqLeafMax), prev: prev}
		copy(l.items, items[i:end])
		for j := range l.items {
			l.vis += l.items[j].vis()
			l.tot += l.items[j].n
		}
		if prev != nil {
			prev.next = l
		} else {
			t.first = l
		}
		prev = l
		level = append(level, l)
	}
	t.last = prev
	for len(level) > 1 {
		var up []*snode[V]
		for i := 0; i < len(level); i += innerFill {
			end := min(i+innerFill, len(level))
			p := &snode[V]{kids: make([]*snode[V], end-i, seqInnerMax+1)}
			copy(p.kids, level[i:end])
			for _, k := range p.kids {
				k.parent = p
				p.vis += k.vis
				p.tot += k.tot
			}
			up = append(up, p)
		}
		level = up
	}
	t.root = level[0]
	t.root.parent = nil
}
