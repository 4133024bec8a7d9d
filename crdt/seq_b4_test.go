package crdt

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/concord-p2p/concord/internal/b4trace"
)

type b4Trace = b4trace.Trace

// loadB4 returns the B4 trace, or skips the test when it is not there.
func loadB4(tb testing.TB) *b4Trace {
	tb.Helper()
	t, err := b4trace.Load()
	if err != nil {
		tb.Skipf("B4 trace not available (%v): it is read from ../shared/data/%s beside the repository", err, b4trace.File)
	}
	return t
}

// replayB4 applies every edit of the trace as one local op.
func replayB4(tb testing.TB, tr *b4Trace) *Text {
	tb.Helper()
	s := NewText()
	if tr.Start != "" {
		if _, err := s.Insert("author", 0, []rune(tr.Start)...); err != nil {
			tb.Fatal(err)
		}
	}
	for i, p := range tr.Patches {
		if p.Del > 0 {
			if _, err := s.Delete("author", p.Pos, p.Del); err != nil {
				tb.Fatalf("edit %d: %v", i, err)
			}
		}
		if len(p.Ins) > 0 {
			if _, err := s.Insert("author", p.Pos, p.Ins...); err != nil {
				tb.Fatalf("edit %d: %v", i, err)
			}
		}
	}
	return s
}

func TestB4Trace(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 259,778 edits")
	}
	tr := loadB4(t)
	if len(tr.Patches) != 259778 {
		t.Fatalf("trace has %d edits, want 259778", len(tr.Patches))
	}
	start := time.Now()
	s := replayB4(t, tr)
	took := time.Since(start)
	if got := s.String(); got != tr.End {
		t.Fatalf("final text differs from endContent: %d vs %d code points", len([]rune(got)), len([]rune(tr.End)))
	}
	t.Logf("replay %v; %d code points, %d tombstones, %d items", took, s.Len(), s.Tombstones(), s.Items())
	enc := EncodeSeq(s)
	start = time.Now()
	back, err := DecodeSeq[rune](enc, DefaultLimits())
	dec := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, back)
	if back.String() != tr.End || !bytes.Equal(EncodeSeq(back), enc) {
		t.Fatal("decoded state differs")
	}
	var w wSeq
	if err := decodeLimited(enc, DefaultLimits(), &w); err != nil {
		t.Fatal(err)
	}
	stored, cols := make([]int, 0, 7), 0
	for _, c := range w.columns() {
		stored = append(stored, len(*c.b))
		cols += len(*c.b)
	}
	budget := DefaultLimits().MaxBytes
	if err := w.unzip(&budget); err != nil {
		t.Fatal(err)
	}
	var sizes []string
	for i, c := range w.columns() {
		sizes = append(sizes, fmt.Sprintf("%s %d→%d", c.name, len(*c.b), stored[i]))
	}
	t.Logf("encoded %d bytes (%.3f× the text's %d bytes): %d runs; columns (raw→stored) %s; context and framing %d; decoded in %v",
		len(enc), float64(len(enc))/float64(len(tr.End)), len(tr.End), w.Runs, strings.Join(sizes, ", "), len(enc)-cols, dec)
	// The target: at most 1.25× the text (Automerge takes 129 kB).
	if len(enc) > len(tr.End)*5/4 {
		t.Errorf("encoded state is %d bytes, over 1.25× the text (%d)", len(enc), len(tr.End)*5/4)
	}
	if dec > time.Second {
		t.Errorf("decoding took %v", dec)
	}
	// With every peer past the end, GC drops the tombstones nothing names.
	n := back.GC(back.Context().VV())
	mustCheck(t, back)
	if back.String() != tr.End {
		t.Fatal("GC changed the text")
	}
	t.Logf("GC with a floor past everything: dropped %d of %d tombstones; encoded %d bytes", n, s.Tombstones(), len(EncodeSeq(back)))
}

// BenchmarkB4Trace replays the whole trace per iteration, one local op per
// edit, each returning its delta; ns/op is the whole replay. It also
// reports the encoded final state's size and its decoding time.
func BenchmarkB4Trace(b *testing.B) {
	tr := loadB4(b)
	b.ReportAllocs()
	b.ResetTimer()
	var s *Text
	for i := 0; i < b.N; i++ {
		s = replayB4(b, tr)
	}
	b.StopTimer()
	if s.String() != tr.End {
		b.Fatal("final text differs from endContent")
	}
	enc := EncodeSeq(s)
	const rounds = 5
	start := time.Now()
	for i := 0; i < rounds; i++ {
		if _, err := DecodeSeq[rune](enc, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(enc)), "state-bytes")
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/rounds, "decode-ns")
}

// BenchmarkB4Merge merges the trace's 259,778 deltas, in order, into
// another replica: the remote side of BenchmarkB4Trace.
func BenchmarkB4Merge(b *testing.B) {
	tr := loadB4(b)
	s := NewText()
	var ds []*SeqDelta[rune]
	for _, p := range tr.Patches {
		if p.Del > 0 {
			d, err := s.Delete("author", p.Pos, p.Del)
			if err != nil {
				b.Fatal(err)
			}
			ds = append(ds, d)
		}
		if len(p.Ins) > 0 {
			d, err := s.Insert("author", p.Pos, p.Ins...)
			if err != nil {
				b.Fatal(err)
			}
			ds = append(ds, d)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var r *Text
	for i := 0; i < b.N; i++ {
		r = NewText()
		for _, d := range ds {
			r.Merge(d)
		}
	}
	b.StopTimer()
	if r.String() != tr.End || !bytes.Equal(EncodeSeq(r), EncodeSeq(s)) {
		b.Fatal("the merged replica differs")
	}
}
