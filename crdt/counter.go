package crdt

import (
	"bytes"
	"sort"
	"strconv"
)

// The counter kind: a causal PN-counter of int64.

type ctrDot struct {
	dot Dot
	n   int64 // the replica's whole contribution
}

// counter is the counter kind's store: one dot per replica holding its
// whole contribution (more while concurrent increments are unresolved).
type counter struct {
	dots []ctrDot
}

var _ kindStore = (*counter)(nil)

// counter returns e's counter, or nil.
func (e *entry) counter() *counter {
	c, _ := e.at(KindCounter).(*counter)
	return c
}

func (s *State) insertCtr(e *entry, c ctrDot) {
	ctr := e.counter()
	if ctr == nil {
		ctr = &counter{}
		e.setAt(KindCounter, ctr)
	}
	ctr.dots = append(ctr.dots, c)
	s.idx.put(c.dot, loc{e: e, kind: KindCounter})
}

func (c *counter) empty() bool { return len(c.dots) == 0 }

func (c *counter) visible() bool { return !c.empty() }

// sum is the counter's value.
func (c *counter) sum() int64 {
	var n int64
	for _, x := range c.dots {
		n += x.n
	}
	return n
}

// contribution is what replica has added so far (as far as s knows).
func (c *counter) contribution(replica ReplicaID) int64 {
	var n int64
	for _, x := range c.dots {
		if x.dot.Replica == replica {
			n += x.n
		}
	}
	return n
}

// covered: an increment replaces its replica's own contribution only;
// every other write at or below the key replaces the whole counter,
// except a set element's removal.
func (c *counter) covered(out []Dot, op Op, replica ReplicaID, below bool) []Dot {
	switch {
	case op.Kind == OpRemove:
	case op.Kind == OpInc && !below:
		for _, x := range c.dots {
			if x.dot.Replica == replica {
				out = append(out, x.dot)
			}
		}
	default:
		for _, x := range c.dots {
			out = append(out, x.dot)
		}
	}
	return out
}

func (c *counter) find(d Dot) ctrDot {
	for _, x := range c.dots {
		if x.dot == d {
			return x
		}
	}
	panic("crdt: counter dot not in its entry")
}

func (c *counter) write(d Dot, _ string) write {
	w := write{kind: KindCounter}
	for _, x := range c.dots {
		if x.dot == d {
			w.n = x.n
		}
	}
	return w
}

func (c *counter) remove(d Dot, _ string) {
	for i := range c.dots {
		if c.dots[i].dot == d {
			c.dots = append(c.dots[:i], c.dots[i+1:]...)
			return
		}
	}
}

// mergeInto adds the contributions s has not seen (see register.mergeInto).
func (c *counter) mergeInto(s *State, de *entry, m merger) bool {
	added := false
	for _, x := range c.dots {
		if s.unseen(x.dot) {
			s.insertCtr(de, x)
			added = true
		} else if old, ok := s.yields(x.dot, de, write{kind: KindCounter, n: x.n}, m); ok {
			s.insertCtr(de, x)
			s.removeAt(old, x.dot)
			added = true
		}
	}
	return added
}

// writeJSON writes the counter's value.
func (c *counter) writeJSON(buf *bytes.Buffer) { buf.WriteString(strconv.FormatInt(c.sum(), 10)) }

// wCounter is a counter encoded: its contributions sorted by dot.
type wCounter []wCtr

type wCtr struct {
	_ struct{} `cbor:",toarray"`
	R uint64
	C uint64
	N int64
}

func (c *counter) encode(we *wEntry, index map[ReplicaID]uint64, _ ReplicaID) {
	for _, x := range c.dots {
		we.Ctr = append(we.Ctr, wCtr{R: index[x.dot.Replica], C: x.dot.Counter, N: x.n})
	}
	sort.Slice(we.Ctr, func(i, j int) bool {
		a, b := we.Ctr[i], we.Ctr[j]
		return a.R < b.R || a.R == b.R && a.C < b.C
	})
}

func (w *wCounter) decode(at *decodeAt) error {
	for _, c := range *w {
		d, err := at.dot(c.R, c.C)
		if err != nil {
			return err
		}
		at.s.insertCtr(at.entry(), ctrDot{dot: d, n: c.N})
	}
	return nil
}

func (c *counter) splitCost(sp *splitter, in *entry, d Dot, _ string) (int, bool) {
	n := 0
	if in != nil && in.counter() != nil {
		n = len(in.counter().dots)
	}
	cost, ok := sp.slot(n)
	return cost + 1 + sp.replicaLen(d) + uintLen(d.Counter) + intLen(c.find(d).n), ok
}

func (c *counter) splitAdd(p *State, in *entry, d Dot, _ string) { p.insertCtr(in, c.find(d)) }
