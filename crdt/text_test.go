package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// An outside test found that a set element "e\xff" was accepted locally,
// then refused by every peer's decoder and by the store's own on reload (the
// acknowledged write was lost), and that a register value with invalid UTF-8
// made every peer's JSON view invalid. Both are now refused where ops are
// built.
func TestInvalidTextRefused(t *testing.T) {
	cases := []struct {
		name string
		op   Op
		want []error
	}{
		{"set element", Add([]string{"s"}, js("\"e\xff\"")), []error{ErrInvalidValue, ErrInvalidUTF8}},
		{"remove element", Remove([]string{"s"}, js("\"e\xff\"")), []error{ErrInvalidValue, ErrInvalidUTF8}},
		{"register value", Set([]string{"r"}, js("\"v\xc3\"")), []error{ErrInvalidValue, ErrInvalidUTF8}},
		{"register value nested", Set([]string{"r"}, js("{\"k\xfe\":1}")), []error{ErrInvalidValue, ErrInvalidUTF8}},
		{"path key", Set([]string{"ok", "k\xff"}, js("1")), []error{ErrInvalidPath, ErrInvalidUTF8}},
		{"delete path key", Delete([]string{"\xed\xa0\x80"}), []error{ErrInvalidPath, ErrInvalidUTF8}},
		{"lone high surrogate", Set([]string{"r"}, js(`"\ud800"`)), []error{ErrInvalidValue, ErrInvalidUTF8}},
		{"lone high surrogate at end", Add([]string{"s"}, js(`"a\uD83D"`)), []error{ErrInvalidValue, ErrInvalidUTF8}},
		{"lone low surrogate", Set([]string{"r"}, js(`["\udc00"]`)), []error{ErrInvalidValue, ErrInvalidUTF8}},
		{"reversed pair", Set([]string{"r"}, js(`"\ude00\ud83d"`)), []error{ErrInvalidValue, ErrInvalidUTF8}},
		{"high then escape", Set([]string{"r"}, js(`"\ud83d\n"`)), []error{ErrInvalidValue, ErrInvalidUTF8}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New()
			before := Encode(s)
			_, err := s.Apply("r1", 1, Set([]string{"x"}, js("1")), c.op)
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Fatalf("err = %v, want %v", err, w)
				}
			}
			if !bytes.Equal(Encode(s), before) {
				t.Fatal("a refused transaction changed the state")
			}
		})
	}
	ok := []Op{
		Set([]string{"r"}, js(`"\ud83d\ude00 ok"`)), // a surrogate pair
		Set([]string{"r"}, js(`"\\ud800"`)),         // an escaped backslash, then text
		Add([]string{"s"}, js(`"\u00e9\\\\u"`)),
		Set([]string{"é", "日本"}, js(`{"ключ":"😀"}`)),
	}
	for _, op := range ok {
		s := New()
		d, err := s.Apply("r1", 1, op)
		if err != nil {
			t.Fatalf("%v: %v", op, err)
		}
		if _, err := DecodeDelta(EncodeDelta(d, "r1"), "r1", DeltaLimits()); err != nil {
			t.Fatalf("%v: delta does not decode: %v", op, err)
		}
	}
}

// A peer that skips the write-path checks cannot get invalid text past a
// decoder either.
func TestDecodeRefusesInvalidText(t *testing.T) {
	s := New()
	d, err := s.Apply("r1", 1, Set([]string{"r"}, js(`"abc"`)))
	if err != nil {
		t.Fatal(err)
	}
	b := EncodeDelta(d, "r1")
	for _, bad := range []string{"\"a\xff\"", `"\udc00"`} {
		// The register value is a CBOR byte string: 0x45 "abc" becomes the
		// forged bytes with their own length.
		forged := bytes.Replace(b, []byte("\x45\"abc\""), append([]byte{0x40 | byte(len(bad))}, bad...), 1)
		if bytes.Equal(forged, b) {
			t.Fatal("test did not forge the value")
		}
		if _, err := DecodeDelta(forged, "r1", DeltaLimits()); !errors.Is(err, ErrMalformed) {
			t.Fatalf("forged value %q: err = %v, want ErrMalformed", bad, err)
		}
	}
}

