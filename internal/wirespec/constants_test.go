package wirespec

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/internal/specdoc"
	"github.com/concord-p2p/concord/wire"
)

// envelopeBytes encodes an envelope map with the given fields, bypassing
// the encoder's checks, for probing decoder bounds.
func envelopeBytes(t *testing.T, origin string, sig []byte) []byte {
	t.Helper()
	m := map[int]any{0: 1, 1: 1, 2: Doc, 3: origin, 4: 1, 5: 0}
	if sig != nil {
		m[7] = sig
	}
	b, err := cbor.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// probe reports the largest n in [lo, hi] for which ok(n) holds, checking
// that ok holds at lo and fails at hi.
func probe(t *testing.T, what string, lo, hi int, ok func(n int) bool) string {
	t.Helper()
	if !ok(lo) || ok(hi) {
		t.Errorf("%s: bound not between %d and %d", what, lo, hi)
		return "?"
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if ok(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return strconv.Itoa(lo)
}

// TestSpecConstants checks the constants of WIRE.md named wire.* and
// crdt.*: exported ones by value, unexported decoder bounds by probing the
// decoders at the boundary.
func TestSpecConstants(t *testing.T) {
	spec, err := specdoc.Load()
	if err != nil {
		t.Fatal(err)
	}
	lim := wire.DefaultLimits()
	sl := wire.DefaultSyncLimits()
	itoa := func(n uint64) string { return strconv.FormatUint(n, 10) }
	actual := map[string]string{
		"wire.ProtocolVersion":                      itoa(wire.ProtocolVersion),
		"wire.ProtocolVersionMin":                   itoa(wire.ProtocolVersionMin),
		"wire.ProtocolVersionMax":                   itoa(wire.ProtocolVersionMax),
		"wire.TypeEnvelope":                         itoa(wire.TypeEnvelope),
		"wire.TypeBatch":                            itoa(wire.TypeBatch),
		"wire.TypeSummary":                          itoa(wire.TypeSummary),
		"wire.TypeMarker":                           itoa(wire.TypeMarker),
		"wire.TypeSyncHello":                        itoa(wire.TypeSyncHello),
		"wire.TypeSyncDeltas":                       itoa(wire.TypeSyncDeltas),
		"wire.TypeSyncSnapshot":                     itoa(wire.TypeSyncSnapshot),
		"wire.TypeSyncDone":                         itoa(wire.TypeSyncDone),
		"wire.sigDomain":                            strconv.Quote(SigDomain),
		"wire.TypePresence":                         itoa(wire.TypePresence),
		"wire.presenceSigDomain":                    strconv.Quote(PresenceSigDomain),
		"wire.MaxPresenceBytes":                     fmt.Sprint(wire.MaxPresenceBytes),
		"wire.MaxPresenceState":                     fmt.Sprint(wire.MaxPresenceState),
		"wire.MaxPresenceClient":                    fmt.Sprint(wire.MaxPresenceClient),
		"wire.DefaultLimits().MaxMessageBytes":      fmt.Sprint(lim.MaxMessageBytes),
		"wire.DefaultLimits().MaxEnvelopes":         fmt.Sprint(lim.MaxEnvelopes),
		"wire.DefaultLimits().MaxVVEntries":         fmt.Sprint(lim.MaxVVEntries),
		"wire.DefaultLimits().MaxPayloadBytes":      fmt.Sprint(lim.MaxPayloadBytes),
		"wire.DefaultSyncLimits().MaxFrameBytes":    fmt.Sprint(sl.MaxFrameBytes),
		"wire.DefaultSyncLimits().MaxSnapshotBytes": fmt.Sprint(sl.MaxSnapshotBytes),
		"wire.DefaultSyncLimits().MaxHelloBytes()":  fmt.Sprint(sl.MaxHelloBytes()),
		"wire.MaxAggregateRun":                      fmt.Sprint(wire.MaxAggregateRun),
		"wire.MaxGossipRun":                         fmt.Sprint(wire.MaxGossipRun),
		"wire.MaxGossipSeqs":                        fmt.Sprint(wire.MaxGossipSeqs),
		"wire.MaxSyncSeqs":                          fmt.Sprint(wire.MaxSyncSeqs),
		"wire.maxDocBytes": probe(t, "document name", 1, 1<<12, func(n int) bool {
			return wire.CheckDocName(strings.Repeat("d", n)) == nil
		}),
		"wire.maxReplicaLen": probe(t, "origin", 1, 1<<12, func(n int) bool {
			_, err := wire.DecodeEnvelope(envelopeBytes(t, strings.Repeat("r", n), nil), lim)
			return err == nil
		}),
		"wire.maxSigBytes": probe(t, "signature", 1, 1<<12, func(n int) bool {
			_, err := wire.DecodeEnvelope(envelopeBytes(t, "r", make([]byte, n)), lim)
			return err == nil
		}),
		"crdt.FormatVersion":               itoa(crdt.FormatVersion),
		"crdt.MaxCounter":                  itoa(crdt.MaxCounter),
		"crdt.MaxPathDepth":                fmt.Sprint(crdt.MaxPathDepth),
		"crdt.DefaultLimits().MaxBytes":    fmt.Sprint(crdt.DefaultLimits().MaxBytes),
		"crdt.DefaultLimits().MaxElements": fmt.Sprint(crdt.DefaultLimits().MaxElements),
		"crdt.DeltaLimits().MaxBytes":      fmt.Sprint(crdt.DeltaLimits().MaxBytes),
		"crdt.DeltaLimits().MaxElements":   fmt.Sprint(crdt.DeltaLimits().MaxElements),
		"crdt.hlcLogicalBits":              fmt.Sprint(bitsBelow(uint64(crdt.MakeHLC(1, 0)))),

		"wire.FeatureAggregates":                      fmt.Sprint(uint64(wire.FeatureAggregates)),
		"wire.FeatureSequences":                       fmt.Sprint(uint64(wire.FeatureSequences)),
		"wire.SupportedFeatures":                      fmt.Sprint(uint64(wire.SupportedFeatures)),
		"wire.FeatureProtocols[FeatureAggregates]":    strconv.Quote(wire.FeatureProtocols[wire.FeatureAggregates]),
		"wire.FeatureProtocols[FeatureSequences]":     strconv.Quote(wire.FeatureProtocols[wire.FeatureSequences]),
		"wire.FeatureCompactSplice":                   fmt.Sprint(uint64(wire.FeatureCompactSplice)),
		"wire.FeatureProtocols[FeatureCompactSplice]": strconv.Quote(wire.FeatureProtocols[wire.FeatureCompactSplice]),
		"wire.FeatureColumns":                         fmt.Sprint(uint64(wire.FeatureColumns)),
		"wire.FeatureProtocols[FeatureColumns]":       strconv.Quote(wire.FeatureProtocols[wire.FeatureColumns]),
		"wire.PayloadFeatures":                        fmt.Sprint(uint64(wire.PayloadFeatures)),
		"wire.MaxColumns":                             fmt.Sprint(wire.MaxColumns),
		"wire.MaxColumnDepth":                         fmt.Sprint(wire.MaxColumnDepth),
		"crdt.SeqFormatVersion":                       itoa(crdt.SeqFormatVersion),
		"crdt.DefaultSeqConfig().MaxPending":          fmt.Sprint(crdt.DefaultSeqConfig().MaxPending),
		"crdt.seqZipMin":                              seqZipMin(t),
	}
	for _, err := range spec.CompareConstants("wire.", actual) {
		t.Error(err)
	}
	for _, err := range spec.CompareConstants("crdt.", actual) {
		t.Error(err)
	}
	listed, err := spec.Constants()
	if err != nil {
		t.Fatal(err)
	}
	for name := range listed {
		owner, _, _ := strings.Cut(name, ".")
		switch owner {
		case "wire", "crdt", "engine", "net", "store":
		default:
			t.Errorf("WIRE.md constant %s belongs to no package whose tests check it", name)
		}
	}
}

// bitsBelow returns the number of zero bits below the lowest set bit.
func bitsBelow(v uint64) int {
	n := 0
	for v != 0 && v&1 == 0 {
		v >>= 1
		n++
	}
	return n
}

// seqZipMin probes the shortest column an encoded sequence deflates: the
// text column of a text of n repeated letters (which deflate well) is
// deflated from n = seqZipMin on.
func seqZipMin(t *testing.T) string {
	t.Helper()
	zipped := func(n int) bool {
		s := crdt.New()
		if _, err := s.Apply("r", 1, crdt.Splice([]string{"t"}, 0, 0, strings.Repeat("a", n))); err != nil {
			t.Fatal(err)
		}
		var st struct {
			Root map[string]struct {
				Text struct {
					State []byte `cbor:"1,keyasint"`
				} `cbor:"4,keyasint"`
			} `cbor:"5,keyasint"`
		}
		if err := cbor.Unmarshal(crdt.Encode(s), &st); err != nil {
			t.Fatal(err)
		}
		var seq map[uint64]any
		if err := cbor.Unmarshal(st.Root["t"].Text.State, &seq); err != nil {
			t.Fatal(err)
		}
		return seq[14] != nil
	}
	n := probe(t, "deflated column", 1, 1<<12, func(n int) bool { return !zipped(n) })
	if n == "?" {
		return n
	}
	m, _ := strconv.Atoi(n)
	return strconv.Itoa(m + 1)
}
