package wire

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fuzzLimits are small so the fuzzer reaches the limit checks.
func fuzzLimits() Limits {
	return Limits{MaxMessageBytes: 64 << 10, MaxEnvelopes: 32, MaxVVEntries: 32, MaxPayloadBytes: 4 << 10}
}

func addGoldenSeeds(f *testing.F) {
	for _, name := range []string{"envelope_v1.cbor", "batch_v1.cbor", "summary_v1.cbor"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzDecodeEnvelope: decoding never panics, and whatever decodes
// re-encodes to bytes that decode to the same envelope and re-encode
// identically (the encoding is canonical).
func FuzzDecodeEnvelope(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := fuzzLimits()
		e, err := DecodeEnvelope(b, lim)
		if err != nil {
			return
		}
		_ = e.Verify() // must not panic
		enc, err := EncodeEnvelope(e)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := DecodeEnvelope(enc, lim)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if !reflect.DeepEqual(normEnv(*e), normEnv(*e2)) {
			t.Fatalf("round trip changed envelope: %+v vs %+v", e, e2)
		}
		enc2, _ := EncodeEnvelope(e2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not canonical")
		}
	})
}

func normEnv(e Envelope) Envelope {
	if len(e.Payload) == 0 {
		e.Payload = nil
	}
	if len(e.Sig) == 0 {
		e.Sig = nil
	}
	return e
}

func FuzzDecodeBatch(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := fuzzLimits()
		d, err := DecodeBatch(b, lim)
		if err != nil {
			return
		}
		if len(d.Envelopes) == 0 || len(d.Envelopes) > lim.MaxEnvelopes {
			t.Fatalf("decoded %d envelopes", len(d.Envelopes))
		}
		enc, err := EncodeBatch(d)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		d2, err := DecodeBatch(enc, lim)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		enc2, _ := EncodeBatch(d2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not canonical")
		}
	})
}

func FuzzDecodeSummary(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := fuzzLimits()
		s, err := DecodeSummary(b, lim)
		if err != nil {
			return
		}
		if len(s.VV) > lim.MaxVVEntries {
			t.Fatalf("decoded %d VV entries", len(s.VV))
		}
		enc, err := EncodeSummary(s)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		s2, err := DecodeSummary(enc, lim)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip changed summary: %+v vs %+v", s, s2)
		}
	})
}