// hostileString draws strings meant to break codecs: invalid UTF-8,
// surrogate escapes, control characters, long runs.
func hostileString(t *rapid.T, label string) string {
	switch rapid.IntRange(0, 4).Draw(t, label+"_kind") {
	case 0:
		return string(rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, label+"_bytes"))
	case 1:
		return rapid.SampledFrom([]string{"", "a", "\x00", "é", "\xff", "\xed\xa0\x80", "\U0010ffff", "/", "..", "\"", "\\"}).Draw(t, label)
	case 2:
		return strings.Repeat("x", rapid.IntRange(0, 70000).Draw(t, label+"_len"))
	default:
		return rapid.String().Draw(t, label)
	}
}

// hostileJSON draws JSON-ish values, valid or not.
func hostileJSON(t *rapid.T, label string) json.RawMessage {
	switch rapid.IntRange(0, 5).Draw(t, label+"_kind") {
	case 0:
		b, _ := json.Marshal(hostileString(t, label)) // valid JSON (U+FFFD for bad bytes)
		return b
	case 1:
		return js(`"` + hostileString(t, label) + `"`) // raw bytes in a string
	case 2:
		return js(rapid.SampledFrom([]string{`"\ud800"`, `"\udfff"`, `"\ud83d\ude00"`, `"\\ud800"`, `1e400`, `-0`, `null`, `true`, `{"a":[1,{"b":"\u0000"}]}`, `[`, ``, ` 1 `}).Draw(t, label))
	case 3:
		return js(strings.Repeat("[", 300) + strings.Repeat("]", 300))
	default:
		return js(strings.Repeat(`"`, rapid.IntRange(0, 3).Draw(t, label+"_q")) + rapid.String().Draw(t, label))
	}
}

// TestAcceptedOpsReplicate: whatever Apply accepts, the delta it returns
// decodes under the receive limits, and merging it elsewhere gives the same
// state; whatever it refuses changes nothing.
func TestAcceptedOpsReplicate(t *testing.T) {
	accepted := 0 // transactions accepted, over all cases
	defer func() {
		if accepted == 0 {
			t.Error("no transaction was accepted: the generator tests nothing")
		}
	}()
	rapid.Check(t, func(t *rapid.T) {
		a, b := New(), New()
		var ts HLC
		for range rapid.IntRange(1, 6).Draw(t, "txns") {
			ts++
			var ops []Op
			for range rapid.IntRange(1, 4).Draw(t, "ops") {
				path := []string{hostileString(t, "key")}
				if rapid.Bool().Draw(t, "deep") {
					path = append(path, hostileString(t, "key2"))
				}
				switch rapid.IntRange(0, 4).Draw(t, "kind") {
				case 0:
					ops = append(ops, Set(path, hostileJSON(t, "val")))
				case 1:
					ops = append(ops, Add(path, hostileJSON(t, "elem")))
				case 2:
					ops = append(ops, Remove(path, hostileJSON(t, "elem")))
				case 3:
					ops = append(ops, Inc(path, rapid.Int64().Draw(t, "by")))
				default:
					ops = append(ops, Delete(path))
				}
			}
			before := Encode(a)
			d, err := a.Apply("r1", ts, ops...)
			if err != nil {
				if !bytes.Equal(Encode(a), before) {
					t.Fatalf("refused transaction (%v) changed the state", err)
				}
				continue
			}
			accepted++
			enc := EncodeDelta(d, "r1")
			got, err := DecodeDelta(enc, "r1", DefaultLimits())
			if err != nil {
				t.Fatalf("accepted delta does not decode: %v", err)
			}
			b.Merge(got)
			if !json.Valid(a.JSON()) {
				t.Fatalf("view is not valid JSON: %q", a.JSON())
			}
		}
		if !bytes.Equal(Encode(a), Encode(b)) {
			t.Fatal("replica diverged")
		}
		if _, err := Decode(Encode(a), DefaultLimits()); err != nil {
			t.Fatalf("state does not decode: %v", err)
		}
	})
}
