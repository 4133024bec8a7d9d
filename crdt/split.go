package crdt

import "slices"

// SplitDelta splits the delta d, to be encoded by EncodeDelta(·, origin)
// (or by Encode when origin is empty), into pieces whose encodings each fit
// lim: at most lim.MaxBytes long, no CBOR array or map above
// lim.MaxElements, so every piece decodes under lim. A piece holding a
// single value that alone exceeds the bound (a register value bigger than
// lim.MaxBytes) is the one exception: it travels alone.
//
// Every dot of d's causal context goes to exactly one piece, together with
// the entry (register value, counter, set element) that carries it, so:
// each piece is a valid delta, no piece's context removes an entry of
// another piece, the join of the pieces equals d, and merging them in any
// order into any state gives the same result as merging d. Until all have
// been merged, a receiver holds part of d's effect (some values of a
// deleted map gone, others not yet; a new value next to the old one it
// replaces). Pieces are ordered by dot, replicas in sorted order.
//
// It returns []*State{d} when d fits as it is. The encoded sizes are
// bounded as the pieces are filled, without encoding anything: the cost is
// linear in d's entries and context intervals (plus sorting the entries'
// dots). d must not be modified while the pieces are in use: they share its
// values.
func SplitDelta(d *State, origin ReplicaID, lim Limits) []*State {
	if hasSeqContent(d.root) {
		return splitSeqs(d, origin, lim)
	}
	pieces, _ := split(d, origin, lim)
	return pieces
}

// split is SplitDelta that also returns the bound it computed on each
// piece's encoded size.
func split(d *State, origin ReplicaID, lim Limits) ([]*State, []int) {
	if lim.MaxBytes <= 0 {
		lim = DefaultLimits()
	}
	sp := &splitter{
		src: d, origin: origin, maxBytes: lim.MaxBytes, maxElems: max(lim.MaxElements, 16),
		index: map[ReplicaID]uint64{},
	}
	reps := d.cc.replicas()
	base := uint64(0)
	if origin != "" {
		sp.index[origin] = 0
		base = 1
	}
	for _, r := range reps {
		if r != origin {
			sp.index[r] = base
			base++
		}
	}
	// The dots held by entries, per replica, in order.
	held := map[ReplicaID][]uint64{}
	for dot := range d.idx.all() {
		held[dot.Replica] = append(held[dot.Replica], dot.Counter)
	}
	sp.p = sp.newPiece()
	for _, r := range reps {
		cs := held[r]
		slices.Sort(cs)
		walk := func(lo, hi uint64) {
			pos := lo
			for len(cs) > 0 && cs[0] <= hi {
				c := cs[0]
				cs = cs[1:]
				if c < pos {
					continue // not in the context: d is not a valid state
				}
				sp.addHeld(r, pos, c, hi)
				pos = c + 1
			}
			if pos <= hi {
				sp.addBare(r, pos, hi)
			}
			sp.closePortion()
		}
		if n := d.cc.vv[r]; n > 0 {
			walk(1, n)
		}
		for _, iv := range d.cc.cloudOf(r) {
			walk(iv.lo, iv.hi)
		}
	}
	if sp.p.units > 0 {
		sp.finish()
	}
	if len(sp.pieces) <= 1 {
		return []*State{d}, sp.sizes
	}
	return sp.pieces, sp.sizes
}

type splitter struct {
	src      *State
	origin   ReplicaID
	maxBytes int
	maxElems int
	// index is each replica's index in d's table: at least its index in
	// any piece's table, so its encoded length bounds the piece's.
	index  map[ReplicaID]uint64
	pieces []*State
	sizes  []int
	p      *piece
}

// piece is a piece being filled: its state, the bound on its encoded size
// so far, and the element counts of its CBOR containers (those of its
// entries are the lengths of the piece's own entries and stores).
type piece struct {
	s     *State
	size  int
	units int
	// Counts of the top-level table, vector and cloud.
	tableN, vvN, cloudN int
	reps                map[ReplicaID]*pieceRep
	ents                map[*entry]*entry // the piece's copy of each entry of d
	// The context portion being filled: counters olo..ohi of or.
	open     bool
	or       ReplicaID
	olo, ohi uint64
}

