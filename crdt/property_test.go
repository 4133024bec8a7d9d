package crdt

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"

	"pgregory.net/rapid"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// At least 1000 cases per property unless the caller asked otherwise.
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == "100" {
		_ = f.Value.Set("1000")
	}
	os.Exit(m.Run())
}

var keys = []string{"a", "b", "c"}

// genOp draws a random op over a small key space so that ops collide.
func genOp(t *rapid.T) Op {
	depth := rapid.IntRange(1, 2).Draw(t, "depth")
	path := make([]string, depth)
	for i := range path {
		path[i] = rapid.SampledFrom(keys).Draw(t, "key")
	}
	elem := js(strconv.Quote(rapid.SampledFrom([]string{"x", "y", "z"}).Draw(t, "elem")))
	switch rapid.IntRange(0, 5).Draw(t, "kind") {
	case 0:
		return Set(path, js(strconv.Itoa(rapid.IntRange(0, 9).Draw(t, "val"))))
	case 1:
		return Delete(path)
	case 2:
		return Inc(path, int64(rapid.IntRange(-3, 3).Draw(t, "by")))
	case 3:
		return Add(path, elem)
	case 4:
		return Remove(path, elem)
	default:
		return Set(path, js(`{"obj":true}`))
	}
}

// genStates builds n replicas that did random ops and exchanged some deltas.
func genStates(t *rapid.T, n int) []*State {
	reps := make([]*State, n)
	for i := range reps {
		reps[i] = New()
	}
	var ts HLC
	steps := rapid.IntRange(0, 25).Draw(t, "steps")
	for i := 0; i < steps; i++ {
		ts++
		r := rapid.IntRange(0, n-1).Draw(t, "replica")
		d, err := reps[r].Apply(ReplicaID(fmt.Sprintf("r%d", r)), ts, genOp(t))
		if err != nil {
			continue
		}
		for j := range reps {
			if j != r && rapid.Bool().Draw(t, "deliver") {
				reps[j].Merge(d)
			}
		}
	}
	return reps
}

func join(a, b *State) *State {
	out := a.Clone()
	out.Merge(b)
	return out
}

func eqState(t *rapid.T, what string, a, b *State) {
	if ea, eb := Encode(a), Encode(b); !bytes.Equal(ea, eb) {
		t.Fatalf("%s: states differ:\n%s\n%s", what, a.JSON(), b.JSON())
	}
}

func TestMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genStates(t, 3)
		a, b, c := s[0], s[1], s[2]
		eqState(t, "commutative", join(a, b), join(b, a))
		eqState(t, "associative", join(join(a, b), c), join(a, join(b, c)))
		eqState(t, "idempotent", join(a, a), a)
		ab := join(a, b)
		eqState(t, "absorbing", join(ab, a), ab)
	})
}

func TestCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genStates(t, 2)[0]
		b := Encode(s)
		got, err := Decode(b, DefaultLimits())
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !bytes.Equal(Encode(got), b) || !bytes.Equal(got.JSON(), s.JSON()) {
			t.Fatal("round trip changed the state")
		}
		d, err := s.Apply("r9", 1<<20, genOp(t))
		if err != nil {
			return
		}
		db := EncodeDelta(d, "r9")
		got, err = DecodeDelta(db, "r9", DeltaLimits())
		if err != nil {
			t.Fatalf("decode delta: %v", err)
		}
		if !bytes.Equal(Encode(got), Encode(d)) {
			t.Fatal("delta round trip changed it")
		}
	})
}

