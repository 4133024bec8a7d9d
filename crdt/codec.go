package crdt

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"

	"github.com/concord-p2p/concord/internal/decmode"
)

// FormatVersion is the version written in every encoded state.
const FormatVersion = 1

// Encoded layout (CBOR, Core Deterministic Encoding, integer keys so fields
// can be added):
//
//	state = {0: version, 1: origin-implicit?, 2: [replica...],
//	         3: {ri: n} (version vector), 4: {ri: [lo, hi, ...]} (dot cloud),
//	         5: {key: entry}}
//	entry = {0: [[ri, counter, hlc, json]...] register,
//	         1: [[ri, counter, n]...] counter,
//	         2: {elem: [ri, counter, ...]} set,
//	         3: {key: entry} map,
//	         4: slot text, 5: slot list (seqkindcodec.go)}
//
// Replica indexes (ri) point into the table. In a delta encoding the author
// (origin) is implicit at index 0 — the envelope carries it — and the table
// starts at index 1, which keeps a one-op delta under 64 bytes.
type wState struct {
	V      uint64              `cbor:"0,keyasint"`
	Origin bool                `cbor:"1,keyasint,omitempty"`
	Table  []string            `cbor:"2,keyasint,omitempty"`
	VV     map[uint64]uint64   `cbor:"3,keyasint,omitempty"`
	Cloud  map[uint64][]uint64 `cbor:"4,keyasint,omitempty"`
	Root   map[string]*wEntry  `cbor:"5,keyasint,omitempty"`
}

type wEntry struct {
	Reg  []wReg              `cbor:"0,keyasint,omitempty"`
	Ctr  []wCtr              `cbor:"1,keyasint,omitempty"`
	Set  map[string][]uint64 `cbor:"2,keyasint,omitempty"`
	Map  map[string]*wEntry  `cbor:"3,keyasint,omitempty"`
	Text *wSeqSlot           `cbor:"4,keyasint,omitempty"`
	List *wSeqSlot           `cbor:"5,keyasint,omitempty"`
}

type wReg struct {
	_ struct{} `cbor:",toarray"`
	R uint64
	C uint64
	H uint64
	V []byte
}

type wCtr struct {
	_ struct{} `cbor:",toarray"`
	R uint64
	C uint64
	N int64
}

// Limits bound what a decoder accepts.
type Limits struct {
	// MaxBytes is the largest input accepted. Default 64 MiB.
	MaxBytes int
	// MaxElements bounds every CBOR array and map. Default 1<<22.
	MaxElements int
}

// DefaultLimits returns the limits used for snapshots; deltas from the
// network should use tighter ones (see DeltaLimits).
func DefaultLimits() Limits { return Limits{MaxBytes: 64 << 20, MaxElements: 1 << 22} }

// DeltaLimits returns limits suited to one delta carried by a message.
func DeltaLimits() Limits { return Limits{MaxBytes: 1 << 20, MaxElements: 1 << 16} }

// maxNesting allows MaxPathDepth nested maps (two CBOR levels each) plus the
// fixed levels above and below.
const maxNesting = 2*MaxPathDepth + 8

var encMode = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

