package crdt

import "slices"

// Repair of inserts whose origin was garbage-collected.
//
// GC (seqgc.go) drops a tombstone once the floor it is given covers the
// element's insert and delete and nothing here names it. An insert made
// elsewhere may still name it: one typed next to it before the delete
// reached its author, or by a peer the floor did not count. Such an
// insert is held back, like one whose origin has not arrived, and the
// sequence then *wants* the collected element. Every replica that
// integrated the insert holds that element (GC never drops what a kept
// element names), so a whole state from one of them brings it back: a
// merge whose runs hold collected elements that a held-back insert needs
// — directly, or as an origin of what it needs, and so on — integrates
// them again, as tombstones, before the insert.
//
// Putting them back changes no order. GC drops only elements nothing kept
// names, which in Fugue's tree are leaves (a run is the child of one of
// its origins), and a leaf put back is ordered among the others by its
// parent and its siblings, as it was: the elements kept keep their order,
// and the ones put back take the places they had.

// collectedDot reports whether d is an element this sequence collected:
// seen, among the dots that are not elements (deletes' and collected
// elements'), and not here.
func (s *Seq[V]) collectedDot(d Dot) bool {
	if d.Counter == 0 || !s.delcc.Contains(d) {
		return false
	}
	r, ok := s.repIdx[d.Replica]
	if !ok {
		return true
	}
	_, _, _, here := s.locate(sid{r, d.Counter})
	return !here
}

// wanted returns the collected elements that held-back inserts name (nil
// when none).
func (s *Seq[V]) wanted() map[Dot]struct{} {
	var w map[Dot]struct{}
	for i := range s.pend.runs {
		for _, o := range [2]Dot{s.pend.runs[i].ol, s.pend.runs[i].or} {
			if s.collectedDot(o) {
				if w == nil {
					w = map[Dot]struct{}{}
				}
				w[o] = struct{}{}
			}
		}
	}
	return w
}

// WantsCollected reports whether s holds back an insert that names an
// element s collected: a whole state from a replica that integrated the
// insert would bring the element back (see seqrepair.go).
func (s *Seq[V]) WantsCollected() bool { return s.orphaned && len(s.wanted()) > 0 }

// revivals returns, for each of runs (a change being merged), the highest
// counter up to which its collected elements are to be integrated again
// (0: none): those the held-back inserts want, the collected origins of
// the runs that hold them, and so on (at most maxRevivalPasses rounds; a
// longer chain is finished by the next whole state). It returns nil when
// nothing is wanted.
func (s *Seq[V]) revivals(runs []seqRun[V]) []uint64 {
	want := s.wanted()
	if len(want) == 0 {
		return nil
	}
	byRep := map[ReplicaID][]uint64{} // wanted counters, sorted per replica
	add := func(d Dot) {
		cs := byRep[d.Replica]
		if k, found := slices.BinarySearch(cs, d.Counter); !found {
			byRep[d.Replica] = slices.Insert(cs, k, d.Counter)
		}
	}
	for d := range want {
		add(d)
	}
	top := make([]uint64, len(runs))
	for pass, changed := 0, true; changed && pass < maxRevivalPasses; pass++ {
		changed = false
		for i := range runs {
			run := &runs[i]
			if run.id.Counter == 0 || run.n == 0 {
				continue
			}
			cs := byRep[run.id.Replica]
			hi := run.id.Counter + run.n - 1
			k, _ := slices.BinarySearch(cs, hi+1) // cs[:k]: the wanted counters up to hi
			if k == 0 || cs[k-1] < run.id.Counter || cs[k-1] <= top[i] {
				continue
			}
			top[i], changed = cs[k-1], true
			for _, o := range [2]Dot{run.ol, run.or} {
				if s.collectedDot(o) {
					add(o)
				}
			}
		}
	}
	return top
}

// maxRevivalPasses bounds the rounds of revivals.
const maxRevivalPasses = 64

