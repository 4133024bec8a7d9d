package crdt

import "sort"

func rangeLen(rs []seqRange) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.n
	}
	return n
}

// missingSpans calls fn for each maximal span of counters lo..hi of r that
// cc does not hold.
func missingSpans(cc *CausalContext, r ReplicaID, lo, hi uint64, fn func(a, b uint64)) {
	if top := cc.vv[r]; lo <= top {
		if hi <= top {
			return
		}
		lo = top + 1
	}
	ivs := cc.cloudOf(r)
	k := sort.Search(len(ivs), func(k int) bool { return ivs[k].hi >= lo })
	for c := lo; c <= hi; {
		if k == len(ivs) || ivs[k].lo > hi {
			fn(c, hi)
			return
		}
		if ivs[k].lo > c {
			fn(c, ivs[k].lo-1)
		}
		c = ivs[k].hi + 1
		k++
		if c == 0 { // wrapped
			return
		}
	}
}
