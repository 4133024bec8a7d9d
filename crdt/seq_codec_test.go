package crdt

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
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

// seqZipReplicas returns two replicas that typed and deleted concurrently
// and then converged, each having merged the other's deltas after its own:
// a state whose columns are long enough to be deflated.
func seqZipReplicas(t testing.TB) (*Text, *Text) {
	rng := rand.New(rand.NewPCG(7, 11))
	a, b := NewText(), NewText()
	var da, db []*SeqDelta[rune]
	words := strings.Fields("the quick brown fox jumps over the lazy dog ünïcödé 😀 text")
	edit := func(s *Text, r ReplicaID) *SeqDelta[rune] {
		if s.Len() > 20 && rng.IntN(3) == 0 {
			return del(t, s, r, rng.IntN(s.Len()-3), 1+rng.IntN(3))
		}
		return ins(t, s, r, rng.IntN(s.Len()+1), words[rng.IntN(len(words))]+" ")
	}
	for i := 0; i < 300; i++ {
		da = append(da, edit(a, "A"))
		db = append(db, edit(b, "B"))
	}
	for _, d := range db {
		a.Merge(d)
	}
	for _, d := range da {
		b.Merge(d)
	}
	return a, b
}

// Replicas that converged encode to the same bytes, deflated columns
// included, and the encoding decodes back to the state.
func TestSeqCodecCompressed(t *testing.T) {
	a, b := seqZipReplicas(t)
	if a.String() != b.String() {
		t.Fatal("replicas did not converge")
	}
	enc := EncodeSeq(a)
	if !bytes.Equal(EncodeSeq(b), enc) {
		t.Fatal("converged replicas encode differently")
	}
	var w wSeq
	if err := decodeLimited(enc, DefaultLimits(), &w); err != nil {
		t.Fatal(err)
	}
	if w.Zip&(1<<12) == 0 || w.Zip&(1<<6) == 0 {
		t.Fatalf("text and hdr columns not deflated (bits %#x)", w.Zip)
	}
	back, err := DecodeSeq[rune](enc, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, back)
	if back.String() != a.String() || !bytes.Equal(EncodeSeq(back), enc) {
		t.Fatal("decoded state differs")
	}
	t.Logf("%d code points, %d tombstones: %d bytes", a.Len(), a.Tombstones(), len(enc))
}

// A deflated column that inflates past the decoding limit, or past the
// length it declares, is refused before more than that is allocated.
func TestSeqDecodeBomb(t *testing.T) {
	s, _ := seqZipReplicas(t)
	var w wSeq
	if err := decodeLimited(EncodeSeq(s), DefaultLimits(), &w); err != nil {
		t.Fatal(err)
	}
	const big = 8 << 20
	var z bytes.Buffer
	fw, err := flate.NewWriter(&z, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(make([]byte, big)); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		declared uint64
		lim      Limits
		want     error
	}{
		{"declared over the limit", big, Limits{MaxBytes: 1 << 20, MaxElements: 1 << 16}, ErrTooLarge},
		{"declared far over the limit", 1 << 40, DefaultLimits(), ErrTooLarge},
		{"inflates past its declared length", 16384, DefaultLimits(), ErrMalformed},
	} {
		w.Text = append(binary.AppendUvarint(nil, c.declared), z.Bytes()...)
		b, err := encMode.Marshal(&w)
		if err != nil {
			t.Fatal(err)
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		_, err = DecodeSeq[rune](b, c.lim)
		runtime.ReadMemStats(&m1)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
		if n := m1.TotalAlloc - m0.TotalAlloc; n > 1<<20 {
			t.Fatalf("%s: decoding allocated %d bytes", c.name, n)
		}
		t.Logf("%s: %v", c.name, err)
	}
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
	zs, _ := seqZipReplicas(t)
	inputs := [][]byte{EncodeSeq(s), EncodeSeqDelta(ds[0], "A"), EncodeSeqDelta(ds[1], "A"), EncodeSeqDelta(s.Delta(), "A"), EncodeSeq(zs)}
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
