package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// compactOf returns d's compact form, failing the test when it has none.
func compactOf(t testing.TB, d *State, origin ReplicaID) []byte {
	t.Helper()
	b, ok := EncodeDeltaCompact(d, origin)
	if !ok {
		t.Fatalf("no compact form for %s", EncodeDelta(d, origin))
	}
	return b
}

// The keystroke of the keystroke benchmark (one character into the middle
// of a 10,000-character text at ["text"], typed by its author) is at most
// 30 bytes in the compact form; a backspace, a list value, a replace and
// a keystroke next to another replica's character are logged.
func TestCompactDeltaSize(t *testing.T) {
	// Replica IDs as a node writes them: a peer ID and an incarnation.
	a := &docPeer{id: "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5.1", s: New()}
	a.apply(t, Splice([]string{"text"}, 0, 0, strings.Repeat("x", 10_000)))
	sizes := map[string][2]int{}
	measure := func(name string, ops ...Op) []byte {
		a.ts++
		d, err := a.s.Apply(a.id, a.ts, ops...)
		if err != nil {
			t.Fatal(err)
		}
		c := compactOf(t, d, a.id)
		sizes[name] = [2]int{len(EncodeDelta(d, a.id)), len(c)}
		return c
	}
	key := measure("keystroke", Splice([]string{"text"}, 5_000, 0, "y"))
	measure("next keystroke", Splice([]string{"text"}, 5_001, 0, "z"))
	measure("backspace", SpliceDelete([]string{"text"}, 5_001, 1))
	measure("replace", Splice([]string{"text"}, 10, 1, "Y"))
	a.apply(t, SpliceList([]string{"list"}, 0, 0, js(`0`)), Splice([]string{"doc", "title"}, 0, 0, "T"))
	measure("list value", SpliceList([]string{"list"}, 0, 0, js(`{"a":1}`)))
	measure("list value appended", SpliceList([]string{"list"}, 2, 0, js(`2`)))
	measure("nested path", Splice([]string{"doc", "title"}, 1, 0, "i"))
	// Bob types next to the author's text: his origins are the author's.
	b := &docPeer{id: "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq.2", s: a.s.Clone()}
	b.ts = a.ts
	b.ts++
	d, err := b.s.Apply(b.id, b.ts, Splice([]string{"text"}, 5_000, 0, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := EncodeDeltaCompact(d, b.id); ok {
		t.Fatal("a compact form longer than the classic one")
	}
	c, _, _ := compactForm(d, b.id)
	sizes["foreign origins (55-byte replica ID)"] = [2]int{len(EncodeDelta(d, b.id)), len(c)}
	b.ts++
	d, err = b.s.Apply(b.id, b.ts, Splice([]string{"text"}, 5_001, 0, "c")) // after his own b, before the author's
	if err != nil {
		t.Fatal(err)
	}
	sizes["one foreign origin"] = [2]int{len(EncodeDelta(d, b.id)), len(compactOf(t, d, b.id))}
	for _, name := range []string{"keystroke", "next keystroke", "backspace", "replace", "list value", "list value appended", "nested path", "foreign origins (55-byte replica ID)", "one foreign origin"} {
		t.Logf("%-38s classic %3d bytes, compact %3d bytes", name, sizes[name][0], sizes[name][1])
	}
	if len(key) > 30 {
		t.Fatalf("the keystroke's compact delta is %d bytes: % x", len(key), key)
	}
}

// Random splices on random texts and lists, by several replicas: every
// delta the encoder writes in the compact form decodes to the state the
// classic form decodes to (same encodings both ways, same fields, same
// merge result), and the common ones — a writer's own insert or delete
// into an existing sequence — do have a compact form.
func TestCompactDeltaMatchesClassic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		peers := []*docPeer{{id: "A", s: New()}, {id: "B", s: New()}}
		paths := [][]string{{"t"}, {"m", "u"}, {"l"}}
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			p := peers[rapid.IntRange(0, 1).Draw(t, "who")]
			path := rapid.SampledFrom(paths).Draw(t, "path")
			l := p.s.SeqLen(path)
			at := rapid.IntRange(0, l).Draw(t, "at")
			del := rapid.IntRange(0, min(3, l-at)).Draw(t, "del")
			var op Op
			if path[0] == "l" {
				var vs []json.RawMessage
				for i := range rapid.IntRange(0, 2).Draw(t, "values") {
					vs = append(vs, js(strconv.Itoa(at+i)))
				}
				op = SpliceList(path, at, del, vs...)
			} else {
				op = Splice(path, at, del, rapid.SampledFrom([]string{"", "a", "bc", "δ😀"}).Draw(t, "ins"))
			}
			if del == 0 && op.inserted() == 0 {
				continue
			}
			existed := p.s.KindAt(path) != KindNone
			p.ts++
			d, err := p.s.Apply(p.id, p.ts, op)
			if err != nil {
				t.Fatal(err)
			}
			classic := EncodeDelta(d, p.id)
			compact, ok := EncodeDeltaCompact(d, p.id)
			if !ok {
				if existed {
					t.Fatalf("no compact form for a splice of an existing sequence: %x", classic)
				}
			} else {
				checkCompactMatches(t, compact, classic, p.id)
			}
			// Delivered to the other replica, in one form or the other.
			q := peers[0]
			if q == p {
				q = peers[1]
			}
			if rapid.Bool().Draw(t, "deliver") {
				if ok {
					classic = compact
				}
				got, err := DecodeDelta(classic, p.id, DeltaLimits())
				if err != nil {
					t.Fatal(err)
				}
				q.s.Merge(got)
				q.ts = max(q.ts, p.ts)
			}
		}
	})
}

