package crdt

import (
	"iter"
	"sort"
)

// interval is a closed range [lo, hi] of counters.
type interval struct{ lo, hi uint64 }

// CausalContext records every dot a state has seen: a version vector (all
// counters 1..n of a replica) plus a dot cloud for counters seen out of order.
// Cloud entries fold back into the vector as gaps fill, so a replica that has
// received every delta holds a bare version vector.
//
// The zero value is not usable; call NewCausalContext.
type CausalContext struct {
	// vv is nil until it holds something (a delta's context, most of
	// the time: see setVV).
	vv VersionVector
	// The dot cloud, per replica: sorted, disjoint, non-adjacent
	// intervals, all > vv[r]+1 (see cloudOf, setCloud, clouds). One
	// replica's is held inline, in r1 and iv1 — most clouds name one
	// replica, a local delta's its author, and need no map then — and
	// the others in more, which never holds r1.
	r1  ReplicaID
	iv1 []interval // empty when no replica is held inline
	// buf1 is iv1's first backing array. Once handed out it is never
	// reused, as a caller may still hold the cloud it backed; it is zero
	// until then (an interval's lo is at least 1).
	buf1 [2]interval
	more map[ReplicaID][]interval
}

// NewCausalContext returns an empty causal context.
func NewCausalContext() *CausalContext {
	return &CausalContext{vv: VersionVector{}}
}

// cloudOf returns r's cloud (nil when it has none). The caller must not
// modify it.
func (c *CausalContext) cloudOf(r ReplicaID) []interval {
	if len(c.iv1) > 0 && c.r1 == r {
		return c.iv1
	}
	return c.more[r]
}

// setCloud makes ivs r's cloud (none when ivs is empty).
func (c *CausalContext) setCloud(r ReplicaID, ivs []interval) {
	switch {
	case len(ivs) == 0:
		if c.r1 == r {
			c.iv1 = nil
		}
		delete(c.more, r)
	case len(c.iv1) > 0 && c.r1 == r:
		c.iv1 = ivs
	case len(c.iv1) == 0 && len(c.more[r]) == 0:
		c.r1, c.iv1 = r, ivs
	default:
		if c.more == nil {
			c.more = map[ReplicaID][]interval{}
		}
		c.more[r] = ivs
	}
}

// clouds yields every replica's cloud. The caller must not modify them.
func (c *CausalContext) clouds() iter.Seq2[ReplicaID, []interval] {
	return func(yield func(ReplicaID, []interval) bool) {
		if len(c.iv1) > 0 && !yield(c.r1, c.iv1) {
			return
		}
		for r, ivs := range c.more {
			if !yield(r, ivs) {
				return
			}
		}
	}
}

// VV returns the contiguous part of the context. The caller must not modify it.
func (c *CausalContext) VV() VersionVector {
	if c.vv == nil {
		return VersionVector{}
	}
	return c.vv
}

// setVV sets r's entry of the vector, making the vector when c has none.
func (c *CausalContext) setVV(r ReplicaID, n uint64) {
	if c.vv == nil {
		c.vv = VersionVector{}
	}
	c.vv[r] = n
}

// CloudSize returns the number of intervals in the dot cloud (zero once every
// gap has been filled).
func (c *CausalContext) CloudSize() int {
	n := len(c.iv1)
	for _, iv := range c.more {
		n += len(iv)
	}
	return n
}

// Contains reports whether d has been seen.
func (c *CausalContext) Contains(d Dot) bool {
	if d.Counter <= c.vv[d.Replica] {
		return true
	}
	ivs := c.cloudOf(d.Replica)
	if len(ivs) == 0 {
		return false
	}
	i := sort.Search(len(ivs), func(i int) bool { return ivs[i].hi >= d.Counter })
	return i < len(ivs) && ivs[i].lo <= d.Counter
}

// Max returns the highest counter seen from r, in the vector or the cloud.
func (c *CausalContext) Max(r ReplicaID) uint64 {
	if ivs := c.cloudOf(r); len(ivs) > 0 {
		return ivs[len(ivs)-1].hi
	}
	return c.vv[r]
}

// Add records d.
func (c *CausalContext) Add(d Dot) { c.AddRange(d.Replica, d.Counter, d.Counter) }

// AddRange records counters lo..hi of r.
func (c *CausalContext) AddRange(r ReplicaID, lo, hi uint64) {
	if lo == 0 {
		lo = 1
	}
	if hi < lo {
		return
	}
	top := c.vv[r]
	if hi <= top {
		return
	}
	if lo <= top+1 {
		c.setVV(r, hi)
		c.absorb(r)
		return
	}
	ivs := c.cloudOf(r)
	// Fast paths: start the cloud, append after its last interval, or
	// extend that.
	n := len(ivs)
	if n == 0 && len(c.iv1) == 0 && c.buf1[0].lo == 0 {
		c.r1, c.iv1 = r, append(c.buf1[:0], interval{lo, hi})
		return
	}
	if n == 0 || ivs[n-1].hi+1 < lo {
		c.setCloud(r, append(ivs, interval{lo, hi}))
		return
	}
	if lo >= ivs[n-1].lo {
		ivs[n-1].hi = max(ivs[n-1].hi, hi)
		return
	}
	i := sort.Search(len(ivs), func(i int) bool { return ivs[i].hi+1 >= lo })
	if ivs[i].lo <= lo && hi+1 < ivs[i+1].lo {
		// Extend interval i, short of the next: the dots a writer's
		// sets cover, in order, below the ones it mints.
		ivs[i].hi = max(ivs[i].hi, hi)
		return
	}
	// General case: insert and coalesce.
	j := i
	nlo, nhi := lo, hi
	for j < len(ivs) && ivs[j].lo <= hi+1 {
		if ivs[j].lo < nlo {
			nlo = ivs[j].lo
		}
		if ivs[j].hi > nhi {
			nhi = ivs[j].hi
		}
		j++
	}
	// A new slice, not an edit in place: a caller walking the cloud may
	// add to it as it goes (see missingSpans), and only an edit of an
	// interval it has walked past, or of the one it stands on short of the
	// next (the cases above), leaves what it has yet to walk as it was.
	out := make([]interval, 0, len(ivs)-(j-i)+1)
	out = append(out, ivs[:i]...)
	out = append(out, interval{nlo, nhi})
	out = append(out, ivs[j:]...)
	c.setCloud(r, out)
}

