package crdt

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"
)

// Encoded sequence delta (CBOR, Core Deterministic Encoding):
//
//	delta = {0: version, 1: kind (0 text, 1 list), 2: [replica...],
//	         3: [run...], 4: [del...], 5: {ri: n}, 6: {ri: [lo, hi, ...]}}
//	run   = [ri, ctr, olri | null, ol, orri | null, or, content]
//	del   = [ri | null, ctr, [ri, ctr, n, ...]]
//
// The author (origin) is implicit at replica index 0 — the envelope names
// it — and the table lists the others from index 1. An origin of the run's
// own replica is written as ctr minus its counter (small: usually 1), any
// other as its counter; null is the start (ol) or the end (or). content is
// the text (a string), the list values (an array of byte strings) or, for
// a tombstone run of a whole state, the number of elements. del is a
// delete's dot (null for a whole state's deletes) and its ranges; keys 5
// and 6 are the delete dots of a whole state.
type wSeqDelta struct {
	V     uint64              `cbor:"0,keyasint"`
	Kind  uint64              `cbor:"1,keyasint,omitempty"`
	Table []string            `cbor:"2,keyasint,omitempty"`
	Runs  []wSeqRun           `cbor:"3,keyasint,omitempty"`
	Dels  []wSeqDel           `cbor:"4,keyasint,omitempty"`
	VV    map[uint64]uint64   `cbor:"5,keyasint,omitempty"`
	Cloud map[uint64][]uint64 `cbor:"6,keyasint,omitempty"`
}

type wSeqRun struct {
	_   struct{} `cbor:",toarray"`
	R   uint64
	C   uint64
	OLR *uint64
	OL  uint64
	ORR *uint64
	OR  uint64
	X   cbor.RawMessage
}

type wSeqDel struct {
	_  struct{} `cbor:",toarray"`
	R  *uint64
	C  uint64
	Rs []uint64
}

// EncodeSeqDelta encodes d with origin implicit (the envelope names it).
func EncodeSeqDelta[V SeqValue](d *SeqDelta[V], origin ReplicaID) []byte {
	names := map[ReplicaID]struct{}{}
	note := func(r ReplicaID) {
		if r != "" && r != origin {
			names[r] = struct{}{}
		}
	}
	for i := range d.runs {
		note(d.runs[i].id.Replica)
		note(d.runs[i].ol.Replica)
		note(d.runs[i].or.Replica)
	}
	for _, del := range d.dels {
		note(del.by.Replica)
		for _, rg := range del.ranges {
			note(rg.id.Replica)
		}
	}
	if d.dots != nil {
		for _, r := range d.dots.replicas() {
			note(r)
		}
	}
	w := wSeqDelta{V: SeqFormatVersion, Kind: seqKind[V]()}
	for r := range names {
		w.Table = append(w.Table, string(r))
	}
	sort.Strings(w.Table)
	index := map[ReplicaID]uint64{origin: 0}
	for i, r := range w.Table {
		index[ReplicaID(r)] = uint64(i + 1)
	}
	ref := func(run Dot, o Dot) (*uint64, uint64) {
		if o.Counter == 0 {
			return nil, 0
		}
		ri := index[o.Replica]
		if o.Replica == run.Replica && o.Counter < run.Counter {
			return &ri, run.Counter - o.Counter
		}
		return &ri, o.Counter
	}
	for i := range d.runs {
		r := &d.runs[i]
		wr := wSeqRun{R: index[r.id.Replica], C: r.id.Counter}
		wr.OLR, wr.OL = ref(r.id, r.ol)
		wr.ORR, wr.OR = ref(r.id, r.or)
		var x any
		switch {
		case r.del:
			x = r.n
		default:
			switch vs := any(r.vals).(type) {
			case []rune:
				x = string(vs)
			case []json.RawMessage:
				bs := make([][]byte, len(vs))
				for k, v := range vs {
					bs[k] = v
				}
				x = bs
			}
		}
		b, err := encMode.Marshal(x)
		if err != nil {
			panic(fmt.Sprintf("crdt: encode sequence delta: %v", err))
		}
		wr.X = b
		w.Runs = append(w.Runs, wr)
	}
	for _, del := range d.dels {
		wd := wSeqDel{C: del.by.Counter}
		if del.by.Counter != 0 {
			ri := index[del.by.Replica]
			wd.R = &ri
		}
		for _, rg := range del.ranges {
			wd.Rs = append(wd.Rs, index[rg.id.Replica], rg.id.Counter, rg.n)
		}
		w.Dels = append(w.Dels, wd)
	}
	if d.dots != nil {
		w.VV, w.Cloud = encodeContext(d.dots, index)
	}
	b, err := encMode.Marshal(&w)
	if err != nil {
		panic(fmt.Sprintf("crdt: encode sequence delta: %v", err)) // plain types: cannot fail
	}
	return b
}

