package specdoc

import (
	"bytes"
	"strings"
	"testing"
)

const sample = "# Title\n\n" +
	"```hex id=one\n" +
	"a1 00  # map(1), key 0\n" +
	"01     # value 1\n" +
	"```\n\n" +
	"```cbor-diag id=one\n{0: 1}\n```\n\n" +
	"```text id=name\n/concord/doc/x/1\n```\n\n" +
	"```go\nfmt.Println(\"not marked\")\n```\n\n" +
	"```constants\n# comment\na.B = 1   # trailing\na.C = \"s\"\n```\n"

func TestParse(t *testing.T) {
	s, err := Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Blocks); got != 4 {
		t.Fatalf("%d marked blocks, want 4", got)
	}
	b, err := s.Hex("one")
	if err != nil || !bytes.Equal(b, []byte{0xa1, 0x00, 0x01}) {
		t.Fatalf("Hex = %x, %v", b, err)
	}
	if d, err := s.Diag("one"); err != nil || d != "{0: 1}" {
		t.Fatalf("Diag = %q, %v", d, err)
	}
	if txt, err := s.Text("name"); err != nil || txt != "/concord/doc/x/1" {
		t.Fatalf("Text = %q, %v", txt, err)
	}
	c, err := s.Constants()
	if err != nil || c["a.B"] != "1" || c["a.C"] != `"s"` || len(c) != 2 {
		t.Fatalf("Constants = %v, %v", c, err)
	}
	if errs := s.CompareConstants("a.", map[string]string{"a.B": "1", "a.C": `"t"`, "a.D": "2"}); len(errs) != 2 {
		t.Fatalf("CompareConstants found %v, want a wrong value and a missing constant", errs)
	}
	if _, err := s.Hex("two"); err == nil {
		t.Fatal("Hex of a missing block succeeded")
	}
}

func TestParseRefuses(t *testing.T) {
	for name, src := range map[string]string{
		"duplicate id":  "```hex id=a\n00\n```\n```hex id=a\n01\n```\n",
		"no id":         "```hex\n00\n```\n",
		"bad attribute": "```hex id=a mode\n00\n```\n",
		"unclosed":      "```hex id=a\n00\n",
	} {
		if _, err := Parse(src); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestSetBody(t *testing.T) {
	s, err := Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetHex("one", []byte{0xa1, 0x00, 0x01}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.src, "# map(1)") {
		t.Fatal("unchanged bytes lost their comments")
	}
	if err := s.SetHex("one", []byte{0xa1, 0x00, 0x02}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBody(KindText, "name", "other"); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Hex("one"); !bytes.Equal(b, []byte{0xa1, 0x00, 0x02}) {
		t.Fatalf("after SetHex: %x", b)
	}
	if txt, _ := s.Text("name"); txt != "other" {
		t.Fatalf("after SetBody: %q", txt)
	}
	if !strings.HasPrefix(s.src, "# Title\n") || !strings.Contains(s.src, "not marked") {
		t.Fatal("SetBody changed the prose")
	}
	if err := s.SetBody(KindHex, "missing", "00"); err == nil {
		t.Fatal("SetBody of a missing block succeeded")
	}
}

func TestDiag(t *testing.T) {
	cases := []struct {
		in   []byte
		want string
	}{
		{[]byte{0xa2, 0x00, 0x01, 0x01, 0x20}, "{0: 1, 1: -1}"},
		{[]byte{0x43, '"', 'x', '"'}, `'"x"'`},            // printable bytes
		{[]byte{0x42, 0x00, 0xff}, "h'00ff'"},             // other bytes
		{[]byte{0x43, 0xa1, 0x00, 0xf5}, "<<{0: true}>>"}, // embedded map
		{[]byte{0x82, 0x61, 'a', 0xf6}, `["a", null]`},    // text, null
		{[]byte{0x1b, 0, 0, 0, 0, 0, 0, 1, 0}, "256"},     // non-canonical head
		{[]byte{0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "-18446744073709551616"},
	}
	for _, c := range cases {
		got, err := Diag(c.in)
		if err != nil || got != c.want {
			t.Errorf("Diag(%x) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	long := []byte{0xa1, 0x00, 0x78, 100}
	long = append(long, bytes.Repeat([]byte{'x'}, 100)...)
	got, err := Diag(long)
	if err != nil || got != "{\n  0: \""+strings.Repeat("x", 100)+"\"\n}" {
		t.Errorf("long map laid out as %q, %v", got, err)
	}
	for _, bad := range [][]byte{{0xc1, 0x00}, {0xf9, 0, 0}, {0x5f}, {0x01, 0x02}, {0x62, 'a'}} {
		if _, err := Diag(bad); err == nil {
			t.Errorf("Diag(%x) succeeded", bad)
		}
	}
}

func TestHexBytes(t *testing.T) {
	b, err := HexBytes("00 01 # one\n\n0a0b#x\n")
	if err != nil || !bytes.Equal(b, []byte{0, 1, 0xa, 0xb}) {
		t.Fatalf("HexBytes = %x, %v", b, err)
	}
	if _, err := HexBytes("0g"); err == nil {
		t.Fatal("HexBytes accepted a non-hex digit")
	}
	if got := FormatHex(bytes.Repeat([]byte{1}, 33)); strings.Count(got, "\n") != 2 {
		t.Fatalf("FormatHex laid 33 bytes out as %q", got)
	}
}