// revive integrates again, as tombstones, the collected elements of run
// up to counter top whose origins are here, and reports whether it did.
func (s *Seq[V]) revive(run seqRun[V], top uint64, ps *patches[V]) bool {
	rep := run.id.Replica
	r := s.intern(rep)
	lo := run.id.Counter
	progress := false
	for c := lo; c <= top; {
		if !s.collectedDot(Dot{rep, c}) {
			c++
			continue
		}
		b := c
		for b < top && s.collectedDot(Dot{rep, b + 1}) {
			b++
		}
		ol := s.sidOf(run.ol)
		if c > lo {
			ol = sid{r, c - 1}
		}
		or := s.sidOf(run.or)
		if s.ready(ol, or) == originsPresent && s.integrate(sid{r, c}, ol, or, int(b-c+1), nil, ps) {
			s.delcc.removeRange(rep, c, b)
			s.stats.Revived += b - c + 1
			progress = true
		}
		c = b + 1
	}
	return progress
}

// collectedBy makes tombstones of the elements here among dots, the
// delete dots of a whole state (its deletes' and the elements its sender
// collected): an element collected there was deleted there, and the state
// no longer says so by holding it as a tombstone. It reports whether it
// deleted any.
func (s *Seq[V]) collectedBy(dots *CausalContext, ps *patches[V]) bool {
	n := s.Len()
	for rep, top := range dots.vv {
		if _, ok := s.repIdx[rep]; ok && top > 0 {
			s.mergeDel([]seqRange{{Dot{rep, 1}, top}}, sid{}, ps)
		}
	}
	for rep, ivs := range dots.clouds() {
		if _, ok := s.repIdx[rep]; !ok {
			continue
		}
		for _, iv := range ivs {
			s.mergeDel([]seqRange{{Dot{rep, iv.lo}, iv.hi - iv.lo + 1}}, sid{}, ps)
		}
	}
	return s.Len() != n
}

// deleteCollected makes tombstones of the elements lo..hi of rep just
// integrated that a whole state merged here said were collected (their
// dots among its delete dots, recorded or still held).
func (s *Seq[V]) deleteCollected(rep ReplicaID, lo, hi uint64, ps *patches[V]) {
	for _, cc := range [2]*CausalContext{s.delcc, s.pend.dots} {
		if cc == nil || cc.Max(rep) < lo {
			continue
		}
		var del []seqRange
		c := lo
		missingSpans(cc, rep, lo, hi, func(a, b uint64) {
			if a > c {
				del = append(del, seqRange{Dot{rep, c}, a - c})
			}
			c = b + 1
		})
		if c <= hi {
			del = append(del, seqRange{Dot{rep, c}, hi - c + 1})
		}
		if len(del) > 0 {
			s.mergeDel(del, sid{}, ps)
		}
	}
}

// CollectTombstones garbage-collects the tombstones of every text and list
// of s that floor allows (Seq.GC: floor is what every peer known to hold
// the document holds, e.g. the compaction floor) and returns how many
// elements it dropped. An insert that arrives later naming one is held
// back until a whole state brings it back (WantsCollected).
func (s *State) CollectTombstones(floor VersionVector) int {
	return collectIn(s.root, floor)
}

func collectIn(n *mapNode, floor VersionVector) int {
	if n == nil {
		return 0
	}
	total := 0
	for _, e := range n.kids.all() {
		if sl := e.text(); sl != nil && sl.seq != nil {
			total += sl.seq.GC(floor)
		}
		if sl := e.list(); sl != nil && sl.seq != nil {
			total += sl.seq.GC(floor)
		}
		total += collectIn(e.sub, floor)
	}
	return total
}

// WantsCollected reports whether a text or list of s holds back an insert
// that names an element s collected: a whole state from a peer that holds
// the insert would bring the element back.
func (s *State) WantsCollected() bool {
	notes := s.notes()
	if notes.wantChecked && !notes.mayWant {
		return false
	}
	w := wantsIn(s.root)
	notes.wantChecked, notes.mayWant = true, w
	return w
}

func wantsIn(n *mapNode) bool {
	if n == nil {
		return false
	}
	for _, e := range n.kids.all() {
		if seqWants(e.text()) || seqWants(e.list()) || wantsIn(e.sub) {
			return true
		}
	}
	return false
}

func seqWants[V SeqValue](sl *seqSlot[V]) bool {
	return sl != nil && sl.seq != nil && sl.seq.pend.n > 0 && sl.seq.WantsCollected()
}