// checkCompactMatches checks that compact and classic, two encodings of
// one delta of origin, decode to the same state.
func checkCompactMatches(t interface {
	Helper()
	Fatalf(string, ...any)
}, compact, classic []byte, origin ReplicaID) {
	t.Helper()
	if !IsCompactDelta(compact) || IsCompactDelta(classic) {
		t.Fatalf("forms not told apart by their first byte: %x, %x", compact, classic)
	}
	dc, err := DecodeDelta(compact, origin, DeltaLimits())
	if err != nil {
		t.Fatalf("decode compact %x: %v", compact, err)
	}
	dk, err := DecodeDelta(classic, origin, DeltaLimits())
	if err != nil {
		t.Fatalf("decode classic: %v", err)
	}
	if !bytes.Equal(EncodeDelta(dc, origin), classic) || !bytes.Equal(EncodeDelta(dk, origin), classic) {
		t.Fatalf("classic re-encodings differ:\n%x\n%x\n%x", EncodeDelta(dc, origin), EncodeDelta(dk, origin), classic)
	}
	if again, ok := EncodeDeltaCompact(dk, origin); !ok || !bytes.Equal(again, compact) {
		t.Fatalf("the classic form's state re-encodes compact as %x, not %x", again, compact)
	}
	if !reflect.DeepEqual(dc, dk) {
		t.Fatalf("states differ:\n%#v\n%#v", dc, dk)
	}
	if !bytes.Equal(Encode(dc), Encode(dk)) || !bytes.Equal(dc.JSON(), dk.JSON()) {
		t.Fatalf("whole-state encodings differ")
	}
}

