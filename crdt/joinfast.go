package crdt

import (
	"bytes"
	"fmt"
	"slices"
)

// joinDisjointFast is JoinDisjointDeltas for deltas in the canonical form
// EncodeDelta writes, read by hand (fastReader) rather than through the
// CBOR library: the same answer, without decoding each delta's keys into
// a map and sorting them again. ok is false for anything else, the
// reference then answers.
func joinDisjointFast(origin ReplicaID, payloads [][]byte, lim Limits) ([]byte, bool) {
	n := max(lim.MaxElements, 16)
	if lim.MaxBytes <= 0 {
		return nil, false
	}
	// A key and its entry, encoded, at payloads[p][k:e] and [e:end]
	// (offsets, not slices: nothing for the collector to scan).
	type kv struct{ p, k, e, end int }
	var root []kv
	key := func(x kv) []byte { return payloads[x.p][x.k:x.e] }
	cc := NewCausalContext()
	var top uint64
	sorted := true // root, the payloads' keys in turn, is in order
	for i, b := range payloads {
		if len(b) > lim.MaxBytes {
			return nil, false
		}
		r := &fastReader{b: b, max: uint64(n)}
		var prev []byte
		version, flag := false, false
		var lo, hi uint64
		intervals := 0
		first := len(root)
		for range r.count(5) {
			f, _ := r.key(0, &prev)
			switch {
			case r.bad:
				return nil, false
			case f == 0:
				version = r.uint() == FormatVersion
			case f == 1:
				if r.i >= len(b) || b[r.i] != 0xf5 {
					return nil, false
				}
				r.i++
				flag = true
			case f == 3:
				// The vector: origin's counters from 1.
				if r.count(5) != 1 || r.uint() != 0 {
					return nil, false
				}
				lo, hi = 1, r.uint()
				intervals++
			case f == 4:
				// The cloud: one interval of origin's counters.
				if r.count(5) != 1 || r.uint() != 0 || r.count(4) != 2 {
					return nil, false
				}
				lo, hi = r.uint(), r.uint()
				intervals++
			case f == 5:
				var kp []byte
				nk := r.count(5)
				if root == nil {
					root = make([]kv, 0, nk*len(payloads))
				}
				for range nk {
					k0 := r.i
					r.key(3, &kp)
					e0 := r.i
					// A register alone, with values: {0: [[ri, c, hlc, v]...]}.
					if r.count(5) != 1 || r.uint() != 0 {
						return nil, false
					}
					nv := r.count(4)
					if nv == 0 {
						return nil, false
					}
					for range nv {
						if r.count(4) != 4 {
							return nil, false
						}
						r.uint()
						r.uint()
						r.uint()
						r.str(2)
					}
					if r.bad {
						return nil, false
					}
					root = append(root, kv{i, k0, e0, r.i})
				}
			default:
				return nil, false
			}
			if r.bad {
				return nil, false
			}
		}
		if r.bad || r.i != len(b) || !version || !flag || intervals != 1 || lo == 0 || lo > hi || hi > MaxCounter || (i > 0 && lo <= top) {
			return nil, false
		}
		if first > 0 && len(root) > first && bytes.Compare(key(root[first-1]), key(root[first])) >= 0 {
			sorted = false
		}
		cc.AddRange(origin, lo, hi)
		top = hi
	}
	if !sorted {
		slices.SortFunc(root, func(a, b kv) int { return bytes.Compare(key(a), key(b)) })
		for i := 1; i < len(root); i++ {
			if bytes.Equal(key(root[i-1]), key(root[i])) {
				return nil, false // a key in two deltas
			}
		}
	}
	head := wDeltaShallow{V: FormatVersion, Origin: true}
	head.VV, head.Cloud = encodeContext(cc, map[ReplicaID]uint64{origin: 0})
	b, err := encMode.Marshal(&head)
	if err != nil {
		panic(fmt.Sprintf("crdt: encode: %v", err)) // only plain types: cannot fail
	}
	if len(root) == 0 {
		return b, true
	}
	size := len(b) + 1 + 9
	for _, x := range root {
		size += x.end - x.k
	}
	out := make([]byte, 0, size)
	out = append(out, b...)
	out[0]++ // one field more (at most 5, so the head is one byte), the keys
	out = append(out, 0x05)
	out = appendHead(out, 5, uint64(len(root)))
	for _, x := range root {
		out = append(out, payloads[x.p][x.k:x.end]...)
	}
	return out, true
}

// appendHead appends the canonical head of a data item of major type
// major with argument v.
func appendHead(b []byte, major byte, v uint64) []byte {
	m := major << 5
	switch {
	case v < 24:
		return append(b, m|byte(v))
	case v <= 0xff:
		return append(b, m|24, byte(v))
	case v <= 0xffff:
		return append(b, m|25, byte(v>>8), byte(v))
	case v <= 0xffffffff:
		return append(b, m|26, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, m|27, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
