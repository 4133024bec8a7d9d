package crdt

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"

	"pgregory.net/rapid"
)

// joinDecoded is what JoinDisjointDeltas stands for: the deltas decoded,
// joined in order, encoded.
func joinDecoded(t interface{ Fatal(...any) }, origin ReplicaID, payloads [][]byte) []byte {
	joined := New()
	for _, b := range payloads {
		d, err := DecodeDelta(b, origin, DeltaLimits())
		if err != nil {
			t.Fatal(err)
		}
		joined.JoinDelta(d)
	}
	return EncodeDelta(joined, origin)
}

// Wherever it answers, the raw join gives the bytes of the decoded one.
func TestJoinDisjointDeltasMatchesJoin(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := New(), New()
		var ts HLC
		var payloads [][]byte
		for range rapid.IntRange(1, 6).Draw(t, "txns") {
			ts++
			if rapid.IntRange(0, 7).Draw(t, "merge") == 0 {
				// Another writer's value, which a later op of a may cover.
				d, err := b.Apply("B", ts, Set([]string{"k" + strconv.Itoa(rapid.IntRange(0, 11).Draw(t, "bkey"))}, js("7")))
				if err != nil {
					t.Fatal(err)
				}
				a.Merge(d)
			}
			var ops []Op
			for range rapid.IntRange(1, 3).Draw(t, "ops") {
				path := []string{"k" + strconv.Itoa(rapid.IntRange(0, 39).Draw(t, "key"))}
				if rapid.IntRange(0, 9).Draw(t, "nested") == 0 {
					path = append(path, "n"+strconv.Itoa(rapid.IntRange(0, 2).Draw(t, "sub")))
				}
				switch rapid.IntRange(0, 14).Draw(t, "kind") {
				case 0:
					ops = append(ops, Delete(path))
				case 1:
					ops = append(ops, Inc(path, 1))
				case 2:
					ops = append(ops, Add(path, js(`"x"`)))
				case 3:
					ops = append(ops, Set(path, js(`{"obj":[1,2]}`)))
				default:
					ops = append(ops, Set(path, js(strconv.Itoa(rapid.IntRange(0, 99).Draw(t, "val")))))
				}
			}
			d, err := a.Apply("A", ts, ops...)
			if err != nil {
				continue // an op the state refuses (a kind clash)
			}
			payloads = append(payloads, EncodeDelta(d, "A"))
		}
		if len(payloads) == 0 {
			return
		}
		got, ok := JoinDisjointDeltas("A", payloads, DeltaLimits())
		if !ok {
			return
		}
		if want := joinDecoded(t, "A", payloads); !bytes.Equal(got, want) {
			t.Fatalf("raw join\n%x\ndecoded join\n%x", got, want)
		}
	})
}

// The late joiner's case: transactions of fresh register sets join raw; an
// overwrite, a delete, a nested key, a counter or another writer's dot
// sends the run to the decoded join.
func TestJoinDisjointDeltasCases(t *testing.T) {
	set := func(k string, v int) Op { return Set([]string{k}, json.RawMessage(strconv.Itoa(v))) }
	run := func(txns ...[]Op) [][]byte {
		s := New()
		var out [][]byte
		for i, ops := range txns {
			d, err := s.Apply("A", HLC(i+1), ops...)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, EncodeDelta(d, "A"))
		}
		return out
	}
	var big [][]Op
	for tx := range 8 {
		var ops []Op
		for k := range 100 {
			ops = append(ops, set("k"+strconv.Itoa(tx*100+k), tx*100+k))
		}
		big = append(big, ops)
	}
	for _, tc := range []struct {
		name string
		run  [][]byte
		ok   bool
	}{
		{"fresh sets", run(big...), true},
		{"one delta", run(big[0]), true},
		{"overwrite", run([]Op{set("a", 1)}, []Op{set("a", 2)}), false},
		{"delete", run([]Op{set("a", 1)}, []Op{Delete([]string{"a"})}), false},
		{"nested", run([]Op{Set([]string{"m", "a"}, js("1"))}, []Op{Set([]string{"m", "b"}, js("2"))}), false},
		{"counter", run([]Op{Inc([]string{"c"}, 1)}, []Op{set("a", 1)}), false},
	} {
		got, ok := JoinDisjointDeltas("A", tc.run, DeltaLimits())
		if ok != tc.ok {
			t.Fatalf("%s: ok %v, want %v", tc.name, ok, tc.ok)
		}
		if ok {
			if want := joinDecoded(t, "A", tc.run); !bytes.Equal(got, want) {
				t.Fatalf("%s: raw join differs from the decoded one", tc.name)
			}
		}
	}
	// Another writer's dot, covered by an overwrite, names a second replica.
	s := New()
	d0, _ := New().Apply("B", 1, set("a", 1))
	s.Merge(d0)
	d1, err := s.Apply("A", 2, set("a", 2))
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := s.Apply("A", 3, set("b", 3))
	if _, ok := JoinDisjointDeltas("A", [][]byte{EncodeDelta(d1, "A"), EncodeDelta(d2, "A")}, DeltaLimits()); ok {
		t.Fatal("a delta covering another writer's dot joined raw")
	}
	if _, ok := JoinDisjointDeltas("A", [][]byte{[]byte("junk")}, DeltaLimits()); ok {
		t.Fatal("junk joined raw")
	}
}

