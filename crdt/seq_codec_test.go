package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func seqCodecSeeds(t testing.TB) (*Text, []*SeqDelta[rune]) {
	a, b := NewText(), NewText()
	var ds []*SeqDelta[rune]
	ds = append(ds, ins(t, a, "A", 0, "hello wörld 😀"))
	b.Merge(ds[0])
	ds = append(ds, del(t, a, "A", 2, 3))
	ds = append(ds, ins(t, b, "B", 5, "XY"))
	ds = append(ds, del(t, b, "B", 0, 1))
	for _, d := range ds {
		a.Merge(d)
	}
	return a, ds
}

func TestSeqCodecRoundTrip(t *testing.T) {
	s, ds := seqCodecSeeds(t)
	enc := EncodeSeq(s)
	back, err := DecodeSeq[rune](enc, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, back)
	if back.String() != s.String() || !bytes.Equal(EncodeSeq(back), enc) {
		t.Fatalf("%q vs %q", back.String(), s.String())
	}
	// The decoded state edits on and merges like the original.
	d := ins(t, back, "C", 3, "!")
	s.Merge(d)
	if s.String() != back.String() {
		t.Fatalf("%q vs %q", s.String(), back.String())
	}
	for _, d := range ds {
		got, err := DecodeSeqDelta[rune](EncodeSeqDelta(d, "A"), "A", DeltaLimits())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(EncodeSeqDelta(got, "A"), EncodeSeqDelta(d, "A")) {
			t.Fatal("delta encoding not stable")
		}
	}
	if _, err := DecodeSeq[json.RawMessage](enc, DefaultLimits()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a text decoded as a list: %v", err)
	}
}

func TestSeqListCodec(t *testing.T) {
	l := NewList()
	if _, err := l.Insert("A", 0, json.RawMessage(`{"a":[1,2]}`), json.RawMessage(`"x"`), json.RawMessage(`null`)); err != nil {
		t.Fatal(err)
	}
	d, err := l.Delete("A", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeSeq[json.RawMessage](EncodeSeq(l), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if back.String() != `[{"a":[1,2]},null]` {
		t.Fatalf("%s", back.String())
	}
	dd, err := DecodeSeqDelta[json.RawMessage](EncodeSeqDelta(l.Delta(), "A"), "A", DeltaLimits())
	if err != nil {
		t.Fatal(err)
	}
	other := NewList()
	other.Merge(dd)
	other.Merge(d)
	if other.String() != back.String() {
		t.Fatalf("%s", other.String())
	}
}

// One keystroke's delta is a few bytes: here typing on at counter 182,000.
func TestSeqDeltaSize(t *testing.T) {
	s := NewText()
	s.cc.AddRange("author", 1, 182_000) // as if it had typed a paper
	ins(t, s, "author", 0, "x")
	d := ins(t, s, "author", 1, "y")
	if n := len(EncodeSeqDelta(d, "author")); n > 30 {
		t.Fatalf("one-character insert delta is %d bytes", n)
	} else {
		t.Logf("one-character insert: %d bytes; one-character delete: %d bytes", n, len(EncodeSeqDelta(del(t, s, "author", 0, 1), "author")))
	}
}

// Truncated, flipped and forged encodings are refused with typed errors,
// never a panic.
func TestSeqDecodeMalformed(t *testing.T) {
	s, ds := seqCodecSeeds(t)
	inputs := [][]byte{EncodeSeq(s), EncodeSeqDelta(ds[0], "A"), EncodeSeqDelta(ds[1], "A"), EncodeSeqDelta(s.Delta(), "A")}
	typed := func(err error) bool {
		return errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrVersion)
	}
	for _, in := range inputs {
		for cut := 0; cut < len(in); cut++ {
			if _, err := DecodeSeq[rune](in[:cut], DefaultLimits()); err == nil || !typed(err) {
				t.Fatalf("state cut at %d: %v", cut, err)
			}
			if _, err := DecodeSeqDelta[rune](in[:cut], "A", DeltaLimits()); err == nil || !typed(err) {
				t.Fatalf("delta cut at %d: %v", cut, err)
			}
		}
		for i := range in {
			for _, x := range []byte{0x01, 0x10, 0x80, 0xff} {
				b := bytes.Clone(in)
				b[i] ^= x
				if st, err := DecodeSeq[rune](b, DefaultLimits()); err != nil {
					if !typed(err) {
						t.Fatalf("untyped error %v", err)
					}
				} else {
					if err := st.check(); err != nil {
						t.Fatalf("flip at %d decoded into a broken state: %v", i, err)
					}
					st.Merge(s.Delta())
					_ = st.String()
				}
				if d, err := DecodeSeqDelta[rune](b, "A", DeltaLimits()); err != nil {
					if !typed(err) {
						t.Fatalf("untyped error %v", err)
					}
				} else {
					c := NewText()
					c.Merge(d)
					c.Merge(s.Delta())
					if err := c.check(); err != nil {
						t.Fatalf("flip at %d: merged into a broken state: %v", i, err)
					}
				}
			}
		}
	}
	if _, err := DecodeSeq[rune](EncodeSeq(s), Limits{MaxBytes: 10, MaxElements: 16}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the byte limit: %v", err)
	}
	if _, err := DecodeSeqDelta[rune](EncodeSeqDelta(ds[0], "A"), "", DeltaLimits()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty origin: %v", err)
	}
}
