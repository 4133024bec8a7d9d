package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"pgregory.net/rapid"
)

const sharedText = "concord/keys/0123456789"

// genCBOR draws one well-formed CBOR item with definite lengths, in any
// width (shortest or not): integers, strings, arrays, maps, tags, floats
// and simple values, and byte strings that hold another item.
func genCBOR(t *rapid.T, depth int) []byte {
	head := func(major byte, arg uint64) []byte {
		w := rapid.SampledFrom([]int{0, 1, 2, 4, 8}).Draw(t, "width")
		switch {
		case w == 0 && arg < 24:
			return []byte{major<<5 | byte(arg)}
		case w <= 1 && arg <= 0xff:
			return []byte{major<<5 | 24, byte(arg)}
		case w <= 2 && arg <= 0xffff:
			return binary.BigEndian.AppendUint16([]byte{major<<5 | 25}, uint16(arg))
		case w <= 4 && arg <= 0xffffffff:
			return binary.BigEndian.AppendUint32([]byte{major<<5 | 26}, uint32(arg))
		}
		return binary.BigEndian.AppendUint64([]byte{major<<5 | 27}, arg)
	}
	num := func() uint64 {
		return rapid.OneOf(rapid.Uint64Range(0, 30), rapid.Uint64Range(0, 70000), rapid.Uint64()).Draw(t, "n")
	}
	kinds := 6
	if depth >= 4 {
		kinds = 3
	}
	switch rapid.IntRange(0, kinds).Draw(t, "kind") {
	case 0:
		return head(rapid.SampledFrom([]byte{0, 1}).Draw(t, "major"), num())
	case 1:
		// Strings often share a prefix with the one before at their
		// place: a prefix of one fixed text, then random bytes.
		s := []byte(sharedText[:rapid.IntRange(0, len(sharedText)).Draw(t, "prefix")])
		s = append(s, rapid.SliceOfN(rapid.Byte(), 0, 20).Draw(t, "s")...)
		return append(head(rapid.SampledFrom([]byte{2, 3}).Draw(t, "major"), uint64(len(s))), s...)
	case 2:
		switch rapid.IntRange(0, 3).Draw(t, "simple") {
		case 0:
			return []byte{0xe0 | byte(rapid.IntRange(0, 23).Draw(t, "v"))}
		case 1:
			return []byte{0xf8, rapid.Byte().Draw(t, "v")}
		case 2:
			return binary.BigEndian.AppendUint32([]byte{0xfa}, rapid.Uint32().Draw(t, "f"))
		}
		return binary.BigEndian.AppendUint64([]byte{0xfb}, rapid.Uint64().Draw(t, "f"))
	case 3:
		n := rapid.IntRange(0, 6).Draw(t, "len")
		out := head(4, uint64(n))
		for range n {
			out = append(out, genCBOR(t, depth+1)...)
		}
		return out
	case 4:
		n := rapid.IntRange(0, 5).Draw(t, "len")
		out := head(5, uint64(n))
		for range n {
			out = append(out, genCBOR(t, depth+1)...)
			out = append(out, genCBOR(t, depth+1)...)
		}
		return out
	case 5:
		return append(head(6, num()), genCBOR(t, depth+1)...)
	}
	inner := genCBOR(t, depth+1) // a byte string holding an item
	return append(head(2, uint64(len(inner))), inner...)
}

// TestColumnsRoundTrip: any well-formed item comes back byte for byte.
func TestColumnsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 20).Draw(t, "items")
		in := head4(uint64(n))
		for range n {
			in = append(in, genCBOR(t, 0)...)
		}
		checkColumnsRoundTrip(t, in)
	})
}

func head4(n uint64) []byte {
	if n < 24 {
		return []byte{0x80 | byte(n)}
	}
	return []byte{0x98, byte(n)}
}