// absorb folds cloud intervals adjacent to the vector into it.
func (c *CausalContext) absorb(r ReplicaID) {
	ivs := c.cloudOf(r)
	top := c.vv[r]
	k := 0
	for k < len(ivs) && ivs[k].lo <= top+1 {
		if ivs[k].hi > top {
			top = ivs[k].hi
		}
		k++
	}
	if k == 0 {
		return
	}
	c.setVV(r, top)
	c.setCloud(r, append([]interval(nil), ivs[k:]...))
}

// Merge adds every dot of o to c.
func (c *CausalContext) Merge(o *CausalContext) {
	for r, n := range o.vv {
		c.AddRange(r, 1, n)
	}
	for r, ivs := range o.clouds() {
		if len(ivs) > 8 && len(c.cloudOf(r)) > 8 {
			c.mergeCloud(r, ivs) // linear, where interval-by-interval would be quadratic
			continue
		}
		for _, iv := range ivs {
			c.AddRange(r, iv.lo, iv.hi)
		}
	}
}

// mergeCloud joins the sorted intervals ivs into r's cloud in one pass.
func (c *CausalContext) mergeCloud(r ReplicaID, ivs []interval) {
	a, top := c.cloudOf(r), c.vv[r]
	out := make([]interval, 0, len(a)+len(ivs))
	push := func(iv interval) {
		if iv.hi <= top {
			return
		}
		iv.lo = max(iv.lo, top+1)
		if n := len(out); n > 0 && iv.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, iv.hi)
			return
		}
		out = append(out, iv)
	}
	i, j := 0, 0
	for i < len(a) || j < len(ivs) {
		if j == len(ivs) || (i < len(a) && a[i].lo <= ivs[j].lo) {
			push(a[i])
			i++
		} else {
			push(ivs[j])
			j++
		}
	}
	c.setCloud(r, out)
	if len(out) > 0 && out[0].lo <= top+1 {
		c.absorb(r)
	}
}

// Clone returns a deep copy of c.
func (c *CausalContext) Clone() *CausalContext {
	out := &CausalContext{vv: c.vv.Clone()}
	if len(c.more) > 0 {
		out.more = make(map[ReplicaID][]interval, len(c.more))
	}
	for r, ivs := range c.clouds() {
		out.setCloud(r, append([]interval(nil), ivs...))
	}
	return out
}

// dotCount returns how many dots c holds (saturating).
func (c *CausalContext) dotCount() uint64 {
	var n uint64
	add := func(k uint64) {
		if n+k < n {
			n = ^uint64(0)
		} else {
			n += k
		}
	}
	for _, v := range c.vv {
		add(v)
	}
	for _, ivs := range c.clouds() {
		for _, iv := range ivs {
			add(iv.hi - iv.lo + 1)
		}
	}
	return n
}

// eachDot calls fn for every dot in c until fn returns false.
func (c *CausalContext) eachDot(fn func(Dot) bool) {
	for r, v := range c.vv {
		for k := uint64(1); k <= v; k++ {
			if !fn(Dot{r, k}) {
				return
			}
		}
	}
	for r, ivs := range c.clouds() {
		for _, iv := range ivs {
			for k := iv.lo; ; k++ {
				if !fn(Dot{r, k}) {
					return
				}
				if k == iv.hi {
					break
				}
			}
		}
	}
}

// replicas returns every replica mentioned in c, sorted.
func (c *CausalContext) replicas() []ReplicaID {
	seen := make(map[ReplicaID]struct{}, len(c.vv)+len(c.more)+1)
	for r, n := range c.vv {
		if n > 0 {
			seen[r] = struct{}{}
		}
	}
	for r := range c.clouds() {
		seen[r] = struct{}{}
	}
	out := make([]ReplicaID, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Replicas returns every replica mentioned in c, sorted.
func (c *CausalContext) Replicas() []ReplicaID { return c.replicas() }

// remove takes o's dots out of c (a merge that refused what it had
// claimed).
func (c *CausalContext) remove(o *CausalContext) {
	for r, n := range o.vv {
		if n > 0 {
			c.removeRange(r, 1, n)
		}
	}
	for r, ivs := range o.clouds() {
		for _, iv := range ivs {
			c.removeRange(r, iv.lo, iv.hi)
		}
	}
}

// removeRange takes counters lo..hi of r out of c.
func (c *CausalContext) removeRange(r ReplicaID, lo, hi uint64) {
	var ivs []interval
	if n := c.vv[r]; n > 0 {
		ivs = append(ivs, interval{1, n})
	}
	ivs = append(ivs, c.cloudOf(r)...)
	var out []interval
	for _, iv := range ivs {
		if iv.hi < lo || iv.lo > hi {
			out = append(out, iv)
			continue
		}
		if iv.lo < lo {
			out = append(out, interval{iv.lo, lo - 1})
		}
		if iv.hi > hi {
			out = append(out, interval{hi + 1, iv.hi})
		}
	}
	delete(c.vv, r)
	if len(out) > 0 && out[0].lo == 1 {
		c.setVV(r, out[0].hi)
		out = out[1:]
	}
	c.setCloud(r, out)
}