// Runs of register sets only, mostly on fresh keys (the case the raw join
// is for), sometimes an overwrite or another writer's value.
func TestJoinDisjointDeltasSetsMatchJoin(t *testing.T) {
	joinedRaw := 0
	rapid.Check(t, func(t *rapid.T) {
		a := New()
		var payloads [][]byte
		for i := range rapid.IntRange(2, 8).Draw(t, "txns") {
			if rapid.IntRange(0, 9).Draw(t, "merge") == 0 {
				d, _ := New().Apply("B", HLC(i+1), Set([]string{"k" + strconv.Itoa(rapid.IntRange(0, 199).Draw(t, "bkey"))}, js("7")))
				a.Merge(d)
			}
			var ops []Op
			for range rapid.IntRange(1, 20).Draw(t, "ops") {
				k := "k" + strconv.Itoa(rapid.IntRange(0, 199).Draw(t, "key"))
				v, _ := json.Marshal(rapid.StringN(0, 8, -1).Draw(t, "val"))
				ops = append(ops, Set([]string{k}, v))
			}
			d, err := a.Apply("A", HLC(i+1), ops...)
			if err != nil {
				t.Fatal(err)
			}
			payloads = append(payloads, EncodeDelta(d, "A"))
		}
		got, ok := JoinDisjointDeltas("A", payloads, DeltaLimits())
		if !ok {
			return
		}
		joinedRaw++
		if want := joinDecoded(t, "A", payloads); !bytes.Equal(got, want) {
			t.Fatalf("raw join\n%x\ndecoded join\n%x", got, want)
		}
	})
	if joinedRaw < 50 {
		t.Fatalf("only %d runs joined raw: the property checks too little", joinedRaw)
	}
}

// The hand-read join answers as the reference (through the CBOR library)
// does wherever it answers, and answers for the bulk load it is for.
func TestJoinDisjointFastMatchesReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := New()
		var payloads [][]byte
		for i := range rapid.IntRange(1, 5).Draw(t, "txns") {
			var ops []Op
			for range rapid.IntRange(1, 4).Draw(t, "ops") {
				path := []string{"k" + strconv.Itoa(rapid.IntRange(0, 30).Draw(t, "key"))}
				switch rapid.IntRange(0, 9).Draw(t, "kind") {
				case 0:
					ops = append(ops, Delete(path))
				case 1:
					ops = append(ops, Inc(path, 1))
				default:
					ops = append(ops, Set(path, js(strconv.Itoa(rapid.IntRange(0, 99).Draw(t, "val")))))
				}
			}
			d, err := a.Apply("A", HLC(i+1), ops...)
			if err != nil {
				continue
			}
			payloads = append(payloads, EncodeDelta(d, "A"))
		}
		if rapid.Bool().Draw(t, "gap") && len(payloads) > 1 {
			payloads = payloads[1:] // a run that does not start at 1
		}
		if len(payloads) == 0 {
			return
		}
		got, ok := joinDisjointFast("A", payloads, DeltaLimits())
		want, wok := joinDisjointReference("A", payloads, DeltaLimits())
		if ok && (!wok || !bytes.Equal(got, want)) {
			t.Fatalf("fast (%v)\n%x\nreference (%v)\n%x", ok, got, wok, want)
		}
		if wok && !ok {
			t.Fatalf("a run the reference joins left to it: %x", payloads)
		}
	})
	var run [][]byte
	src := New()
	for i := range 8 {
		var ops []Op
		for k := range 100 {
			ops = append(ops, Set([]string{"k" + strconv.Itoa(i*100+k)}, js(strconv.Itoa(k))))
		}
		d, err := src.Apply("A", HLC(i+1), ops...)
		if err != nil {
			t.Fatal(err)
		}
		run = append(run, EncodeDelta(d, "A"))
	}
	got, ok := joinDisjointFast("A", run, DeltaLimits())
	if want := joinDecoded(t, "A", run); !ok || !bytes.Equal(got, want) {
		t.Fatalf("bulk load: fast %v", ok)
	}
}
