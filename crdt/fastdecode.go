package crdt

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// A decoder written by hand for the commonest encoding, a state or delta
// whose every top-level key holds a plain register: what a bulk load, and
// the aggregates a late joiner receives, look like. It builds the state
// straight from the bytes, without the CBOR library's reflection or the
// intermediate wState, with one allocation for all the keys, one for all
// the values and one for all the entries.
//
// It only ever accepts: on anything it does not handle — another kind, a
// nested map, a form the canonical encoder does not write (map keys out of
// order, an integer longer than it needs), a limit reached, a check failed
// — it reports !ok and the caller decodes with the reference decoder,
// which then gives the result and, for bad input, the error. So errors,
// limits and strictness are the reference's; what it accepts must decode
// under the reference to the same state (the differential fuzz and
// property tests check both).

// cborHead reads the head of the data item at b[i:]: its major type, its
// argument and where its content starts. ok is false for what the fast
// decoder leaves to the reference: indefinite lengths, reserved values,
// truncated input and arguments not in their shortest form.
func cborHead(b []byte, i int) (major byte, arg uint64, next int, ok bool) {
	if i >= len(b) {
		return 0, 0, 0, false
	}
	major, info := b[i]>>5, b[i]&0x1f
	i++
	switch {
	case info < 24:
		return major, uint64(info), i, true
	case info == 24:
		if i+1 > len(b) || b[i] < 24 {
			return 0, 0, 0, false
		}
		return major, uint64(b[i]), i + 1, true
	case info == 25:
		if i+2 > len(b) {
			return 0, 0, 0, false
		}
		v := uint64(b[i])<<8 | uint64(b[i+1])
		return major, v, i + 2, v > 0xff
	case info == 26:
		if i+4 > len(b) {
			return 0, 0, 0, false
		}
		v := uint64(b[i])<<24 | uint64(b[i+1])<<16 | uint64(b[i+2])<<8 | uint64(b[i+3])
		return major, v, i + 4, v > 0xffff
	case info == 27:
		if i+8 > len(b) {
			return 0, 0, 0, false
		}
		var v uint64
		for k := range 8 {
			v = v<<8 | uint64(b[i+k])
		}
		return major, v, i + 8, v > 0xffffffff
	}
	return 0, 0, 0, false
}

// fastReader walks the input for decodeFast; any failure sets bad.
type fastReader struct {
	b   []byte
	i   int
	max uint64 // the element limit of arrays and maps
	bad bool
}

// head reads a head of major type want.
func (r *fastReader) head(want byte) uint64 {
	if r.bad {
		return 0
	}
	major, arg, next, ok := cborHead(r.b, r.i)
	if !ok || major != want {
		r.bad = true
		return 0
	}
	r.i = next
	return arg
}

func (r *fastReader) uint() uint64 { return r.head(0) }

// count reads the head of an array (4) or map (5) and checks its size
// against the limit.
func (r *fastReader) count(major byte) int {
	n := r.head(major)
	if n > r.max || n > uint64(len(r.b)) {
		r.bad = true
		return 0
	}
	return int(n)
}

// str reads a byte (2) or text (3) string's bytes, checking a text
// string's UTF-8.
func (r *fastReader) str(major byte) []byte {
	n := r.head(major)
	if r.bad || n > uint64(len(r.b)-r.i) {
		r.bad = true
		return nil
	}
	s := r.b[r.i : r.i+int(n)]
	r.i += int(n)
	if major == 3 && !utf8.Valid(s) {
		r.bad = true
	}
	return s
}

// key reads a map key of major type major (0: an unsigned integer, whose
// value it returns; 3: a text string, whose bytes it returns) and checks
// that it sorts after the map's previous key (prev, updated), as the
// canonical encoding has it: keys in order are also distinct.
func (r *fastReader) key(major byte, prev *[]byte) (uint64, []byte) {
	start := r.i
	var v uint64
	var str []byte
	if major == 0 {
		v = r.uint()
	} else {
		str = r.str(major)
	}
	if r.bad {
		return 0, nil
	}
	k := r.b[start:r.i]
	if *prev != nil && bytes.Compare(*prev, k) >= 0 {
		r.bad = true
	}
	*prev = k
	return v, str
}

// fastReg is one register value as read: its entry and its fields.
type fastReg struct {
	key     int // index into the keys
	ri, c   uint64
	hlc     uint64
	valFrom int // the value's bytes, in the input
	valTo   int
}

