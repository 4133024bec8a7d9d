package crdt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"
)

// SeqFormatVersion is the version written in every encoded sequence and
// sequence delta.
const SeqFormatVersion = 1

// Encoded sequence (CBOR, Core Deterministic Encoding, integer keys):
//
//	seq = {0: version, 1: kind (0 text, 1 list), 2: [replica...],
//	       3: {ri: n} (version vector), 4: {ri: [lo, hi, ...]} (dot cloud),
//	       5: runs, 6: hdr, 7: rep, 8: ctr, 9: len, 10: refs, 11: dels,
//	       12: text | 13: [value...], 14: zip}
//
// The elements, tombstones included, are written in document order as
// canonical runs: maximal groups of neighbours where each is the next
// counter of the same replica, inserted right after the previous one with
// the same right origin. Keys 6 to 11 are byte strings holding columns
// of unsigned LEB128 varints, one entry (or none) per run:
//
//	hdr   one byte: bits 0-1 left origin (0 the element before the run,
//	      1 none, 2 in refs, 3 the previous run's); bits 2-4 right origin
//	      (0 none, 1 the element after the run, 2 the previous run's, 3 the
//	      right origin of the run holding the left origin, 4 in refs);
//	      bits 5-6 deleted (0 none, 1 all, 2 the last k: k in dels, 3 some:
//	      segments in dels); bit 7 the replica changes (in rep)
//	rep   replica index, when bit 7 is set
//	ctr   first counter, zigzag delta from the left origin's counter + 1
//	      when it is the same replica's, else from the end of the
//	      replica's previous run + 1
//	len   number of elements
//	refs  an origin in another run: 2k+1 and an offset, or 2k for offset
//	      0; k counts runs back for a left origin (0 the previous run),
//	      ahead for a right one (0 the next); the offset is from that run's
//	      last (left) or first (right) element
//	dels  k; or the number of segments m, then m lengths alternating
//	      visible and deleted, starting with visible (that one may be 0)
//
// Text (a byte string) holds the visible code points in order as UTF-8; a
// list's values are its visible JSON values in order. Deleted values are
// not kept. Delete dots are the dots of the context that are not elements.
//
// zip says which of the byte strings 6 to 12 are deflated: bit k for key
// k. A column of at least 256 bytes is deflated when that makes it
// shorter; it is then the column's length (a uvarint) followed by a raw
// deflate stream (RFC 1951) of exactly that many bytes, written by
// compress/flate at BestCompression, so replicas built with the same
// compressor write the same bytes. A decoder refuses columns that inflate
// beyond the decoding limit (Limits.MaxBytes for all of them together),
// checking each declared length before inflating it.
type wSeq struct {
	V     uint64              `cbor:"0,keyasint"`
	Kind  uint64              `cbor:"1,keyasint"`
	Table []string            `cbor:"2,keyasint,omitempty"`
	VV    map[uint64]uint64   `cbor:"3,keyasint,omitempty"`
	Cloud map[uint64][]uint64 `cbor:"4,keyasint,omitempty"`
	Runs  uint64              `cbor:"5,keyasint,omitempty"`
	Hdr   []byte              `cbor:"6,keyasint,omitempty"`
	Rep   []byte              `cbor:"7,keyasint,omitempty"`
	Ctr   []byte              `cbor:"8,keyasint,omitempty"`
	Len   []byte              `cbor:"9,keyasint,omitempty"`
	Refs  []byte              `cbor:"10,keyasint,omitempty"`
	Dels  []byte              `cbor:"11,keyasint,omitempty"`
	Text  []byte              `cbor:"12,keyasint,omitempty"`
	Vals  [][]byte            `cbor:"13,keyasint,omitempty"`
	Zip   uint64              `cbor:"14,keyasint,omitempty"`
}

const (
	hdrOLPrev, hdrOLNone, hdrOLRef, hdrOLSame              = 0, 1, 2, 3
	hdrORNone, hdrORNext, hdrORPrev, hdrORParent, hdrORRef = 0, 1, 2, 3, 4
	hdrVisible, hdrDeleted, hdrTail, hdrMixed              = 0, 1, 2, 3
	hdrRep                                                 = 1 << 7
)

// crun is a canonical run while encoding.
type crun struct {
	rep    uint32
	ctr    uint64
	n      uint64
	ol, or sid
	segs   []uint64 // alternating visible, deleted lengths
}

func (r *crun) del() int {
	switch {
	case len(r.segs) == 1:
		return hdrVisible
	case len(r.segs) == 2 && r.segs[0] == 0:
		return hdrDeleted
	case len(r.segs) == 2:
		return hdrTail
	}
	return hdrMixed
}

func seqKind[V SeqValue]() uint64 {
	var v V
	if _, ok := any(v).(json.RawMessage); ok {
		return 1
	}
	return 0
}

