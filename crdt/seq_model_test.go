package crdt

import (
	"fmt"
	"slices"
)

// A direct, slow, tree-based FugueMax (after the paper's Algorithm 1 and
// the reference implementation's sibling order), to check the Seq's scan
// against. Each element is a node; an element with origins (ol, or) is the
// right child of ol when or is not a descendant of ol (the root stands for
// a missing ol), else the left child of or. Left siblings are ordered by
// replica; right siblings by the reverse list order of their right
// origins, then by replica. The list is the in-order walk: left children,
// the node, right children.

type fmNode struct {
	id          Dot
	ro          *fmNode // right origin of a right child; nil: the end
	parent      *fmNode
	right       bool
	left, rchld []*fmNode
}

type fugueMax struct {
	root  *fmNode
	nodes map[Dot]*fmNode
}

func newFugueMax() *fugueMax {
	r := &fmNode{}
	return &fugueMax{root: r, nodes: map[Dot]*fmNode{{}: r}}
}

func (f *fugueMax) descendant(n, of *fmNode) bool {
	for ; n != nil; n = n.parent {
		if n == of {
			return true
		}
	}
	return false
}

// less reports whether a comes before b in the list (nil: the end).
func (f *fugueMax) less(a, b *fmNode) bool {
	if a == b || a == nil {
		return false
	}
	if b == nil {
		return true
	}
	order := f.walk()
	return slices.Index(order, a.id) < slices.Index(order, b.id)
}

func replicaLess(a, b Dot) bool {
	return a.Replica < b.Replica || a.Replica == b.Replica && a.Counter < b.Counter
}

func (f *fugueMax) add(e elem) error {
	ol, ok := f.nodes[e.ol]
	if !ok {
		return fmt.Errorf("model: missing left origin %v", e.ol)
	}
	var or *fmNode
	if e.or.Counter != 0 {
		if or, ok = f.nodes[e.or]; !ok {
			return fmt.Errorf("model: missing right origin %v", e.or)
		}
	}
	n := &fmNode{id: e.id}
	if or == nil || !f.descendant(or, ol) {
		n.parent, n.right, n.ro = ol, true, or
		i := 0
		for ; i < len(ol.rchld); i++ {
			sib := ol.rchld[i]
			if !(f.less(n.ro, sib.ro) || n.ro == sib.ro && replicaLess(sib.id, n.id)) {
				break
			}
		}
		ol.rchld = slices.Insert(ol.rchld, i, n)
	} else {
		n.parent = or
		i := 0
		for ; i < len(or.left) && replicaLess(or.left[i].id, n.id); i++ {
		}
		or.left = slices.Insert(or.left, i, n)
	}
	f.nodes[e.id] = n
	return nil
}

func (f *fugueMax) walk() []Dot {
	var out []Dot
	var rec func(n *fmNode)
	rec = func(n *fmNode) {
		for _, c := range n.left {
			rec(c)
		}
		if n != f.root {
			out = append(out, n.id)
		}
		for _, c := range n.rchld {
			rec(c)
		}
	}
	rec(f.root)
	return out
}

// modelOrder builds the FugueMax tree from the elements (in any order; each
// is added once its origins are) and returns its list.
func modelOrder(es []elem) ([]Dot, error) {
	f := newFugueMax()
	todo := slices.Clone(es)
	for len(todo) > 0 {
		var next []elem
		for _, e := range todo {
			_, okl := f.nodes[e.ol]
			_, okr := f.nodes[e.or]
			if okl && (okr || e.or.Counter == 0) {
				if err := f.add(e); err != nil {
					return nil, err
				}
			} else {
				next = append(next, e)
			}
		}
		if len(next) == len(todo) {
			return nil, fmt.Errorf("model: %d elements with missing origins", len(next))
		}
		todo = next
	}
	return f.walk(), nil
}

// checkModel compares the order of s with the tree-based FugueMax.
func checkModel[V SeqValue](s *Seq[V]) error {
	es := elems(s)
	want, err := modelOrder(es)
	if err != nil {
		return err
	}
	if len(want) != len(es) {
		return fmt.Errorf("model has %d elements, seq %d", len(want), len(es))
	}
	for i := range es {
		if es[i].id != want[i] {
			return fmt.Errorf("element %d: seq has %v, FugueMax %v", i, es[i].id, want[i])
		}
	}
	return nil
}
