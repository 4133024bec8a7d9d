package wire

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// nonCanonical writes the CBOR head of major type mt with argument n in the
// longest (8-byte) form, which Core Deterministic Encoding forbids.
func nonCanonical(mt byte, n uint64) []byte {
	b := make([]byte, 9)
	b[0] = mt<<5 | 27
	binary.BigEndian.PutUint64(b[1:], n)
	return b
}

// TestNonCanonicalEnvelope records the decision on canonical CBOR (see
// WIRE.md / README, "Wire"): decoders accept any valid CBOR within the
// limits (no indefinite lengths, no duplicate keys, no tags), canonical or
// not, and nothing that authenticates or identifies an envelope depends on
// the encoding a relay chose. The signature covers Concord's own
// deterministic encoding of the fields, the log stores the re-encoding,
// and the verified-signature cache hashes the re-encoding. So an envelope
// re-encoded with every head in its longest form and its keys in reverse
// order still verifies, and re-encodes to the canonical bytes.
func TestNonCanonicalEnvelope(t *testing.T) {
	env, _, _ := goldenMessages(t)
	env.Last = 9
	priv, _ := testKey(t, 1)
	if err := SignEnvelope(priv, env); err != nil {
		t.Fatal(err)
	}
	canon, err := EncodeEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	w := env.wire()
	type field struct {
		key uint64
		val []byte
	}
	uintf := func(k, v uint64) field { return field{k, nonCanonical(0, v)} }
	textf := func(k uint64, s string) field { return field{k, append(nonCanonical(3, uint64(len(s))), s...)} }
	bytesf := func(k uint64, b []byte) field { return field{k, append(nonCanonical(2, uint64(len(b))), b...)} }
	fields := []field{
		uintf(8, w.Last), bytesf(7, w.Sig), bytesf(6, w.Payload), uintf(5, w.HLC), uintf(4, w.Seq),
		textf(3, w.Origin), textf(2, w.Doc), uintf(1, w.T), uintf(0, w.V),
	}
	b := nonCanonical(5, uint64(len(fields)))
	violations := 1
	for _, f := range fields {
		b = append(b, nonCanonical(0, f.key)...)
		b = append(b, f.val...)
		violations += 2
	}
	violations += len(fields) - 1 // keys out of order
	if bytes.Equal(b, canon) {
		t.Fatal("test encoding is canonical")
	}
	got, err := DecodeEnvelope(b, DefaultLimits())
	if err != nil {
		t.Fatalf("non-canonical envelope (%d violations) refused: %v", violations, err)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("signature depends on the encoding: %v", err)
	}
	re, err := EncodeEnvelope(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(re, canon) {
		t.Fatalf("re-encoding is not the canonical form:\n got %x\nwant %x", re, canon)
	}
	// The payload is kept verbatim: changing one byte of it breaks the
	// signature, whatever the encoding around it.
	got.Payload = append([]byte(nil), got.Payload...)
	got.Payload[0] ^= 1
	if err := got.Verify(); err == nil {
		t.Fatal("a changed payload still verifies")
	}
}