// canonical returns the canonical runs of s in document order.
func (s *Seq[V]) canonical() []crun {
	var out []crun
	s.t.each(func(it *sitem[V]) bool {
		if k := len(out); k > 0 {
			c := &out[k-1]
			if c.rep == it.rep && c.ctr+c.n == it.ctr && it.ol == (sid{c.rep, c.ctr + c.n - 1}) && it.or == c.or {
				c.n += uint64(it.n)
				if it.del == (len(c.segs)%2 == 0) {
					c.segs[len(c.segs)-1] += uint64(it.n)
				} else {
					c.segs = append(c.segs, uint64(it.n))
				}
				return true
			}
		}
		c := crun{rep: it.rep, ctr: it.ctr, n: uint64(it.n), ol: it.ol, or: it.or}
		if it.del {
			c.segs = []uint64{0, uint64(it.n)}
		} else {
			c.segs = []uint64{uint64(it.n)}
		}
		out = append(out, c)
		return true
	})
	return out
}

// EncodeSeq returns the canonical encoding of s: equal sequences encode to
// equal bytes. Held-back changes are not part of it.
func EncodeSeq[V SeqValue](s *Seq[V]) []byte {
	reps := s.cc.replicas()
	index := make(map[ReplicaID]uint64, len(reps))
	w := wSeq{V: SeqFormatVersion, Kind: seqKind[V]()}
	for _, r := range reps {
		index[r] = uint64(len(w.Table))
		w.Table = append(w.Table, string(r))
	}
	w.VV, w.Cloud = encodeContext(s.cc, index)
	runs := s.canonical()
	ri := make([]uint64, len(s.reps)) // interned replica → table index
	for i, r := range s.reps {
		ri[i] = index[r]
	}
	// Where each element is: per replica, the runs sorted by counter.
	byRep := make([][]int, len(s.reps))
	for i := range runs {
		byRep[runs[i].rep] = append(byRep[runs[i].rep], i)
	}
	for _, l := range byRep {
		sort.Slice(l, func(a, b int) bool { return runs[l[a]].ctr < runs[l[b]].ctr })
	}
	runOf := func(id sid) (int, uint64) {
		l := byRep[id.r]
		k := sort.Search(len(l), func(k int) bool { return runs[l[k]].ctr > id.c }) - 1
		return l[k], id.c - runs[l[k]].ctr
	}
	w.Runs = uint64(len(runs))
	lastEnd := make([]uint64, len(s.reps))
	olRun := make([]int, len(runs))
	prevRep := uint32(0)
	for i := range runs {
		r := &runs[i]
		var h byte
		olRun[i] = -1
		switch {
		case r.ol.none():
			h |= hdrOLNone
		case i > 0 && r.ol == (sid{runs[i-1].rep, runs[i-1].ctr + runs[i-1].n - 1}):
			h |= hdrOLPrev
			olRun[i] = i - 1
		case i > 0 && r.ol == runs[i-1].ol:
			h |= hdrOLSame
			olRun[i] = olRun[i-1]
		default:
			h |= hdrOLRef
			k, off := runOf(r.ol)
			olRun[i] = k
			w.Refs = appendRef(w.Refs, uint64(i-1-k), runs[k].n-1-off)
		}
		switch {
		case r.or.none():
			h |= hdrORNone << 2
		case i+1 < len(runs) && r.or == (sid{runs[i+1].rep, runs[i+1].ctr}):
			h |= hdrORNext << 2
		case i > 0 && r.or == runs[i-1].or:
			h |= hdrORPrev << 2
		case olRun[i] >= 0 && r.or == runs[olRun[i]].or:
			h |= hdrORParent << 2
		default:
			h |= hdrORRef << 2
			k, off := runOf(r.or)
			w.Refs = appendRef(w.Refs, uint64(k-i-1), off)
		}
		dm := r.del()
		h |= byte(dm) << 5
		switch dm {
		case hdrTail:
			w.Dels = binary.AppendUvarint(w.Dels, r.segs[1])
		case hdrMixed:
			w.Dels = binary.AppendUvarint(w.Dels, uint64(len(r.segs)))
			for _, n := range r.segs {
				w.Dels = binary.AppendUvarint(w.Dels, n)
			}
		}
		if i == 0 && ri[r.rep] != 0 || i > 0 && r.rep != prevRep {
			h |= hdrRep
			w.Rep = binary.AppendUvarint(w.Rep, ri[r.rep])
		}
		prevRep = r.rep
		w.Hdr = append(w.Hdr, h)
		w.Ctr = binary.AppendUvarint(w.Ctr, zigzag(int64(r.ctr)-int64(ctrBase(r.rep, r.ol, lastEnd))))
		lastEnd[r.rep] = r.ctr + r.n - 1
		w.Len = binary.AppendUvarint(w.Len, r.n)
	}
	switch t := any(s).(type) {
	case *Text:
		w.Text = []byte(t.String())
	case *List:
		t.t.each(func(it *sitem[json.RawMessage]) bool {
			if !it.del {
				for _, v := range it.vals {
					w.Vals = append(w.Vals, v)
				}
			}
			return true
		})
	}
	w.zip()
	b, err := encMode.Marshal(&w)
	if err != nil {
		panic(fmt.Sprintf("crdt: encode sequence: %v", err)) // plain types: cannot fail
	}
	return b
}

