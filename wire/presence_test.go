package wire

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// goldenPresence returns a signed presence message of a client of peer 1
// and a signed goodbye of peer 1's own entry (Ed25519 signatures are
// deterministic).
func goldenPresence(t testing.TB) (set, bye *Presence) {
	t.Helper()
	priv, id := testKey(t, 1)
	set = &Presence{Doc: "todo", Origin: ReplicaFor(id, 1), Client: "tab-1", Stamp: 1_750_000_000_000, TTL: 30_000,
		State: []byte(`{"color":"#e91e63","cursor":"3@A","name":"alice"}`)}
	bye = &Presence{Doc: "todo", Origin: ReplicaFor(id, 1), Stamp: 1_750_000_000_001, TTL: 30_000}
	for _, p := range []*Presence{set, bye} {
		if err := SignPresence(priv, p); err != nil {
			t.Fatal(err)
		}
	}
	return set, bye
}

// TestPresenceGolden decodes the recorded presence messages in testdata/,
// checks that they verify and re-encode byte for byte, and that the encoder
// still produces them. Run with -update to rewrite them.
func TestPresenceGolden(t *testing.T) {
	set, bye := goldenPresence(t)
	for _, c := range []struct {
		file string
		p    *Presence
	}{{"presence_v1.cbor", set}, {"presence_goodbye_v1.cbor", bye}} {
		t.Run(c.file, func(t *testing.T) {
			fresh, err := EncodePresence(c.p)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", c.file)
			if *update {
				if err := os.WriteFile(path, fresh, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(fresh, want) {
				t.Fatalf("encoder output changed:\n got %x\nwant %x", fresh, want)
			}
			got, err := DecodePresence(want)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Verify(); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.p) {
				t.Fatalf("decodes to %+v, want %+v", got, c.p)
			}
			if got.Goodbye() != (c.p.State == nil) {
				t.Fatalf("Goodbye() = %v", got.Goodbye())
			}
			re, err := EncodePresence(got)
			if err != nil || !bytes.Equal(re, want) {
				t.Fatalf("re-encoding differs (%v):\n got %x\nwant %x", err, re, want)
			}
		})
	}
}

// TestPresenceSignature: every field is covered, a message claiming
// another peer's origin does not verify, and nobody signs as another peer.
func TestPresenceSignature(t *testing.T) {
	set, _ := goldenPresence(t)
	if err := set.Verify(); err != nil {
		t.Fatal(err)
	}
	privA, _ := testKey(t, 1)
	privB, idB := testKey(t, 2)
	tamper := []func(p *Presence){
		func(p *Presence) { p.Doc = "other" },
		func(p *Presence) { p.Client = "tab-2" },
		func(p *Presence) { p.Client = "" },
		func(p *Presence) { p.Stamp++ },
		func(p *Presence) { p.TTL++ },
		func(p *Presence) { p.State = []byte(`{"name":"mallory"}`) },
		func(p *Presence) { p.State = nil }, // a forged goodbye
		func(p *Presence) { p.Sig = append([]byte(nil), p.Sig...); p.Sig[0] ^= 1 },
		func(p *Presence) { p.Sig = nil },
		func(p *Presence) { p.Origin = ReplicaFor(idB, 1) }, // claims another peer
		func(p *Presence) { p.Origin = p.Origin[:len(p.Origin)-1] + "2" },
	}
	for i, f := range tamper {
		p := *set
		f(&p)
		if err := p.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tamper %d: Verify = %v, want ErrBadSignature", i, err)
		}
	}
	// Signed by B under A's origin: refused by the signer, and a
	// signature made anyway does not verify.
	forged := *set
	if err := SignPresence(privB, &forged); !errors.Is(err, ErrBadSignature) {
		t.Errorf("SignPresence with another peer's key = %v", err)
	}
	msg, err := forged.signingBytes()
	if err != nil {
		t.Fatal(err)
	}
	if forged.Sig, err = privB.Sign(msg); err != nil {
		t.Fatal(err)
	}
	if err := forged.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("origin ≠ signer: Verify = %v", err)
	}
	bad := *set
	bad.Origin = "garbage"
	if err := bad.Verify(); !errors.Is(err, ErrBadReplica) {
		t.Errorf("bad origin: %v", err)
	}
	// A delta signature over the same bytes is no presence signature: the
	// domains differ.
	raw, err := encMode.Marshal(set.wire(false))
	if err != nil {
		t.Fatal(err)
	}
	cross := *set
	if cross.Sig, err = privA.Sign(append([]byte(sigDomain), raw...)); err != nil {
		t.Fatal(err)
	}
	if err := cross.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature under the delta domain verifies: %v", err)
	}
}

// presenceMap is the golden message as a CBOR map, to break one rule at a time.
func presenceMap(t testing.TB) map[int]any {
	set, _ := goldenPresence(t)
	return map[int]any{0: 1, 1: TypePresence, 2: set.Doc, 3: string(set.Origin), 4: set.Client, 5: set.Stamp, 6: set.TTL, 7: set.State, 8: set.Sig}
}

