package crdt

import (
	"bytes"
	"encoding/json"
	"testing"
)

// fullCheck is what compactJSON's full path requires of a value it
// returns unchanged, by the JSON scanner: valid, valid UTF-8 without lone
// surrogate escapes, and its own compact form.
func fullCheck(v []byte) bool {
	if !json.Valid(v) || CheckJSONText(v) != nil {
		return false
	}
	var buf bytes.Buffer
	return json.Compact(&buf, v) == nil && bytes.Equal(buf.Bytes(), v)
}

// TestPlainScalar: every string of up to 5 bytes over an alphabet of
// JSON's number, string and literal characters (and some that break
// them) that plainScalar takes passes the full check, and every number,
// literal and plain string among them that passes it is taken.
func TestPlainScalar(t *testing.T) {
	const alphabet = "-+.019eE\"a \\u\x7f\x1f{t"
	taken := 0
	var walk func(v []byte)
	walk = func(v []byte) {
		plain, full := plainScalar(v), fullCheck(v)
		if plain && !full {
			t.Fatalf("plainScalar(%q) = true, but the full check refuses it", v)
		}
		if plain {
			taken++
		}
		if full && !plain && plainForm(v) {
			t.Fatalf("plainScalar(%q) = false for a plain scalar", v)
		}
		if len(v) == 5 {
			return
		}
		for i := 0; i < len(alphabet); i++ {
			walk(append(v, alphabet[i]))
		}
	}
	walk(nil)
	for _, v := range []string{"true", "false", "null", `"hello, world"`, "-12.5e+10", "0.001", `""`} {
		if !plainScalar([]byte(v)) {
			t.Errorf("plainScalar(%q) = false", v)
		}
	}
	for _, v := range []string{"tru", "nul", "01", "1.", ".5", "1e", "-", `"a\"`, `"é"`, "1 ", `"\u0041"`} {
		if plainScalar([]byte(v)) {
			t.Errorf("plainScalar(%q) = true", v)
		}
	}
	if taken == 0 {
		t.Fatal("no string taken")
	}
}

// plainForm reports whether a value the full check passes is of a form
// plainScalar must take: not an object, an array, or a string with an
// escape or a character outside printable ASCII.
func plainForm(v []byte) bool {
	switch v[0] {
	case '{', '[':
		return false
	case '"':
		for _, c := range v[1 : len(v)-1] {
			if c < 0x20 || c > 0x7e || c == '\\' {
				return false
			}
		}
	}
	return true
}

// FuzzPlainScalar: what plainScalar takes, the full check passes.
func FuzzPlainScalar(f *testing.F) {
	for _, v := range []string{"42", "-0.5E-3", `"ab"`, "true", `"\u00e9"`, "1e", "[1]"} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if plainScalar(v) && !fullCheck(v) {
			t.Fatalf("plainScalar(%q) = true, but the full check refuses it", v)
		}
	})
}