// decodeFast decodes b (its size already checked against lim) when it is
// a state or delta of plain registers at top-level keys, in canonical form,
// and every check of the reference decoder passes; ok is false otherwise.
func decodeFast(b []byte, origin ReplicaID, lim Limits) (s *State, ok bool) {
	n := lim.MaxElements
	if n < 16 {
		n = 16
	}
	r := &fastReader{b: b, max: uint64(n)}
	s = New()
	table := make([]ReplicaID, 0, 1)
	if origin != "" {
		table = append(table, origin)
	}
	var keys [][]byte // each key's bytes, in the input
	var regs []fastReg
	keyBytes, valBytes := 0, 0
	var prev []byte
	version, flag := false, false
	for range r.count(5) {
		f, _ := r.key(0, &prev)
		if r.bad {
			return nil, false
		}
		switch f {
		case 0:
			if r.uint() != FormatVersion {
				return nil, false
			}
			version = true
		case 1:
			// The flag: true in a delta (whose origin is implicit); a
			// state's encoding leaves it out.
			if r.i >= len(b) || b[r.i] != 0xf5 || origin == "" {
				return nil, false
			}
			r.i++
			flag = true
		case 2:
			for range r.count(4) {
				t := ReplicaID(r.str(3))
				if r.bad || t == "" || t == origin || slices.Contains(table, t) {
					return nil, false
				}
				table = append(table, t)
			}
		case 3:
			var kp []byte
			for range r.count(5) {
				ri, _ := r.key(0, &kp)
				c := r.uint()
				if r.bad || ri >= uint64(len(table)) || c > MaxCounter {
					return nil, false
				}
				s.cc.AddRange(table[ri], 1, c)
			}
		case 4:
			var kp []byte
			for range r.count(5) {
				ri, _ := r.key(0, &kp)
				flat := r.count(4)
				if r.bad || ri >= uint64(len(table)) || flat%2 != 0 {
					return nil, false
				}
				for range flat / 2 {
					lo, hi := r.uint(), r.uint()
					if r.bad || lo == 0 || lo > hi || hi > MaxCounter {
						return nil, false
					}
					s.cc.AddRange(table[ri], lo, hi)
				}
			}
		case 5:
			var kp []byte
			nk := r.count(5)
			keys = make([][]byte, 0, nk)
			regs = make([]fastReg, 0, nk)
			for range nk {
				_, k := r.key(3, &kp)
				keys = append(keys, k)
				keyBytes += len(k)
				// {0: [[ri, counter, hlc, value]...]} and nothing else.
				if r.count(5) != 1 || r.uint() != 0 {
					return nil, false
				}
				nv := r.count(4)
				if r.bad || nv == 0 {
					return nil, false
				}
				for range nv {
					if r.count(4) != 4 {
						return nil, false
					}
					x := fastReg{key: len(keys) - 1, ri: r.uint(), c: r.uint(), hlc: r.uint()}
					v := r.str(2)
					if r.bad {
						return nil, false
					}
					x.valFrom, x.valTo = r.i-len(v), r.i
					valBytes += len(v)
					regs = append(regs, x)
				}
			}
		default:
			return nil, false
		}
		if r.bad {
			return nil, false
		}
	}
	if r.bad || r.i != len(b) || !version || flag != (origin != "") {
		return nil, false
	}
	// Every check of wRegister.decode but the one for a dot held twice
	// (below), before anything is built.
	for _, x := range regs {
		if x.ri >= uint64(len(table)) || x.c == 0 || !s.cc.Contains(Dot{table[x.ri], x.c}) {
			return nil, false
		}
		v := b[x.valFrom:x.valTo]
		if !json.Valid(v) || CheckJSONText(v) != nil {
			return nil, false
		}
	}
	if len(keys) > 1 {
		s.root.kids.grow(len(keys))
		if !ascending(regs) {
			// Room for the dots in the sparse map, where dots inserted
			// out of order go; in order (a bulk load: keys in order
			// written in order), they go to pages, and it is not needed.
			s.idx.grow(len(keys))
		}
	}
	kb := make([]byte, 0, keyBytes)
	for _, k := range keys {
		kb = append(kb, k...)
	}
	ks := string(kb)
	ents := make([]regEntry, len(keys))
	off := 0
	for i, k := range keys {
		e := &ents[i]
		e.e = entry{parent: s.root, key: ks[off : off+len(k)]}
		e.e.setAt(KindRegister, e.r.init())
		off += len(k)
	}
	vb := make([]byte, 0, valBytes)
	for _, x := range regs {
		d := Dot{table[x.ri], x.c}
		if s.idx.has(d) {
			return nil, false // a dot held twice: the reference says so
		}
		from := len(vb)
		vb = append(vb, b[x.valFrom:x.valTo]...)
		// Values share one allocation; each is capped so that none can
		// grow into the next.
		s.insertReg(&ents[x.key].e, regDot{dot: d, hlc: HLC(x.hlc), val: vb[from:len(vb):len(vb)]})
	}
	for i := range ents {
		s.root.kids.put(ents[i].e.key, &ents[i].e)
	}
	return s, true
}

// ascending reports whether the values' dots are of one replica index and
// in increasing counter order.
func ascending(regs []fastReg) bool {
	for i := 1; i < len(regs); i++ {
		if regs[i].ri != regs[0].ri || regs[i].c <= regs[i-1].c {
			return false
		}
	}
	return true
}
