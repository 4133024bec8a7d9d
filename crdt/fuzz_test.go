package crdt

import (
	"bytes"
	"errors"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	s := New()
	d1, _ := s.Apply("A", 1, Set([]string{"a", "b"}, js(`{"x":1}`)), Inc([]string{"n"}, 3), Add([]string{"s"}, js(`"e"`)))
	d2, _ := s.Apply("B", 2, Delete([]string{"a"}), Remove([]string{"s"}, js(`"e"`)))
	f.Add(Encode(s))
	f.Add(Encode(d1))
	f.Add(EncodeDelta(d2, "B"))
	f.Add([]byte{0xa0})
	f.Add([]byte{})
}

// FuzzDecode: any input either decodes to a state whose canonical encoding
// is stable, or fails with a typed error — never a panic.
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := Limits{MaxBytes: 1 << 16, MaxElements: 1 << 10}
		s, err := Decode(b, lim)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrVersion) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		enc := Encode(s)
		s2, err := Decode(enc, DefaultLimits())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(Encode(s2), enc) {
			t.Fatal("encoding not stable")
		}
		_ = s.JSON()
		s2.Merge(s)
	})
}

func FuzzDecodeDelta(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeDelta(b, "B", DeltaLimits())
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrVersion) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		enc := EncodeDelta(s, "B")
		if _, err := DecodeDelta(enc, "B", DeltaLimits()); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		base := New()
		base.Merge(s)
		_ = base.JSON()
	})
}