// A compact delta that is not canonical, truncated, of an unknown head or
// otherwise broken is refused with a typed error.
func TestCompactDeltaMalformed(t *testing.T) {
	a := &docPeer{id: "A", s: New()}
	a.apply(t, Splice([]string{"t"}, 0, 0, "hello"))
	a.ts++
	d, err := a.s.Apply(a.id, a.ts, Splice([]string{"t"}, 5, 0, "!"))
	if err != nil {
		t.Fatal(err)
	}
	good := compactOf(t, d, a.id)
	// [0, ["t"], 7, 1, null, "!"]
	if want := "86008161740701f66121"; fmt.Sprintf("%x", good) != want {
		t.Fatalf("keystroke: %x, want %s", good, want)
	}
	cases := map[string][]byte{
		"empty array":            {0x80},
		"unknown head":           {0x86, 0x06, 0x81, 0x61, 0x74, 0x07, 0x01, 0xf6, 0x61, 0x21},
		"head, wrong length":     {0x85, 0x00, 0x81, 0x61, 0x74, 0x07, 0x01, 0xf6},
		"non-minimal counter":    {0x86, 0x00, 0x81, 0x61, 0x74, 0x18, 0x07, 0x01, 0xf6, 0x61, 0x21},
		"zero counter":           {0x86, 0x00, 0x81, 0x61, 0x74, 0x00, 0xf6, 0xf6, 0x61, 0x21},
		"ref not before":         {0x86, 0x00, 0x81, 0x61, 0x74, 0x07, 0x07, 0xf6, 0x61, 0x21},
		"own replica by name":    {0x86, 0x00, 0x81, 0x61, 0x74, 0x07, 0x82, 0x61, 0x41, 0x06, 0xf6, 0x61, 0x21},
		"empty text":             {0x86, 0x00, 0x81, 0x61, 0x74, 0x07, 0x01, 0xf6, 0x60},
		"list content in a text": {0x86, 0x00, 0x81, 0x61, 0x74, 0x07, 0x01, 0xf6, 0x81, 0x41, 0x31},
		"tombstone content":      {0x86, 0x00, 0x81, 0x61, 0x74, 0x07, 0x01, 0xf6, 0x01},
		"empty path":             {0x86, 0x00, 0x80, 0x07, 0x01, 0xf6, 0x61, 0x21},
		"delete, no ranges":      {0x84, 0x02, 0x81, 0x61, 0x74, 0x07, 0x80},
		"delete, null ref":       {0x84, 0x02, 0x81, 0x61, 0x74, 0x07, 0x82, 0xf6, 0x01},
		"delete, odd ranges":     {0x84, 0x02, 0x81, 0x61, 0x74, 0x07, 0x81, 0x01},
		"delete, zero length":    {0x84, 0x02, 0x81, 0x61, 0x74, 0x07, 0x82, 0x01, 0x00},
		"invalid JSON value":     {0x86, 0x01, 0x81, 0x61, 0x6c, 0x07, 0xf6, 0xf6, 0x81, 0x41, 0x7b},
		"trailing bytes":         append(append([]byte(nil), good...), 0x00),
	}
	for name, b := range cases {
		_, err := DecodeDelta(b, a.id, DeltaLimits())
		if err == nil {
			t.Errorf("%s: %x decoded", name, b)
			continue
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrVersion) {
			t.Errorf("%s: untyped error %v", name, err)
		}
	}
	for cut := 1; cut < len(good); cut++ {
		if _, err := DecodeDelta(good[:cut], a.id, DeltaLimits()); err == nil || !errors.Is(err, ErrMalformed) {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
	if _, err := DecodeDelta(good, a.id, Limits{MaxBytes: len(good) - 1, MaxElements: 16}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over MaxBytes: %v", err)
	}
	if _, err := Decode(good, DefaultLimits()); err == nil {
		t.Fatal("a compact delta decoded as a whole state")
	}
	if _, ok := JoinDisjointDeltas(a.id, [][]byte{good}, DeltaLimits()); ok {
		t.Fatal("the raw join took a compact delta")
	}
}

// FuzzDecodeCompactDelta: any input either fails with a typed error or
// decodes to a delta whose compact encoding is the input (the form is
// canonical) and whose classic encoding decodes to the same state; the
// delta merges into states holding texts and lists.
func FuzzDecodeCompactDelta(f *testing.F) {
	bases, deltas := seqDocScenario(f)
	for _, x := range deltas {
		if b, ok := EncodeDeltaCompact(x.d, x.origin); ok {
			f.Add(b, uint8(slices.Index(seqDocOrigins, x.origin)))
		}
	}
	f.Add([]byte{0x84, 0x03, 0x81, 0x61, 0x6c, 0x09, 0x84, 0x01, 0x01, 0x82, 0x61, 0x42, 0x02, 0x01}, uint8(0))
	f.Add([]byte{0x87, 0x04, 0x82, 0x61, 0x6d, 0x61, 0x74, 0x09, 0x82, 0x61, 0x43, 0x01, 0xf6, 0x62, 0x61, 0x62, 0x82, 0x02, 0x01}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, o uint8) {
		origin := seqDocOrigins[int(o)%len(seqDocOrigins)]
		d, err := DecodeDelta(b, origin, Limits{MaxBytes: 1 << 12, MaxElements: 1 << 8})
		if err != nil {
			typedDecodeError(t, err)
			return
		}
		if !IsCompactDelta(b) {
			return // the classic form: FuzzSeqDocDecodeDelta's
		}
		again, _, ok := compactForm(d, origin)
		if !ok || !bytes.Equal(again, b) {
			t.Fatalf("decoded %x, re-encoded %x", b, again)
		}
		checkCompactMatches(t, b, EncodeDelta(d, origin), origin)
		if bytes.IndexByte(b, 0) >= 0 && strings.Contains(string(d.JSON()), `\u0000`) {
			// A key holding NUL confuses the sequence patches of a merge
			// (they key paths by joining with NUL) in either form: known,
			// not this decoder's.
			return
		}
		for _, base := range bases {
			s := base.Clone()
			mergeChecked(t, s, d)
			touchSeqs(t, s, append(seqPathsIn(s), seqDocPaths...))
		}
	})
}

// The keystroke of TestCompactDeltaSize encoded and decoded in both forms.
func BenchmarkCompactKeystroke(b *testing.B) {
	a := &docPeer{id: "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5.1", s: New()}
	a.apply(b, Splice([]string{"text"}, 0, 0, strings.Repeat("x", 10_000)))
	a.ts++
	d, err := a.s.Apply(a.id, a.ts, Splice([]string{"text"}, 5_000, 0, "y"))
	if err != nil {
		b.Fatal(err)
	}
	classic, compact := EncodeDelta(d, a.id), compactOf(b, d, a.id)
	b.Run("encode-classic", func(b *testing.B) {
		for range b.N {
			EncodeDelta(d, a.id)
		}
	})
	b.Run("encode-compact", func(b *testing.B) {
		for range b.N {
			EncodeDeltaCompact(d, a.id)
		}
	})
	for name, in := range map[string][]byte{"decode-classic": classic, "decode-compact": compact} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if _, err := DecodeDelta(in, a.id, DeltaLimits()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
