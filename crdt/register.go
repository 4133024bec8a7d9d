package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// The register kind: a multi-value register of JSON values.

// RegisterValue is one of the values a register holds.
type RegisterValue struct {
	Value   json.RawMessage
	HLC     HLC
	Replica ReplicaID
}

type regDot struct {
	dot Dot
	hlc HLC
	val []byte // compact JSON: never empty
}

// register is the register kind's store: the values written concurrently
// at a key, each with its dot (see values). Most registers hold one
// value: it is kept inline, in one, so that a register holding one value
// is one allocation, of 64 bytes; two or more are all in more. It must
// not be copied once in use (values may return one).
type register struct {
	one  [1]regDot // one[0].val is empty when one is unused
	more *[]regDot // nil unless the register holds two values or more
}

var _ kindStore = (*register)(nil)

// regEntry is an entry allocated together with its register, for a key
// that a register write creates.
type regEntry struct {
	e entry
	r register
}

// init readies an empty register in place: the zero register is one, so
// there is nothing to do; it returns r, for the callers that make
// registers in slabs.
func (r *register) init() *register { return r }

// values returns the register's values. The slice is the register's: the
// caller must not modify it, nor keep it past a change of the register.
func (r *register) values() []regDot {
	switch {
	case r.more != nil:
		return *r.more
	case len(r.one[0].val) > 0:
		return r.one[:]
	}
	return nil
}

// add adds value x.
func (r *register) add(x regDot) {
	switch {
	case r.more != nil:
		*r.more = append(*r.more, x)
	case len(r.one[0].val) == 0:
		r.one[0] = x
	default:
		vs := []regDot{r.one[0], x}
		r.more, r.one[0] = &vs, regDot{}
	}
}

// clear removes every value.
func (r *register) clear() { r.one[0], r.more = regDot{}, nil }

// register returns e's register, or nil.
func (e *entry) register() *register {
	r, _ := e.at(KindRegister).(*register)
	return r
}

func (s *State) insertReg(e *entry, r regDot) {
	reg := e.register()
	if reg == nil {
		reg = new(register).init()
		e.setAt(KindRegister, reg)
	}
	reg.add(r)
	s.idx.put(r.dot, loc{e: e, kind: KindRegister})
}

func (r *register) empty() bool { return r.more == nil && len(r.one[0].val) == 0 }

func (r *register) visible() bool { return !r.empty() }

// covered: every write at or below the key replaces its values, except a
// set element's removal.
func (r *register) covered(out []Dot, op Op, _ ReplicaID, _ bool) []Dot {
	if op.Kind == OpRemove {
		return out
	}
	for _, x := range r.values() {
		out = append(out, x.dot)
	}
	return out
}

func (r *register) find(d Dot) regDot {
	for _, x := range r.values() {
		if x.dot == d {
			return x
		}
	}
	panic("crdt: register dot not in its entry")
}

func (r *register) write(d Dot, _ string) write {
	w := write{kind: KindRegister}
	for _, x := range r.values() {
		if x.dot == d {
			w.hlc, w.val = x.hlc, x.val
		}
	}
	return w
}

func (r *register) remove(d Dot, _ string) {
	vs := r.values()
	for i := range vs {
		if vs[i].dot != d {
			continue
		}
		switch {
		case r.more == nil:
			r.one[0] = regDot{}
		case len(vs) == 2: // back to one, inline
			r.one[0], r.more = vs[1-i], nil
		default:
			*r.more = append(vs[:i], vs[i+1:]...)
		}
		return
	}
}

// mergeInto adds the values s has not seen. A held dot is normally the
// same write; when it is not (yields), src's write goes in first, so that
// removing ours cannot prune de.
func (r *register) mergeInto(s *State, de *entry, m merger) bool {
	added := false
	for _, x := range r.values() {
		if s.unseen(x.dot) {
			s.insertReg(de, x)
			added = true
		} else if old, ok := s.yields(x.dot, de, write{kind: KindRegister, hlc: x.hlc, val: x.val}, m); ok {
			s.insertReg(de, x)
			s.removeAt(old, x.dot)
			added = true
		}
	}
	return added
}

// regWins reports whether a beats b: higher HLC, then higher replica, then
// higher counter. Every replica computes the same winner.
func regWins(a, b regDot) bool {
	if a.hlc != b.hlc {
		return a.hlc > b.hlc
	}
	if a.dot.Replica != b.dot.Replica {
		return a.dot.Replica > b.dot.Replica
	}
	return a.dot.Counter > b.dot.Counter
}

func (r *register) winner() regDot {
	vs := r.values()
	w := vs[0]
	for _, x := range vs[1:] {
		if regWins(x, w) {
			w = x
		}
	}
	return w
}

// writeJSON writes the winning value.
func (r *register) writeJSON(buf *bytes.Buffer) { buf.Write(r.winner().val) }

// conflicts returns every value, winner first.
func (r *register) conflicts() []RegisterValue {
	regs := append([]regDot(nil), r.values()...)
	sort.Slice(regs, func(i, j int) bool { return regWins(regs[i], regs[j]) })
	out := make([]RegisterValue, len(regs))
	for i, x := range regs {
		out[i] = RegisterValue{Value: append(json.RawMessage(nil), x.val...), HLC: x.hlc, Replica: x.dot.Replica}
	}
	return out
}

// wRegister is a register encoded: its values sorted by dot.
type wRegister []wReg

type wReg struct {
	_ struct{} `cbor:",toarray"`
	R uint64
	C uint64
	H uint64
	V []byte
}

func (r *register) encode(we *wEntry, index map[ReplicaID]uint64, _ ReplicaID) {
	for _, x := range r.values() {
		we.Reg = append(we.Reg, wReg{R: index[x.dot.Replica], C: x.dot.Counter, H: uint64(x.hlc), V: x.val})
	}
	sort.Slice(we.Reg, func(i, j int) bool {
		a, b := we.Reg[i], we.Reg[j]
		return a.R < b.R || a.R == b.R && a.C < b.C
	})
}

func (w *wRegister) decode(at *decodeAt) error {
	for _, r := range *w {
		d, err := at.dot(r.R, r.C)
		if err != nil {
			return err
		}
		if !json.Valid(r.V) {
			return fmt.Errorf("%w: register value is not JSON", ErrMalformed)
		}
		if err := CheckJSONText(r.V); err != nil {
			return fmt.Errorf("%w: register value: %w", ErrMalformed, err)
		}
		// r.V is the decoder's own copy, not part of the input: kept as
		// it is.
		at.s.insertReg(at.entry(), regDot{dot: d, hlc: HLC(r.H), val: r.V})
	}
	return nil
}

func (r *register) splitCost(sp *splitter, in *entry, d Dot, _ string) (int, bool) {
	n := 0
	if in != nil && in.register() != nil {
		n = len(in.register().values())
	}
	x := r.find(d)
	cost, ok := sp.slot(n)
	return cost + 1 + sp.replicaLen(d) + uintLen(d.Counter) + uintLen(uint64(x.hlc)) + strLen(len(x.val)), ok
}

func (r *register) splitAdd(p *State, in *entry, d Dot, _ string) { p.insertReg(in, r.find(d)) }