type pieceRep struct {
	inCloud bool
	cloud   int // intervals in the cloud
}

func (sp *splitter) newPiece() *piece {
	p := &piece{s: New(), reps: map[ReplicaID]*pieceRep{}, ents: map[*entry]*entry{}}
	p.size = 3 // map header, version key and value
	if sp.origin != "" {
		p.size += 2 // origin key and flag
	}
	return p
}

func (sp *splitter) fits(cost int, ok bool) bool { return ok && sp.p.size+cost <= sp.maxBytes }

// finish closes the current piece and starts the next.
func (sp *splitter) finish() {
	sp.closePortion()
	sp.pieces = append(sp.pieces, sp.p.s)
	sp.sizes = append(sp.sizes, sp.p.size)
	sp.p = sp.newPiece()
}

func (sp *splitter) closePortion() {
	p := sp.p
	if p.open {
		p.s.cc.AddRange(p.or, p.olo, p.ohi)
		p.open = false
	}
}

// continues reports whether the current piece's open portion ends just
// before counter pos of r.
func (sp *splitter) continues(r ReplicaID, pos uint64) bool {
	p := sp.p
	return p.open && p.or == r && p.ohi+1 == pos
}

// addHeld adds counters pos..c of r to the current piece or a new one: c
// is held by an entry, the counters before it only by the context. hi is
// the end of the context interval they belong to.
func (sp *splitter) addHeld(r ReplicaID, pos, c, hi uint64) {
	d := Dot{r, c}
	l, _ := sp.src.idx.get(d)
	if sp.continues(r, pos) {
		if cost, ok := sp.heldCost(l, d); sp.fits(cost, ok) {
			sp.commitHeld(l, d, cost)
			sp.p.ohi = c
			return
		}
		sp.p.ohi = c - 1 // the counters before c end this piece
		sp.finish()
		pos = c
	}
	oc, ook := sp.openCost(r, pos, hi)
	ec, eok := sp.heldCost(l, d)
	if sp.p.units > 0 && !sp.fits(oc+ec, ook && eok) {
		sp.finish()
		oc, _ = sp.openCost(r, pos, hi)
		ec, _ = sp.heldCost(l, d)
	}
	sp.commitOpen(r, pos, oc)
	sp.commitHeld(l, d, ec)
	sp.p.ohi = c
}

// addBare adds counters pos..hi of r, held by no entry.
func (sp *splitter) addBare(r ReplicaID, pos, hi uint64) {
	if sp.continues(r, pos) {
		sp.p.ohi = hi
		return
	}
	oc, ok := sp.openCost(r, pos, hi)
	if sp.p.units > 0 && !sp.fits(oc, ok) {
		sp.finish()
		oc, _ = sp.openCost(r, pos, hi)
	}
	sp.commitOpen(r, pos, oc)
	sp.p.ohi = hi
}

// openCost bounds what a context portion of r starting at lo and ending at
// most at hi adds to the current piece's encoding; ok is false when it
// would take a container past the element bound.
func (sp *splitter) openCost(r ReplicaID, lo, hi uint64) (cost int, ok bool) {
	p := sp.p
	pr := p.reps[r]
	ok = true
	if pr == nil && r != sp.origin {
		if p.tableN == 0 {
			cost += 2 // field key and array header
		}
		cost += grow(p.tableN) + strLen(len(r))
		ok = ok && p.tableN+1 <= sp.maxElems
	}
	ri := uintLen(sp.index[r])
	if lo == 1 { // the vector entry
		if p.vvN == 0 {
			cost += 2
		}
		cost += grow(p.vvN) + ri + uintLen(hi)
		return cost, ok && p.vvN+1 <= sp.maxElems
	}
	n := 0
	if pr == nil || !pr.inCloud {
		if p.cloudN == 0 {
			cost += 2
		}
		cost += grow(p.cloudN) + ri + 1
		ok = ok && p.cloudN+1 <= sp.maxElems
	} else {
		n = 2 * pr.cloud
	}
	cost += grow(n) + grow(n+1) + uintLen(lo) + uintLen(hi)
	return cost, ok && n+2 <= sp.maxElems
}

