package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// The hand-written decoder (decodeFast) against the reference decoder it
// takes a shortcut past (decodeReference): whatever the fast one accepts,
// the reference accepts too, and decodes to the same state.

// referenceDecode decodes b with the reference decoder alone.
func referenceDecode(t testing.TB, b []byte, origin ReplicaID, lim Limits) (*State, error) {
	t.Helper()
	if len(b) > lim.MaxBytes {
		return nil, ErrTooLarge
	}
	dm, err := decModes.Get(lim)
	if err != nil {
		t.Fatal(err)
	}
	return decodeReference(b, origin, lim, dm)
}

// sameState fails unless a and b are the same state: the same encoding,
// view and dots, and the same after a delete of their first key and a
// write over their second (which go through the dot index).
func sameState(t testing.TB, a, b *State, origin ReplicaID) {
	t.Helper()
	enc := func(s *State) []byte {
		if origin != "" {
			return EncodeDelta(s, origin)
		}
		return Encode(s)
	}
	if !bytes.Equal(enc(a), enc(b)) || !bytes.Equal(a.JSON(), b.JSON()) || a.Dots() != b.Dots() {
		t.Fatalf("fast and reference decodings differ:\n%x\n%x", enc(a), enc(b))
	}
	var ops []Op
	keys := slices.Sorted(maps.Keys(maps.Collect(a.root.kids.all())))
	for i, k := range keys {
		if i == 0 {
			ops = append(ops, Delete([]string{k}))
		} else if i == 1 {
			ops = append(ops, Set([]string{k}, js(`"over"`)))
		}
	}
	if len(ops) == 0 {
		return
	}
	if _, err := a.Apply("zz", 1<<50, ops...); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply("zz", 1<<50, ops...); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Encode(a), Encode(b)) || a.Dots() != b.Dots() {
		t.Fatal("fast and reference decodings differ after writes")
	}
}

// registerStates returns states and deltas of registers at top-level
// keys (the fast decoder's shape), with several replicas, concurrent
// values at one key, overwrites and deletes (so clouds).
func registerStates(rng *rand.Rand, n int) (states []*State, deltas []*State, origins []ReplicaID) {
	reps := []ReplicaID{"A", "B", "C"}
	s := New()
	for i := range n {
		r := reps[rng.IntN(len(reps))]
		var ops []Op
		for range 1 + rng.IntN(4) {
			k := []string{"k" + strconv.Itoa(rng.IntN(2*n+1))}
			if rng.IntN(8) == 0 {
				ops = append(ops, Delete(k))
			} else {
				ops = append(ops, Set(k, js(strconv.Itoa(rng.IntN(1000)))))
			}
		}
		if rng.IntN(5) == 0 {
			// A concurrent write: applied to a copy, merged back.
			c := s.Clone()
			d, err := c.Apply(reps[(i+1)%3], HLC(i+1), Set([]string{"k0"}, js(`"c"`)))
			if err == nil {
				s.Merge(d)
			}
		}
		d, err := s.Apply(r, HLC(i+1), ops...)
		if err != nil {
			continue
		}
		deltas, origins = append(deltas, d), append(origins, r)
		states = append(states, s.Clone())
	}
	return states, deltas, origins
}

// TestFastDecodeMatchesReference: register states and deltas, and joins
// of deltas, take the fast path and decode as the reference does.
func TestFastDecodeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	states, deltas, origins := registerStates(rng, 200)
	fast := 0
	check := func(b []byte, origin ReplicaID) {
		t.Helper()
		lim := DefaultLimits()
		want, err := referenceDecode(t, b, origin, lim)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeFast(b, origin, lim)
		if !ok {
			if want.Dots() > 0 && onlyTopRegisters(want) {
				t.Fatalf("a register state left to the reference: %x", b)
			}
			return
		}
		fast++
		sameState(t, got, want, origin)
	}
	for _, s := range states {
		check(Encode(s), "")
	}
	for i, d := range deltas {
		check(EncodeDelta(d, origins[i]), origins[i])
	}
	for _, b := range joinBatches(t, "A", 3, 4, 50) {
		check(b, "A")
	}
	if fast < len(states) {
		t.Fatalf("only %d encodings took the fast path", fast)
	}
}

// onlyTopRegisters reports whether every key of s is at the top level and
// holds a register alone.
func onlyTopRegisters(s *State) bool {
	for _, e := range s.root.kids.all() {
		if e.k1 != KindRegister || e.more != nil || e.sub != nil {
			return false
		}
	}
	return true
}