// TestConvergence runs 3–5 replicas doing random ops, with deltas lost,
// duplicated and reordered; lost deltas are re-sent at the end.
func TestConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(3, 5).Draw(t, "replicas")
		reps := make([]*State, n)
		for i := range reps {
			reps[i] = New()
		}
		type msg struct {
			to    int
			delta []byte
			from  ReplicaID
		}
		var inflight []msg
		var sent [][]msg // per replica, everything it ever authored
		sent = make([][]msg, n)
		var ts HLC
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			switch rapid.IntRange(0, 3).Draw(t, "action") {
			case 0, 1: // local transaction of 1–3 ops
				ts++
				r := rapid.IntRange(0, n-1).Draw(t, "replica")
				var ops []Op
				for k := rapid.IntRange(1, 3).Draw(t, "ops"); k > 0; k-- {
					ops = append(ops, genOp(t))
				}
				id := ReplicaID(fmt.Sprintf("r%d", r))
				d, err := reps[r].Apply(id, ts, ops...)
				if err != nil {
					continue
				}
				b := EncodeDelta(d, id)
				for j := 0; j < n; j++ {
					if j != r {
						m := msg{j, b, id}
						sent[r] = append(sent[r], m)
						if !rapid.Bool().Draw(t, "lost") {
							inflight = append(inflight, m)
						}
					}
				}
			case 2: // deliver one, maybe duplicating it
				if len(inflight) == 0 {
					continue
				}
				k := rapid.IntRange(0, len(inflight)-1).Draw(t, "pick")
				m := inflight[k]
				if !rapid.Bool().Draw(t, "dup") {
					inflight = append(inflight[:k], inflight[k+1:]...)
				}
				deliver(t, reps[m.to], m.delta, m.from)
			case 3: // a replica relays its whole state to another
				a := rapid.IntRange(0, n-1).Draw(t, "from")
				b := rapid.IntRange(0, n-1).Draw(t, "to")
				st, err := Decode(Encode(reps[a]), DefaultLimits())
				if err != nil {
					t.Fatal(err)
				}
				reps[b].Merge(st)
			}
		}
		// Heal: re-send everything, in a random order.
		for _, ms := range sent {
			inflight = append(inflight, ms...)
		}
		perm := rapid.Permutation(inflight).Draw(t, "order")
		for _, m := range perm {
			deliver(t, reps[m.to], m.delta, m.from)
		}
		for i := 1; i < n; i++ {
			eqState(t, fmt.Sprintf("replica %d vs 0", i), reps[i], reps[0])
		}
		for i := range reps {
			if reps[i].cc.CloudSize() != 0 {
				t.Fatalf("replica %d kept a dot cloud after all deltas arrived", i)
			}
		}
	})
}

func deliver(t *rapid.T, s *State, b []byte, from ReplicaID) {
	d, err := DecodeDelta(b, from, DeltaLimits())
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	s.Merge(d)
}

// model is a plain sequential model of a document: nested Go maps holding
// json.RawMessage (register), int64 (counter), map[string]bool (set).
type model map[string]any

func (m model) kind(path []string) Kind {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(model)
		if !ok {
			return KindNone
		}
		if cur, ok = mm[k]; !ok {
			return KindNone
		}
	}
	switch cur.(type) {
	case model:
		return KindMap
	case int64:
		return KindCounter
	case map[string]bool:
		return KindSet
	}
	return KindRegister
}

func (m model) parent(path []string, create bool) model {
	cur := m
	for _, k := range path[:len(path)-1] {
		next, ok := cur[k].(model)
		if !ok {
			if !create {
				return nil
			}
			next = model{}
			cur[k] = next
		}
		cur = next
	}
	return cur
}

// apply mirrors Apply for one op; it reports whether the op is legal.
func (m model) apply(op Op) bool {
	want := map[OpKind]Kind{OpSet: KindRegister, OpInc: KindCounter, OpAdd: KindSet, OpRemove: KindSet}[op.Kind]
	if op.Kind != OpDelete {
		for j := 1; j < len(op.Path); j++ {
			if k := m.kind(op.Path[:j]); k != KindNone && k != KindMap {
				return false
			}
		}
		if k := m.kind(op.Path); k != KindNone && k != want {
			return false
		}
	}
	last := op.Path[len(op.Path)-1]
	switch op.Kind {
	case OpSet:
		var buf bytes.Buffer
		_ = json.Compact(&buf, op.Value)
		m.parent(op.Path, true)[last] = json.RawMessage(buf.Bytes())
	case OpInc:
		p := m.parent(op.Path, true)
		n, _ := p[last].(int64)
		p[last] = n + op.By
	case OpAdd:
		p := m.parent(op.Path, true)
		set, _ := p[last].(map[string]bool)
		if set == nil {
			set = map[string]bool{}
			p[last] = set
		}
		set[string(op.Value)] = true
	case OpRemove:
		if p := m.parent(op.Path, false); p != nil {
			if set, ok := p[last].(map[string]bool); ok {
				delete(set, string(op.Value))
				if len(set) == 0 {
					delete(p, last)
				}
			}
		}
	case OpDelete:
		if p := m.parent(op.Path, false); p != nil {
			delete(p, last)
		}
	}
	m.prune()
	return true
}