// ctrBase predicts a run's first counter: right after its left origin
// when that is the same replica's, else right after the replica's previous
// run in document order.
func ctrBase(rep uint32, ol sid, lastEnd []uint64) uint64 {
	if !ol.none() && ol.r == rep {
		return ol.c + 1
	}
	return lastEnd[rep] + 1
}

func appendRef(b []byte, k, off uint64) []byte {
	if off == 0 {
		return binary.AppendUvarint(b, k<<1)
	}
	return binary.AppendUvarint(binary.AppendUvarint(b, k<<1|1), off)
}

// ref reads what appendRef wrote.
func (v *varints) ref() (k, off uint64) {
	x := v.next()
	if x&1 != 0 {
		off = v.next()
		if off == 0 {
			v.err = fmt.Errorf("%w: column %s: explicit zero offset", ErrMalformed, v.name)
		}
	}
	return x >> 1, off
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// varints reads a column of LEB128 varints.
type varints struct {
	b    []byte
	name string
	err  error
}

func (v *varints) next() uint64 {
	if v.err != nil {
		return 0
	}
	x, n := binary.Uvarint(v.b)
	if n <= 0 {
		v.err = fmt.Errorf("%w: column %s is short or has a bad varint", ErrMalformed, v.name)
		return 0
	}
	v.b = v.b[n:]
	return x
}

func (v *varints) done() error {
	if v.err == nil && len(v.b) > 0 {
		v.err = fmt.Errorf("%w: %d bytes left over in column %s", ErrMalformed, len(v.b), v.name)
	}
	return v.err
}

// decodeLimited unmarshals b into w with the decoder for lim.
func decodeLimited(b []byte, lim Limits, w any) error {
	if lim.MaxBytes <= 0 {
		lim = DefaultLimits()
	}
	if len(b) > lim.MaxBytes {
		return fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(b), lim.MaxBytes)
	}
	var dm cbor.DecMode
	switch lim {
	case DefaultLimits():
		dm = defaultDec
	case DeltaLimits():
		dm = deltaDec
	default:
		var err error
		if dm, err = decModes.Get(lim); err != nil {
			return fmt.Errorf("%w: limits: %v", ErrMalformed, err)
		}
	}
	if err := dm.Unmarshal(b, w); err != nil {
		var me *cbor.MaxArrayElementsError
		var mp *cbor.MaxMapPairsError
		var mn *cbor.MaxNestedLevelError
		if errors.As(err, &me) || errors.As(err, &mp) || errors.As(err, &mn) {
			return fmt.Errorf("%w: %v", ErrTooLarge, err)
		}
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// decodeTable checks a replica table and returns it.
func decodeTable(origin ReplicaID, names []string) ([]ReplicaID, error) {
	table := make([]ReplicaID, 0, len(names)+1)
	if origin != "" {
		table = append(table, origin)
	}
	seen := map[ReplicaID]bool{origin: origin != ""}
	for i, r := range names {
		if r == "" || seen[ReplicaID(r)] || origin == "" && i > 0 && names[i-1] >= r {
			return nil, fmt.Errorf("%w: bad, duplicate or unsorted replica %q in table", ErrMalformed, r)
		}
		seen[ReplicaID(r)] = true
		table = append(table, ReplicaID(r))
	}
	return table, nil
}

// decodeContext rebuilds a causal context from its encoding.
func decodeContext(vv map[uint64]uint64, cloud map[uint64][]uint64, table []ReplicaID) (*CausalContext, error) {
	cc := NewCausalContext()
	for i, n := range vv {
		if i >= uint64(len(table)) || n == 0 || n > MaxCounter {
			return nil, fmt.Errorf("%w: bad version vector entry %d:%d", ErrMalformed, i, n)
		}
		cc.AddRange(table[i], 1, n)
	}
	for i, flat := range cloud {
		if i >= uint64(len(table)) || len(flat) == 0 || len(flat)%2 != 0 {
			return nil, fmt.Errorf("%w: bad dot cloud for replica index %d", ErrMalformed, i)
		}
		for j := 0; j < len(flat); j += 2 {
			if flat[j] == 0 || flat[j] > flat[j+1] || flat[j+1] > MaxCounter {
				return nil, fmt.Errorf("%w: bad cloud interval [%d,%d]", ErrMalformed, flat[j], flat[j+1])
			}
			cc.AddRange(table[i], flat[j], flat[j+1])
		}
	}
	return cc, nil
}

// checkSeqValue reports whether a decoded list value is compact JSON.
func checkSeqValue(v []byte) error {
	c, err := compactJSON(v)
	if err != nil || len(c) != len(v) {
		return fmt.Errorf("%w: list value is not compact JSON", ErrMalformed)
	}
	return nil
}
