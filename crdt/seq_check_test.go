package crdt

import (
	"fmt"
	"testing"
)

// check verifies the invariants of s: counts, links, the ID index, values
// and the causal context.
func (s *Seq[V]) check() error {
	var walk func(n *snode[V], depth int) (vis, tot, leafDepth int, err error)
	walk = func(n *snode[V], depth int) (int, int, int, error) {
		if n.leaf {
			v, t := 0, 0
			for j := range n.items {
				it := &n.items[j]
				if it.n <= 0 {
					return 0, 0, 0, fmt.Errorf("item with %d elements", it.n)
				}
				if it.del != (it.vals == nil) || !it.del && len(it.vals) != it.n {
					return 0, 0, 0, fmt.Errorf("item %d:%d del=%v with %d values for %d", it.rep, it.ctr, it.del, len(it.vals), it.n)
				}
				if it.ol.none() && it.ol.r != 0 || it.or.none() && it.or.r != 0 {
					return 0, 0, 0, fmt.Errorf("bad origin")
				}
				v += it.vis()
				t += it.n
			}
			if v != n.vis || t != n.tot {
				return 0, 0, 0, fmt.Errorf("leaf counts %d/%d, items %d/%d", n.vis, n.tot, v, t)
			}
			return v, t, depth, nil
		}
		if len(n.kids) == 0 {
			return 0, 0, 0, fmt.Errorf("inner node without children")
		}
		v, t, d := 0, 0, -1
		for _, k := range n.kids {
			if k.parent != n {
				return 0, 0, 0, fmt.Errorf("bad parent pointer")
			}
			kv, kt, kd, err := walk(k, depth+1)
			if err != nil {
				return 0, 0, 0, err
			}
			if d >= 0 && kd != d {
				return 0, 0, 0, fmt.Errorf("leaves at depths %d and %d", d, kd)
			}
			d = kd
			v += kv
			t += kt
		}
		if v != n.vis || t != n.tot {
			return 0, 0, 0, fmt.Errorf("inner counts %d/%d, children %d/%d", n.vis, n.tot, v, t)
		}
		return v, t, d, nil
	}
	if s.t.root.parent != nil {
		return fmt.Errorf("root has a parent")
	}
	if _, _, _, err := walk(s.t.root, 0); err != nil {
		return err
	}
	// leaf links
	var prev *snode[V]
	items := 0
	for l := s.t.first; l != nil; l = l.next {
		if l.prev != prev {
			return fmt.Errorf("bad prev link")
		}
		if len(l.items) == 0 && l != s.t.root {
			return fmt.Errorf("empty leaf")
		}
		for j := range l.items {
			it := &l.items[j]
			items++
			got := s.idx[it.rep].find(it.ctr)
			if got != l {
				return fmt.Errorf("index sends %s:%d to the wrong leaf", s.reps[it.rep], it.ctr)
			}
			if gl, gj, off, ok := s.locate(it.first()); !ok || gl != l || gj != j || off != 0 {
				return fmt.Errorf("locate %s:%d failed", s.reps[it.rep], it.ctr)
			}
			if !s.cc.Contains(Dot{s.reps[it.rep], it.ctr + uint64(it.n) - 1}) || !s.cc.Contains(Dot{s.reps[it.rep], it.ctr}) {
				return fmt.Errorf("element %s:%d outside the context", s.reps[it.rep], it.ctr)
			}
		}
		prev = l
	}
	if prev != s.t.last {
		return fmt.Errorf("bad last leaf")
	}
	if items != s.Items() {
		return fmt.Errorf("%d items, index holds %d", items, s.Items())
	}
	return nil
}

func mustCheck[V SeqValue](t testing.TB, s *Seq[V]) {
	t.Helper()
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
}

// elem is one element with its own origins, as the model sees it.
type elem struct {
	id, ol, or Dot
	del        bool
}

// elems returns every element of s in order, tombstones included.
func elems[V SeqValue](s *Seq[V]) []elem {
	var out []elem
	s.t.each(func(it *sitem[V]) bool {
		for k := 0; k < it.n; k++ {
			e := elem{id: Dot{s.reps[it.rep], it.ctr + uint64(k)}, or: s.dot(it.or), del: it.del}
			if k == 0 {
				e.ol = s.dot(it.ol)
			} else {
				e.ol = Dot{s.reps[it.rep], it.ctr + uint64(k) - 1}
			}
			out = append(out, e)
		}
		return true
	})
	return out
}