func checkColumnsRoundTrip(t interface {
	Fatalf(string, ...any)
}, in []byte) {
	enc, err := EncodeColumns(in)
	if err != nil {
		t.Fatalf("encode %x: %v", in, err)
	}
	out, err := DecodeColumns(enc, len(in))
	if err != nil {
		t.Fatalf("decode the columns of %x: %v", in, err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("rebuilt\n%x\nfrom\n%x", out, in)
	}
	if n, err := ColumnsSize(enc); err != nil || n != len(in) {
		t.Fatalf("ColumnsSize = %d, %v; want %d", n, err, len(in))
	}
	if _, err := DecodeColumns(enc, len(in)-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("decode within %d bytes: %v, want too large", len(in)-1, err)
	}
}

// TestColumnsRoundTripMessages: every recorded message and the seed sync
// messages, with their envelopes' payloads walked into.
func TestColumnsRoundTripMessages(t *testing.T) {
	files, err := filepath.Glob("testdata/*.cbor")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded messages: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkColumnsRoundTrip(t, b)
	}
	for name, m := range syncSeedMsgs(t) {
		b, err := EncodeSyncMsg(m)
		if err != nil {
			t.Fatal(name, err)
		}
		checkColumnsRoundTrip(t, b)
	}
}

// TestColumnsEncodeRefuses: what the form does not cover.
func TestColumnsEncodeRefuses(t *testing.T) {
	deep := bytes.Repeat([]byte{0x81}, MaxColumnDepth+2)
	deep = append(deep, 0x00)
	// Three levels of maps with 24 small keys: 2 + 24×2 + 24²×2 + 24³ × 2
	// places, past MaxColumns.
	var wide func(level int) []byte
	wide = func(level int) []byte {
		if level == 0 {
			return []byte{0x00}
		}
		b := []byte{0xb8, 24}
		for k := range 24 {
			b = append(b, byte(k))
			b = append(b, wide(level-1)...)
		}
		return b
	}
	for name, in := range map[string][]byte{
		"empty":                 {},
		"trailing byte":         {0x01, 0x02},
		"indefinite array":      {0x9f, 0x01, 0xff},
		"indefinite string":     {0x5f, 0x41, 0x00, 0xff},
		"reserved info":         {0x1c},
		"truncated argument":    {0x19, 0x01},
		"string past the end":   {0x43, 0x01},
		"array past the end":    {0x82, 0x01},
		"map past the end":      {0xa1, 0x01},
		"deeper than the limit": deep,
		"too many places":       wide(3),
	} {
		if _, err := EncodeColumns(in); !errors.Is(err, errColumns) {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
	// Elements of a list share their places: 1025 maps of one key, 4
	// columns.
	long := []byte{0x99, 0x04, 0x01}
	for range 1025 {
		long = append(long, 0xa1, 0x00, 0x00)
	}
	checkColumnsRoundTrip(t, long)
	checkColumnsRoundTrip(t, wide(2))
	var places []byte
	for k := range 40 {
		places = append(places, 0xa1, byte(k%20))
	}
	places = append(places, 0x00)
	checkColumnsRoundTrip(t, places)
}

// TestColumnsDecodeRefuses: a column form that is not exactly one item's.
func TestColumnsDecodeRefuses(t *testing.T) {
	good, err := EncodeColumns([]byte{0x82, 0x18, 0x64, 0x63, 'a', 'b', 'c'})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeColumns(good, 7); err != nil {
		t.Fatal(err)
	}
	// good: size 7, 3 columns of 2, 3 and 5 bytes: the array marked a
	// tuple, its element 0 (100: its difference from 0, zigzagged, 200),
	// its element 1 (no prefix shared).
	form := func(size uint64, cols ...[]byte) []byte {
		b := binary.AppendUvarint(nil, size)
		b = binary.AppendUvarint(b, uint64(len(cols)))
		for _, c := range cols {
			b = binary.AppendUvarint(b, uint64(len(c)))
		}
		for _, c := range cols {
			b = append(b, c...)
		}
		return b
	}
	if !bytes.Equal(form(7, []byte{0x82, 1}, []byte{0x18, 0xc8, 0x01}, []byte{0x63, 0, 'a', 'b', 'c'}), good) {
		t.Fatalf("the form changed: %x", good)
	}
	for name, in := range map[string][]byte{
		"empty":               {},
		"no columns":          form(1),
		"size too small":      form(6, []byte{0x82, 1}, []byte{0x18, 0xc8, 0x01}, []byte{0x63, 0, 'a', 'b', 'c'}),
		"size too large":      form(8, []byte{0x82, 1}, []byte{0x18, 0xc8, 0x01}, []byte{0x63, 0, 'a', 'b', 'c'}),
		"column unused":       form(7, []byte{0x82, 1}, []byte{0x18, 0xc8, 0x01}, []byte{0x63, 0, 'a', 'b', 'c'}, []byte{0}),
		"column missing":      form(7, []byte{0x82, 1}, []byte{0x18, 0xc8, 0x01, 0x63, 0, 'a', 'b', 'c'}),
		"bytes left":          form(7, []byte{0x82, 1, 0x00}, []byte{0x18, 0xc8, 0x01}, []byte{0x63, 0, 'a', 'b', 'c'}),
		"column ends early":   form(7, []byte{0x82, 1}, []byte{0x18}, []byte{0x63, 0, 'a', 'b', 'c'}),
		"prefix too long":     form(7, []byte{0x82, 1}, []byte{0x18, 0xc8, 0x01}, []byte{0x63, 1, 'a', 'b', 'c'}),
		"argument too wide":   form(7, []byte{0x82, 1}, []byte{0x18, 0x80, 0x04}, []byte{0x63, 0, 'a', 'b', 'c'}),
		"reserved info":       form(1, []byte{0x1c}),
		"indefinite":          form(2, []byte{0x9f, 0xff}),
		"bad flag":            form(3, []byte{0x41, 2, 0, 'a'}),
		"nested of other len": form(4, []byte{0x43, 1}, []byte{0x81, 0}, []byte{0x00}),
		"bad array flag":      form(2, []byte{0x81, 2}, []byte{0x00}),
		"tuple of 9":          form(10, []byte{0x89, 1}, []byte{0x00}),
		"empty tuple":         form(1, []byte{0x80, 1}),
		"lengths past end":    append(form(7, []byte{0x82, 1}, []byte{0x18, 0xc8, 0x01}, []byte{0x63, 0, 'a', 'b', 'c'})[:4], 0x09),
		"more than declared":  form(3, []byte{0x8a, 0}, make([]byte, 10)),
		"empty column":        form(7, []byte{0x82, 1}, []byte{0x18, 0xc8, 0x01}, []byte{0x63, 0, 'a', 'b', 'c'}, []byte{}),
		"columns past bytes":  {0x01, 0x05, 0x01, 0x01},
		"huge array":          form(3, []byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0}, []byte{0x00}),
	} {
		if _, err := DecodeColumns(in, 1<<10); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
	if _, err := DecodeColumns(good, 6); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the bound: %v, want too large", err)
	}
}

// FuzzColumns: decoding never panics and stays within its bound; what it
// rebuilds is one well-formed item, whose own column form rebuilds it.
// Whatever item the encoder takes comes back byte for byte.
func FuzzColumns(f *testing.F) {
	for _, m := range syncSeedMsgs(f) {
		b, err := EncodeSyncMsg(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		enc, err := EncodeColumns(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if enc, err := EncodeColumns(b); err == nil {
			checkColumnsRoundTrip(t, b)
			_ = enc
		}
		out, err := DecodeColumns(b, 1<<16)
		if err != nil {
			return
		}
		if len(out) > 1<<16 {
			t.Fatalf("rebuilt %d bytes past the bound", len(out))
		}
		if n, ok := skipItem(out, 0, 0); !ok || n != len(out) {
			t.Fatalf("rebuilt %x, not one item", out)
		}
		// The decoder rebuilds items the encoder may refuse (a byte
		// string flagged raw whose content nests too deep to walk).
		if _, err := EncodeColumns(out); err == nil {
			checkColumnsRoundTrip(t, out)
		}
	})
}
