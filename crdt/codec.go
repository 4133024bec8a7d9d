package crdt

import (
	"encoding/json"
	"errors"
	"fmt"

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
	Root   wMap                `cbor:"5,keyasint,omitempty"`
}

// wEntry is an entry encoded: one field per kind, each a type of the
// kind's file that decodes itself (see kinds).
type wEntry struct {
	Reg  wRegister `cbor:"0,keyasint,omitempty"`
	Ctr  wCounter  `cbor:"1,keyasint,omitempty"`
	Set  wSet      `cbor:"2,keyasint,omitempty"`
	Map  wMap      `cbor:"3,keyasint,omitempty"`
	Text *wSeqSlot `cbor:"4,keyasint,omitempty"`
	List *wSeqSlot `cbor:"5,keyasint,omitempty"`
}

// wireKind is the encoded content of one kind at one key.
type wireKind interface {
	// decode adds the content to the state at's entry, checking it.
	decode(at *decodeAt) error
}

// kinds returns we's fields in the order they are decoded in: an entry's
// own content before the map below it.
func (we *wEntry) kinds() [numKinds]wireKind {
	return [...]wireKind{&we.Reg, &we.Ctr, &we.Set, wSeqField[rune]{we.Text}, wSeqField[json.RawMessage]{we.List}, &we.Map}
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
	w.Root = s.root.encodeKids(index, origin)
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
	for r, ivs := range cc.clouds() {
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

// Decode decodes a state written by Encode.
func Decode(b []byte, lim Limits) (*State, error) { return decode(b, "", lim) }

// DecodeDelta decodes a delta written by EncodeDelta or
// EncodeDeltaCompact for origin.
func DecodeDelta(b []byte, origin ReplicaID, lim Limits) (*State, error) {
	if origin == "" {
		return nil, fmt.Errorf("%w: empty origin", ErrMalformed)
	}
	if IsCompactDelta(b) {
		if lim.MaxBytes <= 0 {
			lim = DefaultLimits()
		}
		if len(b) > lim.MaxBytes {
			return nil, fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(b), lim.MaxBytes)
		}
		return decodeCompact(b, origin, lim)
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
	if s, ok := decodeFast(b, origin, lim); ok {
		return s, nil
	}
	return decodeReference(b, origin, lim, dm)
}

// decodeReference is the decoder of every encoding, through the CBOR
// library (decodeFast only takes a shortcut for the commonest).
func decodeReference(b []byte, origin ReplicaID, lim Limits, dm cbor.DecMode) (*State, error) {
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
	if n := len(w.Root); n > 1 {
		// Room for the top-level keys, and for a dot each: a big state or
		// delta would otherwise grow both maps step by step.
		s.root.kids.grow(n)
		s.idx.grow(n)
	}
	budget := lim.MaxBytes // what the document's compressed sequence columns may inflate to
	if origin == "" {
		s.notes().decodingState = true
	}
	err := decodeMap(s, nil, w.Root, rep, 0, lim, &budget)
	if s.side != nil {
		s.side.decodingState = false
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// decodeAt is where a decoder is: the state it fills, the replica table,
// the path of the entry being decoded and, once created, the entry.
type decodeAt struct {
	s     *State
	rep   func(uint64) (ReplicaID, error)
	path  []string
	depth int // of the map holding the entry
	lim   Limits
	// budget is what the compressed columns of the document's sequences
	// may still inflate to, in bytes.
	budget *int
	e      *entry
}

// entry returns the entry being decoded, creating it (and the maps above
// it) on first use.
func (at *decodeAt) entry() *entry {
	if at.e == nil {
		at.e = at.s.ensure(at.path)
	}
	return at.e
}

// dot returns the dot of replica index ri and counter c, checking that it
// is new to the state and inside its causal context.
func (at *decodeAt) dot(ri, c uint64) (Dot, error) {
	r, err := at.rep(ri)
	if err != nil {
		return Dot{}, err
	}
	d := Dot{r, c}
	if c == 0 {
		return d, fmt.Errorf("%w: zero counter", ErrMalformed)
	}
	if at.s.idx.has(d) {
		return d, fmt.Errorf("%w: dot %s:%d appears twice", ErrMalformed, r, c)
	}
	if !at.s.cc.Contains(d) {
		return d, fmt.Errorf("%w: dot %s:%d outside the causal context", ErrMalformed, r, c)
	}
	return d, nil
}
