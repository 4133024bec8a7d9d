package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func p(keys ...string) []string { return keys }

func js(s string) json.RawMessage { return json.RawMessage(s) }

func mustApply(t testing.TB, s *State, r ReplicaID, ts HLC, ops ...Op) *State {
	t.Helper()
	d, err := s.Apply(r, ts, ops...)
	if err != nil {
		t.Fatalf("apply %v: %v", ops, err)
	}
	return d
}

func assertJSON(t testing.TB, s *State, want string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(s.JSON(), &a); err != nil {
		t.Fatalf("view is not JSON: %s", s.JSON())
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("bad want %s", want)
	}
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	if !bytes.Equal(ab, bb) {
		t.Fatalf("view = %s, want %s", s.JSON(), want)
	}
}

func TestConcurrentSemantics(t *testing.T) {
	tests := []struct {
		name   string
		setup  []Op // applied by A, delivered to B
		a, b   []Op // concurrent
		want   string
		verify func(t *testing.T, s *State)
	}{
		{
			name:  "set add wins over concurrent remove",
			setup: []Op{Add(p("s"), js(`"x"`)), Add(p("s"), js(`"y"`))},
			a:     []Op{Remove(p("s"), js(`"x"`))},
			b:     []Op{Add(p("s"), js(`"x"`))},
			want:  `{"s":["x","y"]}`,
		},
		{
			name:  "set remove of an observed element",
			setup: []Op{Add(p("s"), js(`"x"`)), Add(p("s"), js(`"y"`))},
			a:     []Op{Remove(p("s"), js(`"x"`))},
			b:     []Op{Add(p("s"), js(`"z"`))},
			want:  `{"s":["y","z"]}`,
		},
		{
			name:  "map update survives concurrent remove of its key",
			setup: []Op{Set(p("m", "a"), js(`1`)), Set(p("m", "b"), js(`2`))},
			a:     []Op{Delete(p("m"))},
			b:     []Op{Set(p("m", "a"), js(`10`))},
			want:  `{"m":{"a":10}}`,
		},
		{
			name:  "nested counter increment survives concurrent remove",
			setup: []Op{Inc(p("m", "c"), 5), Set(p("m", "x"), js(`true`))},
			a:     []Op{Delete(p("m"))},
			b:     []Op{Inc(p("m", "c"), 1)},
			// A's removed contribution (5) is gone; B's concurrent +1 stays.
			want: `{"m":{"c":1}}`,
		},
		{
			name:  "register write write keeps both",
			setup: []Op{Set(p("r"), js(`0`))},
			a:     []Op{Set(p("r"), js(`"from-a"`))},
			b:     []Op{Set(p("r"), js(`"from-b"`))},
			want:  `{"r":"from-b"}`, // equal HLC: higher replica ID wins
			verify: func(t *testing.T, s *State) {
				c := s.Conflicts(p("r"))
				if len(c) != 2 || string(c[0].Value) != `"from-b"` || string(c[1].Value) != `"from-a"` {
					t.Fatalf("conflicts = %+v", c)
				}
			},
		},
		{
			name: "counters from two replicas add up",
			a:    []Op{Inc(p("n"), 3), Inc(p("n"), -1)},
			b:    []Op{Inc(p("n"), 10)},
			want: `{"n":12}`,
		},
		{
			name: "type conflict resolves to the higher kind everywhere",
			a:    []Op{Set(p("k"), js(`"reg"`))},
			b:    []Op{Inc(p("k"), 2)},
			want: `{"k":2}`,
		},
		{
			name: "map beats register at one key",
			a:    []Op{Set(p("k"), js(`1`))},
			b:    []Op{Set(p("k", "x"), js(`2`))},
			want: `{"k":{"x":2}}`,
		},
		{
			name:  "delete versus delete",
			setup: []Op{Set(p("a"), js(`1`)), Set(p("b"), js(`2`))},
			a:     []Op{Delete(p("a"))},
			b:     []Op{Delete(p("a"))},
			want:  `{"b":2}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := New(), New()
			var ts HLC = 100
			for _, op := range tt.setup {
				d := mustApply(t, a, "A", ts, op)
				b.Merge(d)
			}
			ts++
			var das, dbs []*State
			for _, op := range tt.a {
				das = append(das, mustApply(t, a, "A", ts, op))
			}
			for _, op := range tt.b {
				dbs = append(dbs, mustApply(t, b, "B", ts, op))
			}
			for _, d := range dbs {
				a.Merge(d)
			}
			for _, d := range das {
				b.Merge(d)
			}
			assertJSON(t, a, tt.want)
			assertJSON(t, b, tt.want)
			if !bytes.Equal(Encode(a), Encode(b)) {
				t.Fatalf("encodings differ")
			}
			if tt.verify != nil {
				tt.verify(t, a)
				tt.verify(t, b)
			}
		})
	}
}

func TestLocalTypeConflictRefused(t *testing.T) {
	s := New()
	mustApply(t, s, "A", 1, Set(p("r"), js(`1`)), Inc(p("c"), 1), Add(p("s"), js(`"x"`)), Set(p("m", "k"), js(`1`)))
	cases := []Op{
		Inc(p("r"), 1), Add(p("r"), js(`"x"`)), Set(p("c"), js(`1`)), Set(p("s"), js(`1`)),
		Set(p("m"), js(`1`)), Set(p("r", "x"), js(`1`)), Inc(p("m"), 1), Remove(p("c"), js(`1`)),
	}
	before := Encode(s)
	for _, op := range cases {
		if _, err := s.Apply("A", 2, op); !errors.Is(err, ErrTypeConflict) {
			t.Errorf("%v: err = %v, want ErrTypeConflict", op, err)
		}
	}
	if !bytes.Equal(before, Encode(s)) {
		t.Fatal("a refused op changed the state")
	}
}

func TestTransactionAllOrNothing(t *testing.T) {
	s := New()
	mustApply(t, s, "A", 1, Set(p("r"), js(`1`)))
	before := Encode(s)
	_, err := s.Apply("A", 2, Set(p("x"), js(`1`)), Inc(p("r"), 1))
	if !errors.Is(err, ErrTypeConflict) {
		t.Fatalf("err = %v", err)
	}
	if !bytes.Equal(before, Encode(s)) {
		t.Fatal("failed transaction left changes")
	}
	// Ops in one transaction see each other.
	d := mustApply(t, s, "A", 3, Delete(p("r")), Inc(p("r"), 4), Set(p("m", "a"), js(`"v"`)), Delete(p("m")), Add(p("m", "s"), js(`1`)))
	assertJSON(t, s, `{"r":4,"m":{"s":[1]}}`)
	other := New()
	other.Merge(Clone0(t, before))
	other.Merge(d)
	assertJSON(t, other, `{"r":4,"m":{"s":[1]}}`)
	for _, bad := range []Op{
		{Kind: OpSet, Path: nil, Value: js(`1`)},
		{Kind: OpSet, Path: p("a"), Value: js(`{`)},
		{Kind: OpAdd, Path: p("a"), Value: js(`[1]`)},
		{Kind: 99, Path: p("a")},
	} {
		if _, err := s.Apply("A", 4, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Clone0 decodes an encoded state.
func Clone0(t testing.TB, b []byte) *State {
	t.Helper()
	s, err := Decode(b, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestViewAndGet(t *testing.T) {
	s := New()
	mustApply(t, s, "A", 1,
		Set(p("title"), js(` { "x" : [1, 2] } `)),
		Add(p("tags"), js(`"b"`)), Add(p("tags"), js(`"a"`)), Add(p("tags"), js(`10`)), Add(p("tags"), js(`9`)), Add(p("tags"), js(`null`)),
		Inc(p("m", "n"), -3))
	assertJSON(t, s, `{"title":{"x":[1,2]},"tags":[null,9,10,"a","b"],"m":{"n":-3}}`)
	if got := string(s.JSON()); got != `{"m":{"n":-3},"tags":[null,9,10,"a","b"],"title":{"x":[1,2]}}` {
		t.Fatalf("view not canonical: %s", got)
	}
	if v, ok := s.Get(p("m", "n")); !ok || string(v) != "-3" {
		t.Fatalf("get = %s %v", v, ok)
	}
	if _, ok := s.Get(p("nope")); ok {
		t.Fatal("get of a missing key succeeded")
	}
	if s.KindAt(p("tags")) != KindSet || s.KindAt(p("m")) != KindMap {
		t.Fatal("wrong kinds")
	}
}

func TestOutOfOrderDeltasAndGaps(t *testing.T) {
	a, b := New(), New()
	var ds []*State
	for i := 0; i < 10; i++ {
		ds = append(ds, mustApply(t, a, "A", HLC(i+1), Set(p("k"), js(`1`)), Inc(p("n"), 1)))
	}
	for i := len(ds) - 1; i >= 0; i-- {
		b.Merge(ds[i])
	}
	if !bytes.Equal(Encode(a), Encode(b)) {
		t.Fatalf("reverse delivery diverged:\n%s\n%s", a.JSON(), b.JSON())
	}
	if b.cc.CloudSize() != 0 {
		t.Fatalf("cloud not folded: %v", cloudMap(b.cc))
	}
}

func TestHLC(t *testing.T) {
	var h HLC
	h1 := h.Now(1000)
	if h1.Physical() != 1000 || h1.Logical() != 0 {
		t.Fatal(h1)
	}
	h2 := h1.Now(999) // clock stepped back
	if h2 <= h1 || h2.Physical() != 1000 || h2.Logical() != 1 {
		t.Fatal(h2)
	}
	remote := MakeHLC(5000, 7)
	h3 := h2.Observe(remote, 1001)
	if h3 <= remote || h3.Physical() != 5000 || h3.Logical() != 8 {
		t.Fatal(h3)
	}
	full := MakeHLC(10, 0xFFFF)
	if n := full.Now(0); n <= full || n.Physical() != 11 {
		t.Fatal(n)
	}
}
