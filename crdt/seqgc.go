package crdt

// Tombstone garbage collection.
//
// A deleted element stays as a tombstone because inserts can name it as
// an origin: one typed next to it before the delete arrived, and one typed
// after it by a replica that still holds it (Fugue anchors on the element
// right before the insertion point, deleted or not). Dropping a tombstone
// is safe when no insert this replica has not yet integrated names it:
//
//  1. every replica has integrated its insert and its delete, so it is a
//     tombstone everywhere and nothing will re-send either; and
//  2. every insert not yet integrated here was made by a replica that had
//     already dropped it (or never held it).
//
// GC(floor) takes the first condition from floor, a version vector every
// replica's context covers (the minimum of the peers' version vectors, as
// the sync layer sees them): the element's dot and its delete's dot are
// both ≤ floor. The second is the caller's: it holds when every replica
// collects with the same floor before editing on (a quiet, synced group),
// or with a second round — replicas announce the floor they collected
// with, and a replica collects with F only once every peer has announced
// F and it has integrated every dot the peers had when they did.
//
// GC drops a tombstone only if no element it keeps names it as an origin
// and no held-back change names it: what it keeps still integrates and
// orders the same. An insert that names a dropped element anyway (the
// second condition broken) is counted in SeqStats.Orphans and dropped
// (its dots are recorded, so it is not asked for again).
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
	var held []sid
	for _, o := range s.pend.origins() {
		if r, ok := s.repIdx[o.Replica]; ok && o.Counter != 0 {
			held = append(held, sid{r, o.Counter})
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
			(it.st.c == 0 && baseOK || it.st.c != 0 && below(it.st.r, it.st.c))
		for _, h := range held {
			if ok && it.has(h.r, h.c) {
				ok = false
			}
		}
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
