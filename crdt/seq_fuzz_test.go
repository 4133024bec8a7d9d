package crdt

import (
	"bytes"
	"errors"
	"testing"
)

func seqFuzzSeeds(f *testing.F) {
	s, ds := seqCodecSeeds(f)
	f.Add(EncodeSeq(s))
	zs, _ := seqZipReplicas(f)
	f.Add(EncodeSeq(zs)) // deflated columns
	f.Add(EncodeSeq(NewText()))
	f.Add(EncodeSeqDelta(s.Delta(), "A"))
	for _, d := range ds {
		f.Add(EncodeSeqDelta(d, "A"))
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{})
}

// FuzzDecodeSeq: any input decodes to a sequence whose encoding is stable,
// or fails with a typed error — never a panic.
func FuzzDecodeSeq(f *testing.F) {
	seqFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSeq[rune](b, Limits{MaxBytes: 1 << 16, MaxElements: 1 << 10})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrVersion) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if err := s.check(); err != nil {
			t.Fatal(err)
		}
		enc := EncodeSeq(s)
		s2, err := DecodeSeq[rune](enc, DefaultLimits())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(EncodeSeq(s2), enc) {
			t.Fatal("encoding not stable")
		}
		if s.Len() > 0 {
			if _, err := s.Insert("fuzz", s.Len()/2, 'x'); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Delete("fuzz", 0, 1); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzDecodeSeqDelta(f *testing.F) {
	seqFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeSeqDelta[rune](b, "A", DeltaLimits())
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrVersion) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		enc := EncodeSeqDelta(d, "A")
		if _, err := DecodeSeqDelta[rune](enc, "A", DeltaLimits()); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		s := NewText()
		s.Merge(d)
		if err := s.check(); err != nil {
			t.Fatal(err)
		}
		_ = s.String()
	})
}