func (sp *splitter) commitOpen(r ReplicaID, lo uint64, cost int) {
	p := sp.p
	pr := p.reps[r]
	if pr == nil {
		pr = &pieceRep{}
		p.reps[r] = pr
		if r != sp.origin {
			p.tableN++
		}
	}
	if lo == 1 {
		p.vvN++
	} else {
		if !pr.inCloud {
			pr.inCloud = true
			p.cloudN++
		}
		pr.cloud++
	}
	p.open, p.or, p.olo, p.ohi = true, r, lo, lo
	p.size += cost
	p.units++
}

// heldCost bounds what the entry content holding dot d (at l) adds to the
// current piece's encoding, with the map entries leading to it.
func (sp *splitter) heldCost(l loc, d Dot) (cost int, ok bool) {
	p := sp.p
	ok = true
	// The path: entries not yet in the piece, up to one that is (or the root).
	for x := l.e; ; {
		if p.ents[x] != nil {
			break
		}
		parent := x.parent.owner
		var kids int
		switch {
		case parent == nil:
			kids = p.s.root.kids.len()
		case p.ents[parent] != nil && p.ents[parent].sub != nil:
			kids = p.ents[parent].sub.kids.len()
		}
		if kids == 0 {
			cost += 2 // the map's field key (or root key) and header
		}
		cost += grow(kids) + strLen(len(x.key)) + 1 // key, entry map header
		ok = ok && kids+1 <= sp.maxElems
		if parent == nil {
			break
		}
		x = parent
	}
	c, cok := l.e.at(l.kind).splitCost(sp, p.ents[l.e], d, l.elem)
	return cost + c, ok && cok
}

// commitHeld adds the entry content holding d to the current piece.
func (sp *splitter) commitHeld(l loc, d Dot, cost int) {
	p := sp.p
	l.e.at(l.kind).splitAdd(p.s, sp.ensure(l.e), d, l.elem)
	p.size += cost
	p.units++
}

// ensure returns the piece's copy of entry e of d, creating it and the
// entries above it.
func (sp *splitter) ensure(e *entry) *entry {
	p := sp.p
	if a := p.ents[e]; a != nil {
		return a
	}
	n := p.s.root
	if e.parent.owner != nil {
		pa := sp.ensure(e.parent.owner)
		n = pa.subMap(0)
	}
	a := &entry{parent: n, key: e.key}
	n.kids.put(e.key, a)
	p.ents[e] = a
	return a
}

// slot bounds what one more element adds to a kind's container of n
// elements in an entry (its field key and header when it is the first);
// ok is false when it would take the container past the element bound.
func (sp *splitter) slot(n int) (cost int, ok bool) {
	if n == 0 {
		return 2 + grow(n), n+1 <= sp.maxElems
	}
	return grow(n), n+1 <= sp.maxElems
}

// replicaLen is the encoded length of d's replica index.
func (sp *splitter) replicaLen(d Dot) int { return uintLen(sp.index[d.Replica]) }

// uintLen is the length of v as a CBOR unsigned integer (or of a header
// announcing v bytes or elements).
func uintLen(v uint64) int {
	switch {
	case v < 24:
		return 1
	case v <= 0xff:
		return 2
	case v <= 0xffff:
		return 3
	case v <= 0xffffffff:
		return 5
	}
	return 9
}

// grow is how much the header of a container of n elements grows by one
// more element.
func grow(n int) int { return uintLen(uint64(n)+1) - uintLen(uint64(n)) }

// strLen is the encoded length of a string of n bytes.
func strLen(n int) int { return uintLen(uint64(n)) + n }

func intLen(n int64) int {
	if n >= 0 {
		return uintLen(uint64(n))
	}
	return uintLen(uint64(-(n + 1)))
}
