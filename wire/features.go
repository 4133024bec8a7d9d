package wire

// Features are the optional parts of the protocol a peer speaks. A peer
// announces its features — in its sync Hello, and for gossip as libp2p
// protocols identify advertises (FeatureProtocols) — and never sends a
// neighbour a feature it did not announce. A peer that announces nothing
// (one from before features were announced) gets only what every version
// reads: single deltas.
type Features uint64

const (
	// FeatureAggregates: envelopes covering a run of sequence numbers
	// (Last != 0), on gossip and on the sync stream.
	FeatureAggregates Features = 1 << iota
	// FeatureSequences: deltas and snapshots holding texts and lists
	// (document entry keys 4 and 5). An envelope whose payload holds them
	// says so in its Features (key 10), signed, so that no peer sends or
	// relays it to a neighbour that did not announce sequences.
	FeatureSequences
	// FeatureCompactSplice: delta payloads in the compact splice form
	// (crdt.EncodeDeltaCompact, WIRE.md §11.5.7), a CBOR array where the
	// classic form is a map. An envelope whose payload uses it says so in
	// its Features, signed (and says FeatureSequences too: a splice holds
	// a sequence), so that no peer sends or relays it to a neighbour that
	// did not announce the form. Aggregates are written in the classic
	// form.
	FeatureCompactSplice
	// FeatureColumns: sync frames in the column form (EncodeColumns,
	// WIRE.md §10.7), a lossless rearrangement of a message's bytes that
	// compresses better. Sync only: a peer sends it on a stream whose
	// other side announced it in its Hello. Never in an envelope's f.
	FeatureColumns
)

// SupportedFeatures is what this implementation speaks.
const SupportedFeatures = FeatureAggregates | FeatureSequences | FeatureCompactSplice | FeatureColumns

// PayloadFeatures are the features an envelope's f may name: those of
// its payload.
const PayloadFeatures = FeatureAggregates | FeatureSequences | FeatureCompactSplice

// Has reports whether f includes every feature of g.
func (f Features) Has(g Features) bool { return f&g == g }

// FeatureProtocols maps each feature to the libp2p protocol ID a node
// registers to announce it through identify (the streams themselves are
// refused: the protocol only announces).
var FeatureProtocols = map[Features]string{
	FeatureAggregates:    "/concord/feature/aggregates/1",
	FeatureSequences:     "/concord/feature/sequences/1",
	FeatureCompactSplice: "/concord/feature/compact-splice/1",
	FeatureColumns:       "/concord/feature/columns/1",
}
