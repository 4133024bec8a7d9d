// Package wire owns every byte format Concord puts on the wire or in the
// log: delta envelopes and their signatures, aggregates and the markers
// stored for the sequence numbers they cover, batches, summaries, sync
// messages, the limits decoders enforce, replica IDs and document names.
// It is pure: no goroutines, no I/O, no clocks. It may import the standard
// library, the CBOR and Ed25519 libraries, crdt, internal packages, and
// libp2p's core/crypto and core/peer (keys and peer IDs); never libp2p's
// network, host or pubsub packages, nor net, store or the root package.
//
// # Usage
//
// Replicas. A replica is one incarnation of one peer's store:
//
//	r := wire.ReplicaFor(h.ID(), incarnation) // "12D3KooW….1f"
//	id, err := wire.PeerOf(r)                 // ErrBadReplica if malformed
//
// Messages. Every message is CBOR (Core Deterministic Encoding) with small
// integer keys, a version field v (ProtocolVersion) and a type tag t
// (TypeEnvelope, TypeBatch, TypeSummary, TypeMarker, TypeSync…). Decoders
// take Limits (DefaultLimits, or SyncLimits for sync messages) and return
// errors wrapping ErrTooLarge, ErrMalformed or ErrVersion; they never
// panic. An Envelope is one delta signed by its author, so a relayed delta
// still verifies:
//
//	e := &wire.Envelope{Doc: "todo", Origin: r, Seq: 1, HLC: hlc, Payload: delta}
//	err := wire.SignEnvelope(priv, e)  // priv must be Origin's key
//	err = e.Verify()                  // ErrBadSignature / ErrBadReplica
//
// An aggregate (Last > Seq) is one envelope for a run of an author's
// deltas, at most MaxAggregateRun of them; the log stores a marker
// (EncodeMarker, DecodeMarker) at each other sequence number it covers.
//
// A GossipSub message carries a DeltaBatch; fill one with a BatchBuilder so
// the encoding never exceeds the budget (Limits.MaxMessageBytes):
//
//	bb := wire.NewBatchBuilder(lim.MaxMessageBytes)
//	ok, err := bb.Add(*e)   // ok=false: full, Encode and start a new batch
//	msg, err := bb.Encode()
//	batch, err := wire.DecodeBatch(msg, lim)
//
// A Summary (EncodeSummary/DecodeSummary) is the beacon carrying a
// replica's version vector for a document. A SyncMsg
// (EncodeSyncMsg/DecodeSyncMsg) is one message of the anti-entropy
// exchange: Hello, Deltas, Snapshot or Done. CheckDocName tells whether a
// name can name a document on the wire.
//
// A Presence is one peer's (or one of its clients') ephemeral state for a
// document, signed by the peer so a relayed message still verifies:
//
//	p := &wire.Presence{Doc: "todo", Origin: r, Client: "tab-1", Stamp: ms, TTL: 30000, State: []byte(`{"name":"ann"}`)}
//	err := wire.SignPresence(priv, p)
//	b, err := wire.EncodePresence(p)  // ≤ MaxPresenceBytes
//	p, err = wire.DecodePresence(b)   // then p.Verify()
package wire