// prune drops empty maps, which a document does not show.
func (m model) prune() {
	for k, v := range m {
		if mm, ok := v.(model); ok {
			mm.prune()
			if len(mm) == 0 {
				delete(m, k)
			}
		}
	}
}

func (m model) view() any {
	out := map[string]any{}
	for k, v := range m {
		switch v := v.(type) {
		case model:
			out[k] = v.view()
		case int64:
			out[k] = v
		case map[string]bool:
			var elems []string
			for e := range v {
				elems = append(elems, e)
			}
			sort.Slice(elems, func(i, j int) bool { return scalarLess(elems[i], elems[j]) })
			arr := make([]json.RawMessage, len(elems))
			for i, e := range elems {
				arr[i] = json.RawMessage(e)
			}
			out[k] = arr
		case json.RawMessage:
			out[k] = v
		}
	}
	return out
}

// TestSequentialModel: with no concurrency a document behaves like plain Go
// maps, ints and sets — including which ops are refused.
func TestSequentialModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := New()
		m := model{}
		other := New() // receives every delta, must match too
		steps := rapid.IntRange(1, 50).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			op := genOp(t)
			ok := m.apply(op)
			d, err := s.Apply("solo", HLC(i+1), op)
			if ok != (err == nil) {
				t.Fatalf("op %v: model legal=%v, state err=%v", op, ok, err)
			}
			if err == nil {
				other.Merge(d)
			}
			want, _ := json.Marshal(m.view())
			var got any
			_ = json.Unmarshal(s.JSON(), &got)
			gotb, _ := json.Marshal(got)
			if !bytes.Equal(gotb, want) {
				t.Fatalf("after %v: view %s, model %s", op, gotb, want)
			}
		}
		eqState(t, "delta receiver", other, s)
	})
}

// TestDeltaJoinEqualsSequence: the join of a transaction's ops equals the
// ops applied one by one.
func TestDeltaJoinEqualsSequence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		base := genStates(t, 1)[0]
		var ops []Op
		for k := rapid.IntRange(1, 5).Draw(t, "ops"); k > 0; k-- {
			ops = append(ops, genOp(t))
		}
		a, b := base.Clone(), base.Clone()
		if _, err := a.Apply("w", 99, ops...); err != nil {
			return
		}
		for _, op := range ops {
			if _, err := b.Apply("w", 99, op); err != nil {
				t.Fatalf("op %v refused alone but accepted in a transaction: %v", op, err)
			}
		}
		eqState(t, "txn vs sequence", a, b)
	})
}

// TestApplyToAccumulates: joining several transactions into one
// accumulator equals joining their separate deltas, and a replica that
// receives the accumulator ends where the writer is.
func TestApplyToAccumulates(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		base := genStates(t, 1)[0]
		w1, w2 := base.Clone(), base.Clone()
		acc, joined := New(), New()
		for k := rapid.IntRange(1, 6).Draw(t, "txns"); k > 0; k-- {
			op := genOp(t)
			if err := w1.ApplyTo(acc, "w", HLC(k), op); err != nil {
				continue
			}
			d, err := w2.Apply("w", HLC(k), op)
			if err != nil {
				t.Fatalf("op accepted by ApplyTo, refused by Apply: %v", err)
			}
			joined.Merge(d)
		}
		eqState(t, "writers", w1, w2)
		eqState(t, "accumulator vs joined deltas", acc, joined)
		r := base.Clone()
		r.Merge(acc)
		eqState(t, "receiver", r, w1)
	})
}
