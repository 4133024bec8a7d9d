package wire

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/concord-p2p/concord/crdt"
)

// syncFuzzLimits are small so the fuzzer reaches the limit checks.
func syncFuzzLimits() SyncLimits {
	return SyncLimits{MaxFrameBytes: 16 << 10, MaxSnapshotBytes: 64 << 10, Envelope: fuzzLimits()}
}

// syncSeedMsgs are valid messages of every type, the seed corpus.
func syncSeedMsgs(t testing.TB) map[string]*SyncMsg {
	_, id := testKey(t, 7)
	r := ReplicaFor(id, 0x1f)
	env, err := EncodeEnvelope(&Envelope{Doc: "todo", Origin: r, Seq: 3, HLC: 99, Payload: []byte("delta"), Sig: []byte("sig")})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*SyncMsg{
		"seed-hello":       {Type: TypeSyncHello, Doc: "todo", VV: crdt.VersionVector{r: 7}},
		"seed-hello-empty": {Type: TypeSyncHello, Doc: "todo"},
		"seed-deltas":      {Type: TypeSyncDeltas, Envelopes: [][]byte{env, env}},
		"seed-snapshot":    {Type: TypeSyncSnapshot, VV: crdt.VersionVector{r: 2, "x.1": 4}, State: []byte{0xa1, 0x00, 0x01}},
		"seed-done":        {Type: TypeSyncDone, VV: crdt.VersionVector{r: 7}},
	}
}

// normSync drops what the encoding does not distinguish (zero VV entries,
// empty vs nil slices).
func normSync(m SyncMsg) SyncMsg {
	vv := crdt.VersionVector{}
	for r, n := range m.VV {
		if n != 0 {
			vv[r] = n
		}
	}
	m.VV = vv
	if len(m.Envelopes) == 0 {
		m.Envelopes = nil
	}
	if len(m.State) == 0 {
		m.State = nil
	}
	return m
}

// FuzzDecodeSyncMsg: decoding never panics, respects the limits, and
// whatever decodes re-encodes canonically to an equal message.
func FuzzDecodeSyncMsg(f *testing.F) {
	for _, m := range syncSeedMsgs(f) {
		b, err := EncodeSyncMsg(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := syncFuzzLimits()
		m, err := DecodeSyncMsg(b, lim)
		if err != nil {
			return
		}
		switch m.Type {
		case TypeSyncHello, TypeSyncDeltas, TypeSyncSnapshot, TypeSyncDone:
		default:
			t.Fatalf("decoded unknown type %d", m.Type)
		}
		if m.VV == nil {
			t.Fatal("nil VV")
		}
		if len(m.VV) > lim.Envelope.MaxVVEntries {
			t.Fatalf("decoded %d VV entries", len(m.VV))
		}
		if m.Type != TypeSyncSnapshot && len(b) > lim.MaxFrameBytes {
			t.Fatalf("accepted a %d-byte frame of type %d", len(b), m.Type)
		}
		for r := range m.VV {
			if r == "" {
				t.Fatal("empty replica in VV")
			}
		}
		enc, err := EncodeSyncMsg(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := DecodeSyncMsg(enc, lim)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if !reflect.DeepEqual(normSync(*m), normSync(*m2)) {
			t.Fatalf("round trip changed message: %+v vs %+v", m, m2)
		}
		enc2, err := EncodeSyncMsg(m2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not canonical (%v)", err)
		}
	})
}

// TestWriteSyncFuzzCorpus rewrites testdata/fuzz/FuzzDecodeSyncMsg from
// syncSeedMsgs plus a few malformed frames when CONCORD_WRITE_CORPUS=1.
func TestWriteSyncFuzzCorpus(t *testing.T) {
	if os.Getenv("CONCORD_WRITE_CORPUS") != "1" {
		t.Skip("set CONCORD_WRITE_CORPUS=1 to rewrite the seed corpus")
	}
	files := map[string][]byte{
		"seed-empty":        {},
		"seed-type-99":      {0xa2, 0x00, 0x01, 0x01, 0x18, 0x63},                   // {0:1, 1:99}
		"seed-version-2":    {0xa2, 0x00, 0x02, 0x01, 0x0a},                         // {0:2, 1:10}
		"seed-vv-empty-key": {0xa3, 0x00, 0x01, 0x01, 0x0a, 0x03, 0xa1, 0x60, 0x01}, // {0:1,1:10,3:{"":1}}
		"seed-indefinite":   {0xbf, 0x00, 0x01, 0x01, 0x0d, 0xff},                   // indefinite-length map
		"seed-truncated":    {0xa3, 0x00, 0x01, 0x01, 0x0b, 0x04, 0x82, 0x41},
	}
	for name, m := range syncSeedMsgs(t) {
		b, err := EncodeSyncMsg(m)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeSyncMsg")
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
