package wire

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/concord-p2p/concord/crdt"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// goldenMessages returns deterministic messages of every kind, signed with
// fixed keys (Ed25519 signatures are deterministic).
func goldenMessages(t testing.TB) (env *Envelope, batch *DeltaBatch, sum *Summary) {
	t.Helper()
	privA, idA := testKey(t, 1)
	privB, idB := testKey(t, 2)
	env = &Envelope{Doc: "todo", Origin: ReplicaFor(idA, 1), Seq: 7, HLC: 0x0001_8f00_0000_0003, Payload: []byte("delta-7")}
	if err := SignEnvelope(privA, env); err != nil {
		t.Fatal(err)
	}
	e2 := Envelope{Doc: "todo", Origin: ReplicaFor(idB, 0x2a), Seq: 1, HLC: 42}
	if err := SignEnvelope(privB, &e2); err != nil {
		t.Fatal(err)
	}
	batch = &DeltaBatch{Envelopes: []Envelope{*env, e2}}
	sum = &Summary{Doc: "todo", Origin: ReplicaFor(idA, 1), VV: crdt.VersionVector{
		ReplicaFor(idA, 1): 7, ReplicaFor(idB, 0x2a): 1,
	}}
	return env, batch, sum
}

// TestGoldenCompat decodes the recorded bytes in testdata/*.cbor and checks
// that re-encoding is byte-identical and signatures still verify. Run with
// -update to rewrite them (only when the wire format changes on purpose).
func TestGoldenCompat(t *testing.T) {
	env, batch, sum := goldenMessages(t)
	lim := DefaultLimits()
	cases := []struct {
		file   string
		encode func() ([]byte, error)
		rt     func(b []byte) ([]byte, error)
	}{
		{"envelope_v1.cbor", func() ([]byte, error) { return EncodeEnvelope(env) }, func(b []byte) ([]byte, error) {
			e, err := DecodeEnvelope(b, lim)
			if err != nil {
				return nil, err
			}
			if err := e.Verify(); err != nil {
				return nil, err
			}
			return EncodeEnvelope(e)
		}},
		{"batch_v1.cbor", func() ([]byte, error) { return EncodeBatch(batch) }, func(b []byte) ([]byte, error) {
			d, err := DecodeBatch(b, lim)
			if err != nil {
				return nil, err
			}
			for i := range d.Envelopes {
				if err := d.Envelopes[i].Verify(); err != nil {
					return nil, err
				}
			}
			return EncodeBatch(d)
		}},
		{"summary_v1.cbor", func() ([]byte, error) { return EncodeSummary(sum) }, func(b []byte) ([]byte, error) {
			s, err := DecodeSummary(b, lim)
			if err != nil {
				return nil, err
			}
			return EncodeSummary(s)
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata", c.file)
			if *update {
				b, err := c.encode()
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			got, err := c.rt(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", got, want)
			}
			fresh, err := c.encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(fresh, want) {
				t.Fatalf("encoder output changed:\n got %x\nwant %x", fresh, want)
			}
		})
	}
}

func TestEnvelopeSignVerify(t *testing.T) {
	env, _, _ := goldenMessages(t)
	if err := env.Verify(); err != nil {
		t.Fatal(err)
	}
	privA, _ := testKey(t, 1)
	_, idB := testKey(t, 2)
	tamper := []func(e *Envelope){
		func(e *Envelope) { e.Doc = "other" },
		func(e *Envelope) { e.Seq++ },
		func(e *Envelope) { e.HLC++ },
		func(e *Envelope) { e.Payload = append([]byte(nil), "delta-8"...) },
		func(e *Envelope) { e.Sig = append([]byte(nil), e.Sig...); e.Sig[0] ^= 1 },
		func(e *Envelope) { e.Sig = nil },
		func(e *Envelope) { e.Origin = ReplicaFor(idB, 1) },               // claims another author
		func(e *Envelope) { e.Origin = e.Origin[:len(e.Origin)-1] + "2" }, // other incarnation
	}
	for i, f := range tamper {
		e := *env
		f(&e)
		if err := e.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tamper %d: Verify = %v, want ErrBadSignature", i, err)
		}
	}
	bad := *env
	bad.Origin = "garbage"
	if err := bad.Verify(); !errors.Is(err, ErrBadReplica) {
		t.Errorf("bad origin: %v", err)
	}
	// Signing as someone else's replica is refused.
	other := Envelope{Doc: "d", Origin: ReplicaFor(idB, 1), Seq: 1}
	if err := SignEnvelope(privA, &other); !errors.Is(err, ErrBadSignature) {
		t.Errorf("SignEnvelope with wrong key = %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	lim := DefaultLimits()
	env, batch, sum := goldenMessages(t)
	envB, _ := EncodeEnvelope(env)
	sumB, _ := EncodeSummary(sum)
	batB, _ := EncodeBatch(batch)

	mustEnc := func(v any) []byte {
		b, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	w := env.wire()
	w2 := w
	w2.V = 2
	w3 := w
	w3.T = TypeSummary
	w4 := w
	w4.Seq = 0
	w5 := w
	w5.Doc = ""
	w6 := w
	w6.Seq = math.MaxUint64 // seq arithmetic would wrap
	w7 := w
	w7.Last = crdt.MaxCounter + 1
	sw := summaryWire{V: ProtocolVersion, T: TypeSummary, Doc: "d", Origin: string(sum.Origin), VV: map[string]uint64{"r": crdt.MaxCounter + 1}}
	small := lim
	small.MaxPayloadBytes = 3

	cases := []struct {
		name string
		err  error
		fn   func() error
	}{
		{"empty", ErrMalformed, func() error { _, err := DecodeEnvelope(nil, lim); return err }},
		{"garbage", ErrMalformed, func() error { _, err := DecodeEnvelope([]byte{0xff, 0x00}, lim); return err }},
		{"trailing", ErrMalformed, func() error { _, err := DecodeEnvelope(append(append([]byte{}, envB...), 0), lim); return err }},
		{"truncated", ErrMalformed, func() error { _, err := DecodeEnvelope(envB[:len(envB)-1], lim); return err }},
		{"version", ErrVersion, func() error { _, err := DecodeEnvelope(mustEnc(w2), lim); return err }},
		{"type", ErrMalformed, func() error { _, err := DecodeEnvelope(mustEnc(w3), lim); return err }},
		{"summary as envelope", ErrMalformed, func() error { _, err := DecodeEnvelope(sumB, lim); return err }},
		{"envelope as batch", ErrMalformed, func() error { _, err := DecodeBatch(envB, lim); return err }},
		{"seq0", ErrMalformed, func() error { _, err := DecodeEnvelope(mustEnc(w4), lim); return err }},
		{"nodoc", ErrMalformed, func() error { _, err := DecodeEnvelope(mustEnc(w5), lim); return err }},
		{"seq above MaxCounter", ErrMalformed, func() error { _, err := DecodeEnvelope(mustEnc(w6), lim); return err }},
		{"last above MaxCounter", ErrMalformed, func() error { _, err := DecodeEnvelope(mustEnc(w7), lim); return err }},
		{"summary counter above MaxCounter", ErrMalformed, func() error { _, err := DecodeSummary(mustEnc(sw), lim); return err }},
		{"sync counter above MaxCounter", ErrMalformed, func() error {
			b, err := EncodeSyncMsg(&SyncMsg{Type: TypeSyncHello, Doc: "d", VV: crdt.VersionVector{"r": crdt.MaxCounter + 1}})
			if err != nil {
				return err
			}
			_, err = DecodeSyncMsg(b, DefaultSyncLimits())
			return err
		}},
		{"payload limit", ErrTooLarge, func() error { _, err := DecodeEnvelope(envB, small); return err }},
		{"message limit", ErrTooLarge, func() error {
			l := lim
			l.MaxMessageBytes = len(batB) - 1
			_, err := DecodeBatch(batB, l)
			return err
		}},
		{"dup key", ErrMalformed, func() error {
			// {0:1, 0:1}
			_, err := DecodeEnvelope([]byte{0xa2, 0x00, 0x01, 0x00, 0x01}, lim)
			return err
		}},
		{"indefinite", ErrMalformed, func() error {
			_, err := DecodeEnvelope([]byte{0xbf, 0x00, 0x01, 0xff}, lim)
			return err
		}},
		{"too many envelopes", ErrTooLarge, func() error {
			l := lim
			l.MaxEnvelopes = 1
			_, err := DecodeBatch(batB, l)
			return err
		}},
		{"array limit", ErrTooLarge, func() error {
			l := lim
			l.MaxEnvelopes = 16
			many := DeltaBatch{}
			for range 17 {
				many.Envelopes = append(many.Envelopes, *env)
			}
			b, _ := EncodeBatch(&many)
			_, err := DecodeBatch(b, l)
			return err
		}},
		{"empty batch", ErrMalformed, func() error {
			b, _ := EncodeBatch(&DeltaBatch{})
			_, err := DecodeBatch(b, lim)
			return err
		}},
		{"vv limit", ErrTooLarge, func() error {
			l := lim
			l.MaxVVEntries = 1
			_, err := DecodeSummary(sumB, l)
			return err
		}},
		{"vv zero entry", ErrMalformed, func() error {
			b := mustEnc(summaryWire{V: 1, T: TypeSummary, Doc: "d", Origin: "o", VV: map[string]uint64{"r": 0}})
			_, err := DecodeSummary(b, lim)
			return err
		}},
		{"deep nesting", ErrTooLarge, func() error {
			b := mustEnc(map[int]any{0: 1, 1: 3, 2: "d", 3: "o", 4: map[string]any{"a": []any{[]any{[]any{1}}}}})
			_, err := DecodeSummary(b, lim)
			return err
		}},
		{"tag", ErrMalformed, func() error {
			b := mustEnc(map[int]any{0: 1, 1: 3, 2: cbor.Tag{Number: 100, Content: "d"}, 3: "o"})
			_, err := DecodeSummary(b, lim)
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.fn(); !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
		})
	}
}

func TestSummaryRoundTrip(t *testing.T) {
	_, _, sum := goldenMessages(t)
	sum.VV["zero"] = 0 // zero entries are not sent
	b, err := EncodeSummary(sum)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSummary(b, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	delete(sum.VV, "zero")
	if !reflect.DeepEqual(got, sum) {
		t.Fatalf("got %+v, want %+v", got, sum)
	}
	empty, err := EncodeSummary(&Summary{Doc: "d", Origin: "o"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := DecodeSummary(empty, DefaultLimits())
	if err != nil || s.VV == nil || len(s.VV) != 0 {
		t.Fatalf("empty VV: %+v %v", s, err)
	}
}

func TestBatchBuilderSize(t *testing.T) {
	priv, id := testKey(t, 3)
	const budget = 4096
	bb := NewBatchBuilder(budget)
	var sent []Envelope
	for seq := uint64(1); seq <= 200; seq++ {
		e := Envelope{Doc: "doc", Origin: ReplicaFor(id, 1), Seq: seq, HLC: seq * 1000, Payload: bytes.Repeat([]byte{byte(seq)}, int(seq%50))}
		if err := SignEnvelope(priv, &e); err != nil {
			t.Fatal(err)
		}
		ok, err := bb.Add(e)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			size := bb.Size()
			b, err := bb.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != size || len(b) > budget {
				t.Fatalf("encoded %d bytes, Size said %d, budget %d", len(b), size, budget)
			}
			d, err := DecodeBatch(b, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			sent = append(sent, d.Envelopes...)
			if ok, err := bb.Add(e); !ok || err != nil {
				t.Fatalf("Add to empty builder: %v %v", ok, err)
			}
		}
		if bb.Size() > budget {
			t.Fatalf("Size %d over budget", bb.Size())
		}
	}
	size := bb.Size()
	b, err := bb.Encode()
	if err != nil || len(b) != size {
		t.Fatalf("final encode: %d vs %d, %v", len(b), size, err)
	}
	d, _ := DecodeBatch(b, DefaultLimits())
	sent = append(sent, d.Envelopes...)
	if len(sent) != 200 {
		t.Fatalf("round-tripped %d envelopes, want 200", len(sent))
	}
	for i := range sent {
		if sent[i].Seq != uint64(i+1) {
			t.Fatalf("envelope %d has seq %d", i, sent[i].Seq)
		}
		if err := sent[i].Verify(); err != nil {
			t.Fatal(err)
		}
	}
	// Array header grows at 24 elements: Size must track it exactly.
	bb = NewBatchBuilder(1 << 20)
	for i := range 300 {
		e := Envelope{Doc: "d", Origin: "o", Seq: uint64(i + 1)}
		if ok, err := bb.Add(e); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if i == 22 || i == 23 || i == 254 || i == 255 || i == 299 {
			size := bb.Size()
			b, _ := EncodeBatch(&bb.batch)
			if len(b) != size {
				t.Fatalf("n=%d: Size %d, encoded %d", i+1, size, len(b))
			}
		}
	}
	huge := Envelope{Doc: "d", Origin: "o", Seq: 1, Payload: make([]byte, 5000)}
	if _, err := NewBatchBuilder(4096).Add(huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized envelope: %v", err)
	}
}
