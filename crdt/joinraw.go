package crdt

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Joining deltas without decoding their content: the join of one author's
// consecutive deltas that neither overwrite nor delete one another's writes
// is their union, so their encoded entries can be carried over as they are.

// wDeltaShallow is a delta's encoding with the entries left encoded.
type wDeltaShallow struct {
	V      uint64                     `cbor:"0,keyasint"`
	Origin bool                       `cbor:"1,keyasint,omitempty"`
	Table  []string                   `cbor:"2,keyasint,omitempty"`
	VV     map[uint64]uint64          `cbor:"3,keyasint,omitempty"`
	Cloud  map[uint64][]uint64        `cbor:"4,keyasint,omitempty"`
	Root   map[string]cbor.RawMessage `cbor:"5,keyasint,omitempty"`
}

// JoinDisjointDeltas returns what EncodeDelta returns for the join
// (JoinDelta, in order) of the deltas of origin encoded in payloads, when
// it can be had without decoding their entries: every delta names no
// replica but origin, its causal context is one interval of origin's
// counters above every counter of the deltas before it (so none covers a
// write of another: nothing is overwritten or deleted across them), no
// top-level key is in two of them, and every entry holds a register and
// nothing else. ok is false otherwise, and for an encoding that does not
// decode: the caller then joins the decoded deltas. The entries are not
// checked beyond their shape: payloads must be deltas this node encoded
// (its own log), not a peer's.
func JoinDisjointDeltas(origin ReplicaID, payloads [][]byte, lim Limits) (enc []byte, ok bool) {
	if origin == "" || len(payloads) == 0 {
		return nil, false
	}
	if enc, ok := joinDisjointFast(origin, payloads, lim); ok {
		return enc, true
	}
	return joinDisjointReference(origin, payloads, lim)
}

// joinDisjointReference is JoinDisjointDeltas through the CBOR library
// (joinDisjointFast only takes a shortcut for deltas in canonical form).
func joinDisjointReference(origin ReplicaID, payloads [][]byte, lim Limits) (enc []byte, ok bool) {
	dm := deltaDec
	if lim != DeltaLimits() {
		var err error
		if dm, err = decModes.Get(lim); err != nil {
			return nil, false
		}
	}
	cc := NewCausalContext()
	var root map[string]cbor.RawMessage
	var top uint64 // the highest counter of the deltas so far
	for i, b := range payloads {
		if lim.MaxBytes > 0 && len(b) > lim.MaxBytes {
			return nil, false
		}
		var w wDeltaShallow
		if err := dm.Unmarshal(b, &w); err != nil {
			return nil, false
		}
		lo, hi, single := w.interval()
		if w.V != FormatVersion || !w.Origin || len(w.Table) != 0 || !single || (i > 0 && lo <= top) {
			return nil, false
		}
		for k, e := range w.Root {
			if len(e) < 3 || e[0] != 0xa1 || e[1] != 0x00 || e[2] == 0x80 {
				return nil, false // not a register alone (a map of one pair, key 0) with values
			}
			if root != nil {
				if _, dup := root[k]; dup {
					return nil, false
				}
				root[k] = e
			}
		}
		if root == nil {
			root = w.Root
		}
		cc.AddRange(origin, lo, hi)
		top = hi
	}
	out := wDeltaShallow{V: FormatVersion, Origin: true, Root: root}
	out.VV, out.Cloud = encodeContext(cc, map[ReplicaID]uint64{origin: 0})
	b, err := encMode.Marshal(&out)
	if err != nil {
		panic(fmt.Sprintf("crdt: encode: %v", err)) // only plain types and raw entries that decoded: cannot fail
	}
	return b, true
}

// interval returns the counters of origin (index 0) that w's causal context
// holds when they are one non-empty interval and it holds nothing else.
func (w *wDeltaShallow) interval() (lo, hi uint64, ok bool) {
	switch {
	case len(w.VV)+len(w.Cloud) != 1:
		return 0, 0, false
	case len(w.VV) == 1:
		n, ok := w.VV[0]
		return 1, n, ok && n > 0 && n <= MaxCounter
	}
	flat, ok := w.Cloud[0]
	if !ok || len(flat) != 2 || flat[0] == 0 || flat[0] > flat[1] || flat[1] > MaxCounter {
		return 0, 0, false
	}
	return flat[0], flat[1], true
}