func TestDecodePresenceErrors(t *testing.T) {
	enc := func(mod func(m map[int]any)) func() error {
		return func() error {
			m := presenceMap(t)
			mod(m)
			b, err := cbor.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecodePresence(b)
			return err
		}
	}
	set, _ := goldenPresence(t)
	good, err := EncodePresence(set)
	if err != nil {
		t.Fatal(err)
	}
	_, _, sum := goldenMessages(t)
	sumB, err := EncodeSummary(sum)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
		fn   func() error
	}{
		{"empty", ErrMalformed, func() error { _, err := DecodePresence(nil); return err }},
		{"truncated", ErrMalformed, func() error { _, err := DecodePresence(good[:len(good)-1]); return err }},
		{"trailing", ErrMalformed, func() error { _, err := DecodePresence(append(append([]byte{}, good...), 0)); return err }},
		{"oversize", ErrTooLarge, func() error { _, err := DecodePresence(make([]byte, MaxPresenceBytes+1)); return err }},
		{"summary", ErrMalformed, func() error { _, err := DecodePresence(sumB); return err }},
		{"version", ErrVersion, enc(func(m map[int]any) { m[0] = 2 })},
		{"type marker", ErrMalformed, enc(func(m map[int]any) { m[1] = TypeMarker })},
		{"no doc", ErrMalformed, enc(func(m map[int]any) { delete(m, 2) })},
		{"long doc", ErrMalformed, enc(func(m map[int]any) { m[2] = strings.Repeat("d", 1025) })},
		{"no origin", ErrMalformed, enc(func(m map[int]any) { delete(m, 3) })},
		{"long origin", ErrMalformed, enc(func(m map[int]any) { m[3] = strings.Repeat("o", 257) })},
		{"client slash", ErrMalformed, enc(func(m map[int]any) { m[4] = "a/b" })},
		{"client space", ErrMalformed, enc(func(m map[int]any) { m[4] = "a b" })},
		{"client unicode", ErrMalformed, enc(func(m map[int]any) { m[4] = "é" })},
		{"client long", ErrMalformed, enc(func(m map[int]any) { m[4] = strings.Repeat("c", 65) })},
		{"client bytes", ErrMalformed, enc(func(m map[int]any) { m[4] = []byte("tab") })},
		{"stamp 0", ErrMalformed, enc(func(m map[int]any) { m[5] = 0 })},
		{"no stamp", ErrMalformed, enc(func(m map[int]any) { delete(m, 5) })},
		{"stamp negative", ErrMalformed, enc(func(m map[int]any) { m[5] = -1 })},
		{"ttl 0", ErrMalformed, enc(func(m map[int]any) { m[6] = 0 })},
		{"state empty", ErrMalformed, enc(func(m map[int]any) { m[7] = []byte{} })},
		{"state array", ErrMalformed, enc(func(m map[int]any) { m[7] = []byte(`[1]`) })},
		{"state string", ErrMalformed, enc(func(m map[int]any) { m[7] = []byte(`"x"`) })},
		{"state invalid", ErrMalformed, enc(func(m map[int]any) { m[7] = []byte(`{"a":}`) })},
		{"state spaces", ErrMalformed, enc(func(m map[int]any) { m[7] = []byte(`{"a": 1}`) })},
		{"state bad utf8", ErrMalformed, enc(func(m map[int]any) { m[7] = []byte("{\"a\":\"\xff\"}") })},
		{"state text", ErrMalformed, enc(func(m map[int]any) { m[7] = `{"a":1}` })},
		{"state large", ErrTooLarge, enc(func(m map[int]any) {
			m[7] = []byte(`{"a":"` + strings.Repeat("x", MaxPresenceState-7) + `"}`)
		})},
		{"sig large", ErrMalformed, enc(func(m map[int]any) { m[8] = make([]byte, 1025) })},
	}
	for _, c := range cases {
		if err := c.fn(); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	// At the bounds: a state of exactly MaxPresenceState bytes, a client of
	// MaxPresenceClient bytes, every allowed character.
	ok := []func(m map[int]any){
		func(m map[int]any) { m[7] = []byte(`{"a":"` + strings.Repeat("x", MaxPresenceState-8) + `"}`) },
		func(m map[int]any) { m[4] = strings.Repeat("c", MaxPresenceClient) },
		func(m map[int]any) { m[4] = "azAZ09_.-" },
		func(m map[int]any) { delete(m, 4) },
		func(m map[int]any) { delete(m, 7) }, // a goodbye
		func(m map[int]any) { m[9] = "unknown keys are ignored" },
	}
	for i, mod := range ok {
		if err := enc(mod)(); err != nil {
			t.Errorf("valid case %d: %v", i, err)
		}
	}
}

// TestEncodePresenceChecks: the encoder refuses what decoders refuse.
func TestEncodePresenceChecks(t *testing.T) {
	set, _ := goldenPresence(t)
	for i, f := range []func(p *Presence){
		func(p *Presence) { p.State = []byte(`[]`) },
		func(p *Presence) { p.State = []byte{} },
		func(p *Presence) { p.Client = "a/b" },
		func(p *Presence) { p.Doc = "" },
		func(p *Presence) { p.Stamp = 0 },
		func(p *Presence) { p.TTL = 0 },
		func(p *Presence) { p.State = []byte(`{"a":"` + strings.Repeat("x", MaxPresenceState) + `"}`) },
	} {
		p := *set
		f(&p)
		if _, err := EncodePresence(&p); err == nil {
			t.Errorf("case %d: encoded %+v", i, p)
		}
	}
}

// TestPresenceSize: the largest legal message stays within
// MaxPresenceBytes (so the bound refuses nothing honest).
func TestPresenceSize(t *testing.T) {
	priv, id := testKey(t, 1)
	p := &Presence{Doc: strings.Repeat("d", 1024), Origin: ReplicaFor(id, 1<<63), Client: strings.Repeat("c", MaxPresenceClient),
		Stamp: 1 << 63, TTL: 1 << 63, State: []byte(`{"a":"` + strings.Repeat("x", MaxPresenceState-8) + `"}`)}
	if err := SignPresence(priv, p); err != nil {
		t.Fatal(err)
	}
	b, err := EncodePresence(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxPresenceBytes/8*7 {
		t.Fatalf("largest presence is %d bytes, too close to the %d bound", len(b), MaxPresenceBytes)
	}
}