// TestFastDecodeRefusals: what the reference refuses, the fast decoder
// leaves to it — with the reference's error.
func TestFastDecodeRefusals(t *testing.T) {
	d := New()
	delta, err := d.Apply("A", 5, Set([]string{"a"}, js(`1`)), Set([]string{"b"}, js(`"x"`)))
	if err != nil {
		t.Fatal(err)
	}
	good := EncodeDelta(delta, "A")
	if _, ok := decodeFast(good, "A", DeltaLimits()); !ok {
		t.Fatalf("the fast path refused %x", good)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"trailing byte":     append(bytes.Clone(good), 0),
		"truncated":         good[:len(good)-1],
		"as a state":        nil, // decoded with no origin below
		"value not JSON":    bytes.Replace(good, []byte{0x41, '1'}, []byte{0x41, '{'}, 1),
		"zero counter":      bytes.Replace(good, []byte{0x84, 0x00, 0x01}, []byte{0x84, 0x00, 0x00}, 1),
		"outside context":   bytes.Replace(good, []byte{0x84, 0x00, 0x01}, []byte{0x84, 0x00, 0x09}, 1),
		"bad replica index": bytes.Replace(good, []byte{0x84, 0x00, 0x01}, []byte{0x84, 0x07, 0x01}, 1),
		"invalid UTF-8 key": bytes.Replace(good, []byte{0x61, 'a'}, []byte{0x61, 0xff}, 1),
		"dot twice":         bytes.Replace(good, []byte{0x84, 0x00, 0x02}, []byte{0x84, 0x00, 0x01}, 1),
		"wrong version":     mutate(func(b []byte) []byte { b[2] = 0x02; return b }),
	}
	for name, b := range cases {
		origin := ReplicaID("A")
		if name == "as a state" {
			b, origin = good, ""
		}
		if name != "as a state" && bytes.Equal(b, good) {
			t.Fatalf("%s: the mutation did not apply to %x", name, good)
		}
		if _, ok := decodeFast(b, origin, DeltaLimits()); ok {
			t.Errorf("%s: the fast path accepted %x", name, b)
		}
		_, want := referenceDecode(t, b, origin, DeltaLimits())
		var got error
		if origin == "" {
			_, got = Decode(b, DeltaLimits())
		} else {
			_, got = DecodeDelta(b, origin, DeltaLimits())
		}
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%s: error %v, the reference's %v", name, got, want)
		}
	}
	// The limits: an element count past MaxElements is refused, as the
	// reference refuses it.
	many := joinBatches(t, "A", 1, 1, 40)[0]
	lim := Limits{MaxBytes: 1 << 20, MaxElements: 20}
	if _, ok := decodeFast(many, "A", lim); ok {
		t.Error("the fast path went past MaxElements")
	}
	if _, err := DecodeDelta(many, "A", lim); !errors.Is(err, ErrTooLarge) {
		t.Errorf("40 keys with MaxElements 20: %v", err)
	}
}

// kindOf names an error's kind.
func kindOf(err error) string {
	for _, k := range []error{ErrTooLarge, ErrVersion, ErrMalformed} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return fmt.Sprint(err)
}

func fastSeeds(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	states, deltas, origins := registerStates(rng, 12)
	for _, s := range states[len(states)-3:] {
		f.Add(Encode(s), false)
	}
	for i, d := range deltas[:6] {
		if origins[i] == "B" {
			f.Add(EncodeDelta(d, "B"), true)
		}
	}
	for _, b := range joinBatches(f, "B", 2, 2, 3) {
		f.Add(b, true)
	}
	s := New()
	d1, _ := s.Apply("A", 1, Set([]string{"a", "b"}, js(`{"x":1}`)), Inc([]string{"n"}, 3))
	d2, _ := s.Apply("B", 2, Delete([]string{"a"}), Set([]string{"c"}, js(`2`)))
	f.Add(Encode(s), false)
	f.Add(Encode(d1), false)
	f.Add(EncodeDelta(d2, "B"), true)
	f.Add([]byte{0xa0}, true)
}

// FuzzFastDecode: differential — whatever decodeFast accepts, the
// reference decoder accepts and decodes to the same state; and Decode's
// result and error are the reference's.
func FuzzFastDecode(f *testing.F) {
	fastSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte, delta bool) {
		origin := ReplicaID("")
		if delta {
			origin = "B"
		}
		for _, lim := range []Limits{{MaxBytes: 1 << 16, MaxElements: 1 << 10}, {MaxBytes: 1 << 16, MaxElements: 16}} {
			want, werr := referenceDecode(t, b, origin, lim)
			got, ok := decodeFast(b, origin, lim)
			if ok {
				if werr != nil {
					t.Fatalf("the fast path accepted what the reference refuses (%v): %x", werr, b)
				}
				sameState(t, got, want, origin)
			}
			var err error
			if delta {
				_, err = DecodeDelta(b, origin, lim)
			} else {
				_, err = Decode(b, lim)
			}
			// The same outcome; not always the same text: the reference
			// reports the first fault in Go's map order.
			if (err == nil) != (werr == nil) || kindOf(err) != kindOf(werr) {
				t.Fatalf("error %v, the reference's %v", err, werr)
			}
		}
	})
}