func decMode(lim Limits) (cbor.DecMode, error) {
	n := lim.MaxElements
	if n < 16 {
		n = 16
	}
	return cbor.DecOptions{
		MaxNestedLevels:   maxNesting,
		MaxArrayElements:  n,
		MaxMapPairs:       n,
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
}

// decModes caches decoders for limits other than the two defaults.
var decModes = decmode.New(decMode)

var defaultDec, deltaDec = func() (cbor.DecMode, cbor.DecMode) {
	a, err := decMode(DefaultLimits())
	if err != nil {
		panic(err)
	}
	b, err := decMode(DeltaLimits())
	if err != nil {
		panic(err)
	}
	return a, b
}()

// Encode returns the canonical encoding of s: equal states encode to equal
// bytes.
func Encode(s *State) []byte { return encode(s, "") }

// EncodeDelta encodes s with origin implicit (the envelope names it).
func EncodeDelta(s *State, origin ReplicaID) []byte { return encode(s, origin) }

func encode(s *State, origin ReplicaID) []byte {
	reps := s.cc.replicas()
	index := make(map[ReplicaID]uint64, len(reps)+1)
	w := wState{V: FormatVersion}
	base := uint64(0)
	if origin != "" {
		w.Origin = true
		index[origin] = 0
		base = 1
	}
	for _, r := range reps {
		if r == origin {
			continue
		}
		index[r] = base + uint64(len(w.Table))
		w.Table = append(w.Table, string(r))
	}
	w.VV, w.Cloud = encodeContext(s.cc, index)
	w.Root = encodeMap(s.root, index, origin)
	b, err := encMode.Marshal(&w)
	if err != nil {
		panic(fmt.Sprintf("crdt: encode: %v", err)) // only plain types: cannot fail
	}
	return b
}

// encodeContext returns cc's vector and dot cloud keyed by replica index
// (nil when empty), as states and deltas of every kind carry them.
func encodeContext(cc *CausalContext, index map[ReplicaID]uint64) (vv map[uint64]uint64, cloud map[uint64][]uint64) {
	for r, n := range cc.vv {
		if n > 0 {
			if vv == nil {
				vv = map[uint64]uint64{}
			}
			vv[index[r]] = n
		}
	}
	for r, ivs := range cc.cloud {
		if cloud == nil {
			cloud = map[uint64][]uint64{}
		}
		flat := make([]uint64, 0, 2*len(ivs))
		for _, iv := range ivs {
			flat = append(flat, iv.lo, iv.hi)
		}
		cloud[index[r]] = flat
	}
	return vv, cloud
}

func encodeMap(n *mapNode, index map[ReplicaID]uint64, origin ReplicaID) map[string]*wEntry {
	if n == nil || len(n.kids) == 0 {
		return nil
	}
	out := make(map[string]*wEntry, len(n.kids))
	for k, e := range n.kids {
		we := &wEntry{}
		for _, r := range e.reg {
			we.Reg = append(we.Reg, wReg{R: index[r.dot.Replica], C: r.dot.Counter, H: uint64(r.hlc), V: r.val})
		}
		sort.Slice(we.Reg, func(i, j int) bool {
			a, b := we.Reg[i], we.Reg[j]
			return a.R < b.R || a.R == b.R && a.C < b.C
		})
		for _, c := range e.ctr {
			we.Ctr = append(we.Ctr, wCtr{R: index[c.dot.Replica], C: c.dot.Counter, N: c.n})
		}
		sort.Slice(we.Ctr, func(i, j int) bool {
			a, b := we.Ctr[i], we.Ctr[j]
			return a.R < b.R || a.R == b.R && a.C < b.C
		})
		if len(e.set) > 0 {
			we.Set = make(map[string][]uint64, len(e.set))
			for el, ds := range e.set {
				pairs := make([][2]uint64, len(ds))
				for i, d := range ds {
					pairs[i] = [2]uint64{index[d.Replica], d.Counter}
				}
				sort.Slice(pairs, func(i, j int) bool {
					return pairs[i][0] < pairs[j][0] || pairs[i][0] == pairs[j][0] && pairs[i][1] < pairs[j][1]
				})
				flat := make([]uint64, 0, 2*len(pairs))
				for _, p := range pairs {
					flat = append(flat, p[0], p[1])
				}
				we.Set[el] = flat
			}
		}
		we.Map = encodeMap(e.sub, index, origin)
		if e.text != nil {
			we.Text = encodeSlot(e.text, index, origin)
		}
		if e.list != nil {
			we.List = encodeSlot(e.list, index, origin)
		}
		out[k] = we
	}
	return out
}

// Decode decodes a state written by Encode.
func Decode(b []byte, lim Limits) (*State, error) { return decode(b, "", lim) }

// DecodeDelta decodes a delta written by EncodeDelta for origin.
func DecodeDelta(b []byte, origin ReplicaID, lim Limits) (*State, error) {
	if origin == "" {
		return nil, fmt.Errorf("%w: empty origin", ErrMalformed)
	}
	return decode(b, origin, lim)
}

func decode(b []byte, origin ReplicaID, lim Limits) (*State, error) {
	if lim.MaxBytes <= 0 {
		lim = DefaultLimits()
	}
	if len(b) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(b), lim.MaxBytes)
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
			return nil, fmt.Errorf("%w: limits: %v", ErrMalformed, err)
		}
	}
	var w wState
	if err := dm.Unmarshal(b, &w); err != nil {
		var me *cbor.MaxArrayElementsError
		var mp *cbor.MaxMapPairsError
		var mn *cbor.MaxNestedLevelError
		if errors.As(err, &me) || errors.As(err, &mp) || errors.As(err, &mn) {
			return nil, fmt.Errorf("%w: %v", ErrTooLarge, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if w.V != FormatVersion {
		return nil, fmt.Errorf("%w: %d", ErrVersion, w.V)
	}
	if w.Origin != (origin != "") {
		return nil, fmt.Errorf("%w: origin flag %v does not match the decoder", ErrMalformed, w.Origin)
	}
	table := make([]ReplicaID, 0, len(w.Table)+1)
	if origin != "" {
		table = append(table, origin)
	}
	seen := map[ReplicaID]bool{}
	for _, r := range w.Table {
		if r == "" || seen[ReplicaID(r)] || ReplicaID(r) == origin {
			return nil, fmt.Errorf("%w: bad or duplicate replica %q in table", ErrMalformed, r)
		}
		seen[ReplicaID(r)] = true
		table = append(table, ReplicaID(r))
	}
	rep := func(i uint64) (ReplicaID, error) {
		if i >= uint64(len(table)) {
			return "", fmt.Errorf("%w: replica index %d out of range", ErrMalformed, i)
		}
		return table[i], nil
	}
	s := New()
	for i, n := range w.VV {
		r, err := rep(i)
		if err != nil {
			return nil, err
		}
		if n > MaxCounter {
			return nil, fmt.Errorf("%w: counter %d above %d", ErrMalformed, n, uint64(MaxCounter))
		}
		s.cc.AddRange(r, 1, n)
	}
	for i, flat := range w.Cloud {
		r, err := rep(i)
		if err != nil {
			return nil, err
		}
		if len(flat)%2 != 0 {
			return nil, fmt.Errorf("%w: odd dot cloud", ErrMalformed)
		}
		for j := 0; j < len(flat); j += 2 {
			if flat[j] == 0 || flat[j] > flat[j+1] || flat[j+1] > MaxCounter {
				return nil, fmt.Errorf("%w: bad cloud interval [%d,%d]", ErrMalformed, flat[j], flat[j+1])
			}
			s.cc.AddRange(r, flat[j], flat[j+1])
		}
	}
	budget := lim.MaxBytes // what the document's compressed sequence columns may inflate to
	if err := decodeMap(s, nil, w.Root, rep, 0, lim, &budget); err != nil {
		return nil, err
	}
	return s, nil
}

func decodeMap(s *State, prefix []string, m map[string]*wEntry, rep func(uint64) (ReplicaID, error), depth int, lim Limits, budget *int) error {
	if len(m) > 0 && depth >= MaxPathDepth {
		return fmt.Errorf("%w: maps nested deeper than %d", ErrMalformed, MaxPathDepth)
	}
	for k, we := range m {
		if we == nil {
			return fmt.Errorf("%w: null entry at %q", ErrMalformed, k)
		}
		path := append(append([]string(nil), prefix...), k)
		dot := func(ri, c uint64) (Dot, error) {
			r, err := rep(ri)
			if err != nil {
				return Dot{}, err
			}
			d := Dot{r, c}
			if c == 0 {
				return d, fmt.Errorf("%w: zero counter", ErrMalformed)
			}
			if _, dup := s.idx[d]; dup {
				return d, fmt.Errorf("%w: dot %s:%d appears twice", ErrMalformed, r, c)
			}
			if !s.cc.Contains(d) {
				return d, fmt.Errorf("%w: dot %s:%d outside the causal context", ErrMalformed, r, c)
			}
			return d, nil
		}
		if len(we.Reg) > 0 || len(we.Ctr) > 0 || len(we.Set) > 0 {
			e := s.ensure(path)
			for _, r := range we.Reg {
				d, err := dot(r.R, r.C)
				if err != nil {
					return err
				}
				if !json.Valid(r.V) {
					return fmt.Errorf("%w: register value is not JSON", ErrMalformed)
				}
				if err := CheckJSONText(r.V); err != nil {
					return fmt.Errorf("%w: register value: %w", ErrMalformed, err)
				}
				s.insertReg(e, regDot{dot: d, hlc: HLC(r.H), val: append([]byte(nil), r.V...)})
			}
			for _, c := range we.Ctr {
				d, err := dot(c.R, c.C)
				if err != nil {
					return err
				}
				s.insertCtr(e, ctrDot{dot: d, n: c.N})
			}
			for el, flat := range we.Set {
				if c, err := compactScalar(json.RawMessage(el)); err != nil || string(c) != el || len(flat) == 0 || len(flat)%2 != 0 {
					return fmt.Errorf("%w: bad set element %q", ErrMalformed, el)
				}
				for j := 0; j < len(flat); j += 2 {
					d, err := dot(flat[j], flat[j+1])
					if err != nil {
						return err
					}
					s.insertElem(e, el, d)
				}
			}
		}
		if we.Text != nil || we.List != nil {
			if err := decodeSlots(s, func() *entry { return s.ensure(path) }, we, rep, dot, lim, budget); err != nil {
				return fmt.Errorf("%w at %q", err, k)
			}
		}
		if err := decodeMap(s, path, we.Map, rep, depth+1, lim, budget); err != nil {
			return err
		}
	}
	return nil
}
