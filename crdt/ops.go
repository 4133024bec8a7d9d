package crdt

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// OpKind names a mutation.
type OpKind uint8

const (
	// OpSet writes a JSON value into the register at Path.
	OpSet OpKind = iota + 1
	// OpDelete removes whatever Path holds (observed-remove: concurrent
	// updates inside it survive).
	OpDelete
	// OpInc adds By (may be negative) to the counter at Path.
	OpInc
	// OpAdd adds the JSON scalar Value to the set at Path.
	OpAdd
	// OpRemove removes the JSON scalar Value from the set at Path.
	OpRemove
	// OpSplice deletes Del elements at Index of the text or list at Path,
	// then inserts Text (a text's code points) or Values (a list's JSON
	// values) at Index; see Splice.
	OpSplice
)

func (k OpKind) String() string {
	switch k {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpInc:
		return "inc"
	case OpAdd:
		return "add"
	case OpRemove:
		return "remove"
	case OpSplice:
		return "splice"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is one mutation of a document.
type Op struct {
	Kind  OpKind
	Path  []string
	Value json.RawMessage // OpSet: any JSON; OpAdd/OpRemove: a JSON scalar
	By    int64           // OpInc

	// OpSplice: at Index (code points of a text, elements of a list),
	// delete Del, then insert Text or Values. Seq is the kind spliced:
	// KindText, KindList, or KindNone for a pure delete in whichever
	// sequence Path holds.
	Index, Del int
	Text       string
	Values     []json.RawMessage
	Seq        Kind
}

// Set, Delete, Inc, Add and Remove build ops.
func Set(path []string, v json.RawMessage) Op    { return Op{Kind: OpSet, Path: path, Value: v} }
func Delete(path []string) Op                    { return Op{Kind: OpDelete, Path: path} }
func Inc(path []string, by int64) Op             { return Op{Kind: OpInc, Path: path, By: by} }
func Add(path []string, v json.RawMessage) Op    { return Op{Kind: OpAdd, Path: path, Value: v} }
func Remove(path []string, v json.RawMessage) Op { return Op{Kind: OpRemove, Path: path, Value: v} }

// Apply applies ops as one transaction by replica at time ts and returns the
// delta: a State holding exactly what the ops wrote and the dots they
// covered. Either every op is applied or, on error, none is; the error wraps
// one of ErrTypeConflict, ErrInvalidPath, ErrInvalidValue, ErrInvalidOp and
// names the offending op.
func (s *State) Apply(replica ReplicaID, ts HLC, ops ...Op) (*State, error) {
	acc := newDelta(ops)
	if err := s.ApplyTo(acc, replica, ts, ops...); err != nil {
		return nil, err
	}
	return acc, nil
}

// newDelta returns an empty state to hold the delta of ops. For a set of
// a top-level key, the most common transaction, the key's entry and
// register are made with it, in one allocation.
func newDelta(ops []Op) *State {
	if len(ops) != 1 || ops[0].Kind != OpSet || len(ops[0].Path) != 1 {
		return New()
	}
	a := &struct {
		s    State
		cc   CausalContext
		root mapNode
		reg  regEntry
	}{}
	a.s = State{cc: &a.cc, root: &a.root}
	k := ops[0].Path[0]
	a.reg.e = entry{parent: &a.root, key: k}
	a.reg.e.setAt(KindRegister, a.reg.r.init())
	a.root.kids.put(k, &a.reg.e)
	return &a.s
}

// ApplyTo is Apply that joins the transaction's delta into acc instead of
// returning it: acc ends up as acc ⊔ delta. A writer batching several
// transactions into one delta passes the same acc each time, which costs
// no intermediate state. acc must only ever receive deltas of s.
func (s *State) ApplyTo(acc *State, replica ReplicaID, ts HLC, ops ...Op) error {
	var one [1]Op // a transaction of one op, the usual, validates without allocating
	norm, at, err := s.validate(ops, one[:0])
	if err != nil {
		return err
	}
	for _, op := range norm {
		s.applyOne(replica, ts, op, acc, at)
		at = found{}
	}
	return nil
}

// found is an entry that validation looked up, so that applying the op
// need not look it up again: e (nil when absent) is at the path of the
// transaction's op when ok. Only a one-op transaction has one (a later op
// of a longer one sees what the earlier ones changed).
type found struct {
	e  *entry
	ok bool
}

// applyOne applies one validated op to s and joins its delta into d. It
// mutates both directly (the fast path of Merge for a delta minted here).
// at, when ok, is the entry at op.Path.
func (s *State) applyOne(replica ReplicaID, ts HLC, op Op, d *State, at found) {
	// The dots the op observes and so covers. A write also covers the
	// non-map stores it observed along its path: it resolves, in favour of
	// maps, type conflicts above it.
	side := s.notes()
	covered := side.covered[:0]
	if op.Kind != OpDelete && op.Kind != OpRemove && len(op.Path) > 1 {
		n := s.root
		for _, k := range op.Path[:len(op.Path)-1] {
			e := n.kids.get(k)
			if e == nil {
				break
			}
			covered = e.covered(covered, op, replica, true)
			s.deleteSeqsAt(replica, e, d)
			n = e.sub
			if n == nil {
				break
			}
		}
	}
	e := at.e
	if !at.ok {
		e = s.lookup(op.Path)
	}
	// covered[gone:gone+n] are dots that leave s before the loop below
	// (a set's old values), so that it need not look them up there.
	gone, n := len(covered), 0
	if e != nil {
		covered = e.covered(covered, op, replica, false)
	}
	var dot Dot
	var newCtr ctrDot
	if op.Kind != OpDelete && op.Kind != OpRemove && op.Kind != OpSplice {
		dot = Dot{replica, s.cc.Max(replica) + 1}
	}
	switch op.Kind {
	case OpSplice:
		target := e
		if target == nil {
			target = s.ensure(op.Path)
		}
		s.applySplice(replica, target, op, d)
	case OpSet:
		d.insertReg(d.ensureReg(op.Path), regDot{dot: dot, hlc: ts, val: op.Value})
	case OpInc:
		var old int64
		if e != nil && e.counter() != nil {
			old = e.counter().contribution(replica)
		}
		newCtr = ctrDot{dot: dot, n: old + op.By}
		d.insertCtr(d.ensure(op.Path), newCtr)
	case OpAdd:
		d.insertElem(d.ensure(op.Path), string(op.Value), dot)
	case OpDelete:
		if e != nil {
			s.deleteSeqs(replica, e, d)
		}
	}
	// Apply to s: add the op's dot first (so the entry it lands in is not
	// pruned and re-created), then drop what the op covered. Every covered
	// dot is already in s's context.
	if op.Kind != OpDelete && op.Kind != OpRemove && op.Kind != OpSplice {
		s.cc.Add(dot)
		target := e
		if target == nil {
			if op.Kind == OpSet {
				target = s.ensureReg(op.Path)
			} else {
				target = s.ensure(op.Path)
			}
		}
		switch op.Kind {
		case OpSet:
			if reg := target.register(); reg != nil {
				// The set covers every value the register holds: they
				// leave here, so that the new one takes their place
				// rather than growing the register (the loop below
				// finds them gone from s).
				// register.covered put them first of e's in covered.
				vs := reg.values()
				for _, x := range vs {
					s.idx.del(x.dot)
				}
				if target == e {
					n = len(vs)
				}
				reg.clear()
			}
			s.insertReg(target, regDot{dot: dot, hlc: ts, val: op.Value})
		case OpInc:
			s.insertCtr(target, newCtr)
		case OpAdd:
			s.insertElem(target, string(op.Value), dot)
		}
	}
	if len(covered) > 16 {
		// In order, each dot extends the delta's context at its end; in map
		// order a big delete would insert into the middle every time.
		slices.SortFunc(covered, compareDots)
		n = 0 // s.removeDot finds them gone
	}
	for i, c := range covered {
		d.cc.Add(c)
		d.removeDot(c) // an earlier op of the same batch may hold it
		if i < gone || i >= gone+n {
			s.removeDot(c)
		}
	}
	if dot.Counter != 0 {
		// After the covered dots, which are older: the delta's context
		// then extends at its end.
		d.cc.Add(dot)
	}
	if cap(covered) <= 256 {
		side.covered = covered[:0]
	}
}

func compareDots(a, b Dot) int {
	if c := strings.Compare(string(a.Replica), string(b.Replica)); c != 0 {
		return c
	}
	return cmp.Compare(a.Counter, b.Counter)
}

// validate checks ops against the current state and against each other, in
// order, and returns them with values in compact form, appended to out,
// and the entry it found at the op's path for a one-op transaction.
func (s *State) validate(ops []Op, out []Op) ([]Op, found, error) {
	var at found
	if len(ops) == 0 {
		return nil, at, fmt.Errorf("%w: empty transaction", ErrInvalidOp)
	}
	ov := overlay{s: s}
	out = slices.Grow(out[:0], len(ops))
	for i, op := range ops {
		fail := func(err error, format string, a ...any) ([]Op, found, error) {
			return nil, found{}, fmt.Errorf("%w: op %d (%s %q): %w", err, i, op.Kind, strings.Join(op.Path, "."), fmt.Errorf(format, a...))
		}
		if len(op.Path) == 0 {
			return fail(ErrInvalidPath, "path is empty")
		}
		if len(op.Path) > MaxPathDepth {
			return fail(ErrInvalidPath, "path deeper than %d", MaxPathDepth)
		}
		for _, k := range op.Path {
			if err := checkKey(k); err != nil {
				return fail(ErrInvalidPath, "%w", err)
			}
		}
		var want Kind
		switch op.Kind {
		case OpSet:
			v, err := compactJSON(op.Value)
			if err != nil {
				return fail(ErrInvalidValue, "%w", err)
			}
			op.Value, want = v, KindRegister
		case OpInc:
			want = KindCounter
		case OpAdd, OpRemove:
			v, err := compactScalar(op.Value)
			if err != nil {
				return fail(ErrInvalidValue, "%w", err)
			}
			op.Value, want = v, KindSet
		case OpDelete:
		case OpSplice:
			var err error
			if op, want, err = ov.splice(op); err != nil {
				return fail(err, "%w", err)
			}
		default:
			return fail(ErrInvalidOp, "unknown op")
		}
		if want != KindNone {
			for j := 1; j < len(op.Path); j++ {
				if k := ov.kind(op.Path[:j]); k != KindNone && k != KindMap {
					return fail(ErrTypeConflict, "%s holds a %s, not a map", strings.Join(op.Path[:j], "."), k)
				}
			}
			var k Kind
			if len(ops) == 1 {
				at = found{e: s.lookup(op.Path), ok: true}
				k = at.e.kind()
			} else {
				k = ov.kind(op.Path)
			}
			if k != KindNone && k != want {
				if op.Kind == OpRemove {
					return fail(ErrTypeConflict, "key holds a %s, not a set", k)
				}
				return fail(ErrTypeConflict, "key holds a %s, not a %s", k, want)
			}
		}
		if i < len(ops)-1 { // later ops of the transaction see this one
			switch op.Kind {
			case OpDelete:
				ov.del(op.Path)
			case OpRemove:
			case OpSplice:
				ov.put(op.Path, want)
				ov.setLen(op.Path, ov.seqLen(op.Path)-op.Del+op.inserted())
			default:
				ov.put(op.Path, want)
			}
		}
		out = append(out, op)
	}
	return out, at, nil
}

// overlay tracks the kinds that earlier ops of a transaction give to paths.
type overlay struct {
	s       *State
	kinds   map[string]Kind     // joined path → kind written in this transaction
	deleted map[string]struct{} // joined paths deleted in this transaction
	lens    map[string]int      // joined path → sequence length after this transaction's splices
}

func joinPath(p []string) string { return strings.Join(p, "\x00") }

func (o *overlay) kind(p []string) Kind {
	if len(o.kinds) == 0 && len(o.deleted) == 0 {
		return o.s.lookup(p).kind()
	}
	if k, ok := o.kinds[joinPath(p)]; ok {
		return k
	}
	for j := 1; j <= len(p); j++ {
		if _, ok := o.deleted[joinPath(p[:j])]; ok {
			return KindNone
		}
	}
	return o.s.lookup(p).kind()
}

func (o *overlay) put(p []string, k Kind) {
	if o.kinds == nil {
		o.kinds = map[string]Kind{}
	}
	for j := 1; j < len(p); j++ {
		o.kinds[joinPath(p[:j])] = KindMap
	}
	o.kinds[joinPath(p)] = k
}

func (o *overlay) del(p []string) {
	jp := joinPath(p)
	if o.deleted == nil {
		o.deleted = map[string]struct{}{}
	}
	for k := range o.kinds {
		if k == jp || strings.HasPrefix(k, jp+"\x00") {
			delete(o.kinds, k)
		}
	}
	for k := range o.lens {
		if k == jp || strings.HasPrefix(k, jp+"\x00") {
			o.lens[k] = 0
		}
	}
	o.deleted[jp] = struct{}{}
}
