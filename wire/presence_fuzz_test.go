package wire

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// FuzzDecodePresence: decoding never panics; whatever decodes obeys the
// bounds, verifies or not without panicking, and re-encodes to bytes that
// decode to the same message and re-encode identically (the encoding is
// canonical). Its seed corpus is testdata/fuzz/FuzzDecodePresence (see
// TestWritePresenceFuzzCorpus).
func FuzzDecodePresence(f *testing.F) {
	for _, name := range []string{"presence_v1.cbor", "presence_goodbye_v1.cbor"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePresence(b)
		if err != nil {
			return
		}
		if len(p.State) > MaxPresenceState || len(p.Client) > MaxPresenceClient || p.Stamp == 0 || p.TTL == 0 {
			t.Fatalf("decoded out of bounds: %+v", p)
		}
		if p.State != nil && len(p.State) == 0 {
			t.Fatal("decoded an empty, non-nil state")
		}
		_ = p.Verify() // must not panic
		enc, err := EncodePresence(p)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		p2, err := DecodePresence(enc)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if !reflect.DeepEqual(normPresence(*p), normPresence(*p2)) {
			t.Fatalf("round trip changed the message: %+v vs %+v", p, p2)
		}
		enc2, err := EncodePresence(p2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not canonical (%v)", err)
		}
	})
}

func normPresence(p Presence) Presence {
	if len(p.Sig) == 0 {
		p.Sig = nil
	}
	return p
}

// TestWritePresenceFuzzCorpus rewrites testdata/fuzz/FuzzDecodePresence
// from the golden messages and a few malformed ones when
// CONCORD_WRITE_CORPUS=1.
func TestWritePresenceFuzzCorpus(t *testing.T) {
	if os.Getenv("CONCORD_WRITE_CORPUS") != "1" {
		t.Skip("set CONCORD_WRITE_CORPUS=1 to rewrite the seed corpus")
	}
	set, bye := goldenPresence(t)
	files := map[string][]byte{
		"seed-empty":      {},
		"seed-version2":   {0xa2, 0x00, 0x02, 0x01, 0x05},             // {0:2, 1:5}
		"seed-marker":     {0xa3, 0x00, 0x01, 0x01, 0x04, 0x02, 0x03}, // a log marker
		"seed-indefinite": {0xbf, 0x00, 0x01, 0x01, 0x05, 0xff},       // indefinite-length map
		"seed-dupkey":     {0xa3, 0x00, 0x01, 0x01, 0x05, 0x01, 0x05}, // key 1 twice
		"seed-tag":        {0xa2, 0x00, 0x01, 0x01, 0xc1, 0x05},       // a tagged type
	}
	for name, p := range map[string]*Presence{"seed-set": set, "seed-goodbye": bye} {
		b, err := EncodePresence(p)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
		files[name+"-truncated"] = b[:len(b)/2]
	}
	// A message whose state key is present but empty (refused, not a goodbye).
	m := presenceMap(t)
	m[7] = []byte{}
	b, err := encMode.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	files["seed-state-empty"] = b
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodePresence")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
