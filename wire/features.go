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
)

// SupportedFeatures is what this implementation speaks.
const SupportedFeatures = FeatureAggregates

// Has reports whether f includes every feature of g.
func (f Features) Has(g Features) bool { return f&g == g }

// FeatureProtocols maps each feature to the libp2p protocol ID a node
// registers to announce it through identify (the streams themselves are
// refused: the protocol only announces).
var FeatureProtocols = map[Features]string{
	FeatureAggregates: "/concord/feature/aggregates/1",
}
