package crdt

import "fmt"

// Encoding of the sequences of a document (see codec.go): an entry's key
// 4 holds its text, key 5 its list, each
//
//	slot = {0: [ri, counter, ...] creation dots,
//	        1: bytes (EncodeSeq: the whole sequence, in a state) |
//	        2: bytes (EncodeSeqDelta: a change, in a delta),
//	        3: ri (the implicit origin of key 2's delta; absent: 0)}
//
// A decoder checks that every dot a sequence holds is in the document's
// causal context, as it does for the other kinds.
type wSeqSlot struct {
	Made   []uint64 `cbor:"0,keyasint,omitempty"`
	State  []byte   `cbor:"1,keyasint,omitempty"`
	Delta  []byte   `cbor:"2,keyasint,omitempty"`
	Origin uint64   `cbor:"3,keyasint,omitempty"`
}

func encodeSlot[V SeqValue](sl *seqSlot[V], index map[ReplicaID]uint64, origin ReplicaID) *wSeqSlot {
	if sl.empty() {
		return nil
	}
	w := &wSeqSlot{}
	pairs := make([][2]uint64, len(sl.made))
	for i, d := range sl.made {
		pairs[i] = [2]uint64{index[d.Replica], d.Counter}
	}
	sortPairs(pairs)
	for _, p := range pairs {
		w.Made = append(w.Made, p[0], p[1])
	}
	switch {
	case sl.seq != nil && sl.delta == nil && origin == "":
		if sl.seq.Items() > 0 || sl.seq.delcc.dotCount() > 0 {
			// (Delete dots alone once every element was collected: they
			// tell a receiver which elements are deleted.)
			w.State = EncodeSeq(sl.seq)
		}
		if h := sl.seq.held(); !h.IsEmpty() {
			// Held-back changes travel with the state: its context claims
			// their dots.
			o := h.someReplica()
			w.Origin, w.Delta = index[o], EncodeSeqDelta(h, o)
		}
	default:
		c := sl.content()
		if c.IsEmpty() {
			break
		}
		o := origin
		if o == "" {
			o = c.someReplica()
			w.Origin = index[o]
		}
		w.Delta = EncodeSeqDelta(c, o)
	}
	if len(w.Made) == 0 && w.State == nil && w.Delta == nil {
		return nil
	}
	return w
}

// someReplica returns a replica whose dots d carries.
func (d *SeqDelta[V]) someReplica() ReplicaID {
	switch {
	case len(d.runs) > 0:
		return d.runs[0].id.Replica
	case len(d.dels) > 0 && d.dels[0].by.Counter != 0:
		return d.dels[0].by.Replica
	}
	return d.Context().replicas()[0]
}

func sortPairs(pairs [][2]uint64) {
	for i := 1; i < len(pairs); i++ {
		for j := i; j > 0 && (pairs[j][0] < pairs[j-1][0] || pairs[j][0] == pairs[j-1][0] && pairs[j][1] < pairs[j-1][1]); j-- {
			pairs[j], pairs[j-1] = pairs[j-1], pairs[j]
		}
	}
}

// wSeqField is an entry's text (V rune) or list field, as decoded. The
// compressed columns of all the document's sequences together inflate to
// at most *at.budget bytes.
type wSeqField[V SeqValue] struct{ w *wSeqSlot }

func (f wSeqField[V]) decode(at *decodeAt) error {
	if f.w == nil {
		return nil
	}
	k := seqKindOf[V]()
	if err := decodeSlot(at.s, at.entry, k, seqSlotOf[V], f.w, at.rep, at.dot, at.lim, at.budget); err != nil {
		return fmt.Errorf("%s: %w at %q", k, err, at.path[len(at.path)-1])
	}
	return nil
}

func decodeSlot[V SeqValue](s *State, ent func() *entry, k Kind, slot func(*entry) *seqSlot[V], w *wSeqSlot, rep func(uint64) (ReplicaID, error), dot func(ri, c uint64) (Dot, error), lim Limits, budget *int) error {
	if len(w.Made)%2 != 0 {
		return fmt.Errorf("%w: odd creation dots", ErrMalformed)
	}
	if len(w.Made) == 0 && len(w.State) == 0 && len(w.Delta) == 0 {
		return fmt.Errorf("%w: an empty sequence slot", ErrMalformed)
	}
	e := ent()
	for j := 0; j < len(w.Made); j += 2 {
		d, err := dot(w.Made[j], w.Made[j+1])
		if err != nil {
			return err
		}
		s.insertMade(e, k, d)
	}
	sl := slot(e)
	if len(w.State) > 0 {
		seq, err := decodeSeq[V](w.State, lim, budget)
		if err != nil {
			return err
		}
		if !s.cc.covers(seq.Context()) {
			return fmt.Errorf("%w: sequence dots outside the causal context", ErrMalformed)
		}
		sl.seq = seq
	}
	if len(w.Delta) > 0 {
		o, err := rep(w.Origin)
		if err != nil {
			return err
		}
		d, err := DecodeSeqDelta[V](w.Delta, o, lim)
		if err != nil {
			return err
		}
		if !s.cc.covers(d.Context()) {
			return fmt.Errorf("%w: sequence dots outside the causal context", ErrMalformed)
		}
		if sl.seq == nil && s.side != nil && s.side.decodingState {
			sl.seq = NewSeq[V](DefaultSeqConfig()) // a whole state holds sequences, not changes
		}
		if sl.seq != nil {
			// The changes the state held back (keys 1 and 2): held again,
			// whatever their number (the state's context claims them).
			sl.seq.unbounded = true
			sl.seq.Merge(d)
			sl.seq.unbounded = false
		} else {
			sl.delta = d
		}
	}
	return nil
}

// covers reports whether c holds every dot of o.
func (c *CausalContext) covers(o *CausalContext) bool {
	for r, n := range o.vv {
		if n > 0 && !c.containsRange(r, 1, n) {
			return false
		}
	}
	for r, ivs := range o.clouds() {
		for _, iv := range ivs {
			if !c.containsRange(r, iv.lo, iv.hi) {
				return false
			}
		}
	}
	return true
}

func (c *CausalContext) containsRange(r ReplicaID, lo, hi uint64) bool {
	if hi <= c.vv[r] {
		return true
	}
	lo = max(lo, c.vv[r]+1)
	for _, iv := range c.cloudOf(r) {
		if iv.lo <= lo && iv.hi >= hi {
			return true
		}
	}
	return false
}
