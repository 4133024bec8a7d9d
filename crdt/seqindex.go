package crdt

import "sort"

// The ID index of a Seq: for each replica, the first counter of every item
// and the leaf holding it, sorted by counter in chunks (a two-level sorted
// list), so the item holding an element ID is found by a predecessor search
// and one leaf scan. Items are created in counter order by their author, so
// most insertions append to the last chunk.

const seqIdxChunk = 256

type idxChunk[V any] struct {
	keys   []uint64
	leaves []*snode[V]
}

type repIndex[V any] struct {
	chunks []*idxChunk[V]
}

// chunk returns the index of the chunk that holds, or would hold, key c.
func (x *repIndex[V]) chunk(c uint64) int {
	n := len(x.chunks)
	if n == 0 {
		return -1
	}
	if c >= x.chunks[n-1].keys[0] {
		return n - 1
	}
	i := sort.Search(n, func(i int) bool { return x.chunks[i].keys[0] > c })
	if i == 0 {
		return 0
	}
	return i - 1
}

// find returns the leaf of the item with the largest first counter ≤ c.
func (x *repIndex[V]) find(c uint64) *snode[V] {
	i := x.chunk(c)
	if i < 0 {
		return nil
	}
	ch := x.chunks[i]
	k := sort.Search(len(ch.keys), func(k int) bool { return ch.keys[k] > c })
	if k == 0 {
		return nil
	}
	return ch.leaves[k-1]
}

// put records that the item starting at c is in leaf l.
func (x *repIndex[V]) put(c uint64, l *snode[V]) {
	i := x.chunk(c)
	if i < 0 {
		x.chunks = append(x.chunks, &idxChunk[V]{keys: []uint64{c}, leaves: []*snode[V]{l}})
		return
	}
	ch := x.chunks[i]
	n := len(ch.keys)
	var k int
	if c > ch.keys[n-1] {
		k = n
	} else {
		k = sort.Search(n, func(k int) bool { return ch.keys[k] >= c })
		if k < n && ch.keys[k] == c {
			ch.leaves[k] = l
			return
		}
	}
	ch.keys = append(ch.keys, 0)
	ch.leaves = append(ch.leaves, nil)
	copy(ch.keys[k+1:], ch.keys[k:])
	copy(ch.leaves[k+1:], ch.leaves[k:])
	ch.keys[k], ch.leaves[k] = c, l
	if len(ch.keys) > seqIdxChunk {
		h := len(ch.keys) / 2
		nc := &idxChunk[V]{
			keys:   append(make([]uint64, 0, seqIdxChunk+1), ch.keys[h:]...),
			leaves: append(make([]*snode[V], 0, seqIdxChunk+1), ch.leaves[h:]...),
		}
		clear(ch.leaves[h:])
		ch.keys, ch.leaves = ch.keys[:h], ch.leaves[:h]
		x.chunks = append(x.chunks, nil)
		copy(x.chunks[i+2:], x.chunks[i+1:])
		x.chunks[i+1] = nc
	}
}

// del forgets the item starting at c.
func (x *repIndex[V]) del(c uint64) {
	i := x.chunk(c)
	if i < 0 {
		return
	}
	ch := x.chunks[i]
	k := sort.Search(len(ch.keys), func(k int) bool { return ch.keys[k] >= c })
	if k == len(ch.keys) || ch.keys[k] != c {
		return
	}
	copy(ch.keys[k:], ch.keys[k+1:])
	copy(ch.leaves[k:], ch.leaves[k+1:])
	ch.leaves[len(ch.leaves)-1] = nil
	ch.keys, ch.leaves = ch.keys[:len(ch.keys)-1], ch.leaves[:len(ch.leaves)-1]
	if len(ch.keys) == 0 {
		copy(x.chunks[i:], x.chunks[i+1:])
		x.chunks[len(x.chunks)-1] = nil
		x.chunks = x.chunks[:len(x.chunks)-1]
	}
}

// count returns the number of items indexed.
func (x *repIndex[V]) count() int {
	n := 0
	for _, ch := range x.chunks {
		n += len(ch.keys)
	}
	return n
}

// succ returns the smallest first counter > c.
func (x *repIndex[V]) succ(c uint64) (uint64, bool) {
	i := x.chunk(c)
	if i < 0 {
		return 0, false
	}
	for ; i < len(x.chunks); i++ {
		ch := x.chunks[i]
		k := sort.Search(len(ch.keys), func(k int) bool { return ch.keys[k] > c })
		if k < len(ch.keys) {
			return ch.keys[k], true
		}
	}
	return 0, false
}

// build replaces the index with the sorted keys and their leaves.
func (x *repIndex[V]) build(keys []uint64, leaves []*snode[V]) {
	const fill = seqIdxChunk * 3 / 4
	x.chunks = x.chunks[:0]
	for i := 0; i < len(keys); i += fill {
		end := min(i+fill, len(keys))
		x.chunks = append(x.chunks, &idxChunk[V]{
			keys:   append(make([]uint64, 0, seqIdxChunk+1), keys[i:end]...),
			leaves: append(make([]*snode[V], 0, seqIdxChunk+1), leaves[i:end]...),
		})
	}
}

// rekey changes the first counter of an item from old to c, which sorts
// in the same place (no other item starts between them).
func (x *repIndex[V]) rekey(old, c uint64) {
	i := x.chunk(old)
	ch := x.chunks[i]
	k := sort.Search(len(ch.keys), func(k int) bool { return ch.keys[k] >= old })
	ch.keys[k] = c
}
