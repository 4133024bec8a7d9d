package crdt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The B4 editing trace: Martin Kleppmann's keystrokes writing the
// automerge paper (automerge-perf, CC BY 4.0), as copied by Joseph
// Gentle's editing-traces. It is read from ../shared/data beside the
// repository and is not part of it.
const b4File = "automerge-paper.json.gz"

type b4Patch struct {
	pos, del int
	ins      []rune
}

type b4Trace struct {
	start, end string
	patches    []b4Patch
}

var (
	b4Once sync.Once
	b4     *b4Trace
	b4Err  error
)

// b4Path returns the trace's path: ../shared/data next to the module root.
func b4Path() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "data", b4File), nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", os.ErrNotExist
		}
		dir = up
	}
}

func loadB4(tb testing.TB) *b4Trace {
	tb.Helper()
	b4Once.Do(func() {
		p, err := b4Path()
		if err != nil {
			b4Err = err
			return
		}
		f, err := os.Open(p)
		if err != nil {
			b4Err = err
			return
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			b4Err = err
			return
		}
		var raw struct {
			StartContent string `json:"startContent"`
			EndContent   string `json:"endContent"`
			Txns         []struct {
				Patches [][3]json.RawMessage `json:"patches"`
			} `json:"txns"`
		}
		if err := json.NewDecoder(zr).Decode(&raw); err != nil {
			b4Err = err
			return
		}
		t := &b4Trace{start: raw.StartContent, end: raw.EndContent}
		for _, tx := range raw.Txns {
			for _, p := range tx.Patches {
				var bp b4Patch
				var ins string
				if err := json.Unmarshal(p[0], &bp.pos); err != nil {
					b4Err = err
					return
				}
				if err := json.Unmarshal(p[1], &bp.del); err != nil {
					b4Err = err
					return
				}
				if err := json.Unmarshal(p[2], &ins); err != nil {
					b4Err = err
					return
				}
				bp.ins = []rune(ins)
				t.patches = append(t.patches, bp)
			}
		}
		b4 = t
	})
	if b4Err != nil {
		tb.Skipf("B4 trace not available (%v): it is read from ../shared/data/%s beside the repository", b4Err, b4File)
	}
	return b4
}

// replayB4 applies every edit of the trace as one local op.
func replayB4(tb testing.TB, tr *b4Trace) *Text {
	tb.Helper()
	s := NewText()
	if tr.start != "" {
		if _, err := s.Insert("author", 0, []rune(tr.start)...); err != nil {
			tb.Fatal(err)
		}
	}
	for i, p := range tr.patches {
		if p.del > 0 {
			if _, err := s.Delete("author", p.pos, p.del); err != nil {
				tb.Fatalf("edit %d: %v", i, err)
			}
		}
		if len(p.ins) > 0 {
			if _, err := s.Insert("author", p.pos, p.ins...); err != nil {
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
	if len(tr.patches) != 259778 {
		t.Fatalf("trace has %d edits, want 259778", len(tr.patches))
	}
	start := time.Now()
	s := replayB4(t, tr)
	took := time.Since(start)
	if got := s.String(); got != tr.end {
		t.Fatalf("final text differs from endContent: %d vs %d code points", len([]rune(got)), len([]rune(tr.end)))
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
	if back.String() != tr.end || !bytes.Equal(EncodeSeq(back), enc) {
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
		len(enc), float64(len(enc))/float64(len(tr.end)), len(tr.end), w.Runs, strings.Join(sizes, ", "), len(enc)-cols, dec)
	// The target: at most 1.25× the text (Automerge takes 129 kB).
	if len(enc) > len(tr.end)*5/4 {
		t.Errorf("encoded state is %d bytes, over 1.25× the text (%d)", len(enc), len(tr.end)*5/4)
	}
	if dec > time.Second {
		t.Errorf("decoding took %v", dec)
	}
	// With every peer past the end, GC drops the tombstones nothing names.
	n := back.GC(back.Context().VV())
	mustCheck(t, back)
	if back.String() != tr.end {
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
	if s.String() != tr.end {
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
	for _, p := range tr.patches {
		if p.del > 0 {
			d, err := s.Delete("author", p.pos, p.del)
			if err != nil {
				b.Fatal(err)
			}
			ds = append(ds, d)
		}
		if len(p.ins) > 0 {
			d, err := s.Insert("author", p.pos, p.ins...)
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
	if r.String() != tr.end || !bytes.Equal(EncodeSeq(r), EncodeSeq(s)) {
		b.Fatal("the merged replica differs")
	}
}
