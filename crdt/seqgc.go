package crdt

// Tombstone garbage collection.
//
// A deleted element stays as a tombstone because inserts can name it as
// an origin: one typed next to it before the delete arrived, and one typed
// after it by a replica that still holds it (Fugue anchors on the element
// right before the insertion point, deleted or not). GC(floor) drops the
// tombstones whose insert and delete floor covers — a version vector every
// known replica's context covers (the document's compaction floor) — and
// that no element it keeps and no held-back insert names: what it keeps
// integrates and orders as before.
//
// The floor makes it likely, not certain, that nothing will name a dropped
// element again: a replica the floor did not count, or one that typed next
// to a tombstone before the floor passed it, can still send such an
// insert. It is held back, not lost (seqrepair.go): the replicas that
// integrated it hold the element it names, and a whole state from one of
// them brings the element back. GC itself keeps the sequence's order: it
// drops only elements nothing here names, and the dots of what it drops
// join the delete dots, so a whole state tells its receivers that those
// elements are deleted (they are not in it to say so as tombstones).
//
// The stamp of a tombstone is the dot of the delete that made it (kept in
// memory, not encoded): a tombstone from a whole state or a decoded
// encoding has no stamp of its own and is stamped with every delete dot of
// such states together (collectable once floor covers them all).

// GC drops the tombstones that floor makes collectable (see above) and
// returns how many elements it dropped. Cursors on dropped elements are
// lost (IndexOf returns ErrSeqCursor).
func (s *Seq[V]) GC(floor VersionVector) int {
	below := func(r uint32, c uint64) bool { return c <= floor[s.reps[r]] }
	baseOK := s.baseCovered(floor)
	// The items holding what held-back inserts name are kept whole (one
	// lookup per origin, not one per item and origin).
	held := map[sid]bool{}
	for _, o := range s.pend.origins() {
		if r, ok := s.repIdx[o.Replica]; ok && o.Counter != 0 {
			if l, j, _, ok := s.locate(sid{r, o.Counter}); ok {
				held[l.items[j].first()] = true
			}
		}
	}
	// Candidates: tombstone items below the floor. Within an item each
	// element names the one before it, so what GC keeps of a candidate is
	// a prefix (up to the last element a kept element names) and what it
	// drops a suffix; an item is a candidate as a whole or not at all.
	type ref struct{ l, r sid } // an item's origins
	keepTo := map[sid]int{}     // candidate → last offset kept, -1 none
	var work []ref
	s.t.each(func(it *sitem[V]) bool {
		ok := it.del && below(it.rep, it.ctr+uint64(it.n)-1) &&
			(it.st.c == 0 && baseOK || it.st.c != 0 && below(it.st.r, it.st.c)) && !held[it.first()]
		if ok {
			keepTo[it.first()] = -1
		} else {
			work = append(work, ref{it.ol, it.or})
		}
		return true
	})
	if len(keepTo) == 0 {
		return 0
	}
	// Whatever a kept element names is kept, and so on.
	keep := func(target sid) {
		if target.none() {
			return
		}
		l, j, off, ok := s.locate(target)
		if !ok {
			return
		}
		it := &l.items[j]
		k, cand := keepTo[it.first()]
		if !cand || off <= k {
			return
		}
		keepTo[it.first()] = off
		if k < 0 { // its first element is kept now: so are its origins
			work = append(work, ref{it.ol, it.or})
		}
	}
	for len(work) > 0 {
		o := work[len(work)-1]
		work = work[:len(work)-1]
		keep(o.l)
		keep(o.r)
	}
	n := 0
	for f, k := range keepTo {
		l, j, _, ok := s.locate(f)
		if !ok || k == l.items[j].n-1 {
			continue
		}
		it := &l.items[j]
		drop := it.n - 1 - k
		n += drop
		// Their dots stay in the context, with the deletes' (dots that
		// are not elements), so a whole state tells they need not be
		// sent.
		s.delcc.AddRange(s.reps[it.rep], it.ctr+uint64(k+1), it.ctr+uint64(it.n)-1)
		if k < 0 {
			s.idx[it.rep].del(it.ctr)
			s.t.remove(l, j)
		} else {
			it.n = k + 1
			s.t.add(l, 0, -drop)
		}
	}
	s.stats.Collected += uint64(n)
	return n
}

// baseCovered reports whether floor covers every delete dot of the whole
// states merged or decoded.
func (s *Seq[V]) baseCovered(floor VersionVector) bool {
	for r, n := range s.base.vv {
		if n > floor[r] {
			return false
		}
	}
	for r, ivs := range s.base.clouds() {
		if len(ivs) > 0 && ivs[len(ivs)-1].hi > floor[r] {
			return false
		}
	}
	return true
}

// origins returns the elements the held-back inserts name. (A held-back
// delete names only elements that are not here.)
func (p *seqPending[V]) origins() []Dot {
	var out []Dot
	for i := range p.runs {
		out = append(out, p.runs[i].ol, p.runs[i].or)
	}
	return out
}