// DecodeSeqDelta decodes a delta written by EncodeSeqDelta for origin.
// Input that is not a valid encoding is refused with an error wrapping
// ErrMalformed, ErrTooLarge or ErrVersion.
func DecodeSeqDelta[V SeqValue](b []byte, origin ReplicaID, lim Limits) (*SeqDelta[V], error) {
	if origin == "" {
		return nil, fmt.Errorf("%w: empty origin", ErrMalformed)
	}
	if lim.MaxBytes <= 0 {
		lim = DefaultLimits()
	}
	var w wSeqDelta
	if err := decodeLimited(b, lim, &w); err != nil {
		return nil, err
	}
	if w.V != SeqFormatVersion {
		return nil, fmt.Errorf("%w: sequence delta version %d", ErrVersion, w.V)
	}
	if w.Kind != seqKind[V]() {
		return nil, fmt.Errorf("%w: sequence delta of kind %d, want %d", ErrMalformed, w.Kind, seqKind[V]())
	}
	table, err := decodeTable(origin, w.Table)
	if err != nil {
		return nil, err
	}
	rep := func(i uint64) (ReplicaID, error) {
		if i >= uint64(len(table)) {
			return "", fmt.Errorf("%w: replica index %d out of range", ErrMalformed, i)
		}
		return table[i], nil
	}
	dm, err := decModes.Get(lim)
	if err != nil {
		return nil, fmt.Errorf("%w: limits: %v", ErrMalformed, err)
	}
	d := &SeqDelta[V]{}
	for i, wr := range w.Runs {
		r, err := rep(wr.R)
		if err != nil {
			return nil, err
		}
		run := seqRun[V]{id: Dot{r, wr.C}}
		origin := func(ri *uint64, c uint64) (Dot, error) {
			if ri == nil {
				if c != 0 {
					return Dot{}, fmt.Errorf("%w: run %d: counter on a missing origin", ErrMalformed, i)
				}
				return Dot{}, nil
			}
			o, err := rep(*ri)
			if err != nil {
				return Dot{}, err
			}
			if o == r { // written relative to the run: it comes before
				if c == 0 || c >= wr.C {
					return Dot{}, fmt.Errorf("%w: run %d: origin of the run's replica not before it", ErrMalformed, i)
				}
				c = wr.C - c
			}
			if c == 0 || c > MaxCounter {
				return Dot{}, fmt.Errorf("%w: run %d: bad origin counter", ErrMalformed, i)
			}
			return Dot{o, c}, nil
		}
		if run.ol, err = origin(wr.OLR, wr.OL); err != nil {
			return nil, err
		}
		if run.or, err = origin(wr.ORR, wr.OR); err != nil {
			return nil, err
		}
		if err := decodeRunContent(dm, wr.X, &run); err != nil {
			return nil, fmt.Errorf("%w: run %d", err, i)
		}
		if wr.C == 0 || run.n == 0 || run.n > MaxCounter || wr.C > MaxCounter-run.n+1 {
			return nil, fmt.Errorf("%w: run %d: bad counters %d+%d", ErrMalformed, i, wr.C, run.n)
		}
		d.runs = append(d.runs, run)
	}
	for i, wd := range w.Dels {
		var del seqDel
		if wd.R != nil {
			r, err := rep(*wd.R)
			if err != nil {
				return nil, err
			}
			if wd.C == 0 || wd.C > MaxCounter {
				return nil, fmt.Errorf("%w: delete %d: bad dot", ErrMalformed, i)
			}
			del.by = Dot{r, wd.C}
		} else if wd.C != 0 {
			return nil, fmt.Errorf("%w: delete %d: counter without replica", ErrMalformed, i)
		}
		if len(wd.Rs) == 0 || len(wd.Rs)%3 != 0 {
			return nil, fmt.Errorf("%w: delete %d: bad ranges", ErrMalformed, i)
		}
		for k := 0; k < len(wd.Rs); k += 3 {
			r, err := rep(wd.Rs[k])
			if err != nil {
				return nil, err
			}
			c, n := wd.Rs[k+1], wd.Rs[k+2]
			if c == 0 || n == 0 || n > MaxCounter || c > MaxCounter-n+1 {
				return nil, fmt.Errorf("%w: delete %d: bad range %d+%d", ErrMalformed, i, c, n)
			}
			del.ranges = append(del.ranges, seqRange{Dot{r, c}, n})
		}
		d.dels = append(d.dels, del)
	}
	if len(w.VV) > 0 || len(w.Cloud) > 0 {
		if d.dots, err = decodeContext(w.VV, w.Cloud, table); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// decodeRunContent reads a run's values, or a tombstone run's length.
func decodeRunContent[V SeqValue](dm cbor.DecMode, x cbor.RawMessage, run *seqRun[V]) error {
	if len(x) == 0 {
		return fmt.Errorf("%w: no content", ErrMalformed)
	}
	switch major := x[0] >> 5; {
	case major == 0:
		if err := dm.Unmarshal(x, &run.n); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		run.del = true
		return nil
	case major == 3 && seqKind[V]() == 0:
		var str string
		if err := dm.Unmarshal(x, &str); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		rs := []rune(str)
		for _, r := range rs {
			if !validRune(r) {
				return fmt.Errorf("%w: invalid code point", ErrMalformed)
			}
		}
		run.vals = any(rs).([]V)
	case major == 4 && seqKind[V]() == 1:
		var bs [][]byte
		if err := dm.Unmarshal(x, &bs); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		vs := make([]json.RawMessage, len(bs))
		for k, v := range bs {
			if err := checkSeqValue(v); err != nil {
				return err
			}
			vs[k] = v
		}
		run.vals = any(vs).([]V)
	default:
		return fmt.Errorf("%w: content of CBOR major type %d", ErrMalformed, major)
	}
	run.n = uint64(len(run.vals))
	return nil
}
