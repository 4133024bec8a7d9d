// Package net is Concord's network layer: libp2p host construction, wire
// envelopes, peer supervision and metrics. GossipSub topics and the sync
// stream protocol build on these pieces.
//
// # Usage
//
// Identity and replicas. A replica is one incarnation of one peer's store:
//
//	r := net.ReplicaFor(h.ID(), incarnation) // "12D3KooW….1f"
//	id, err := net.PeerOf(r)                 // ErrBadReplica if malformed
//
// Wire. Every message is CBOR (Core Deterministic Encoding) with small
// integer keys, a version field v (ProtocolVersion) and a type tag t
// (TypeEnvelope, TypeBatch, TypeSummary). Decoders take Limits
// (DefaultLimits) and return errors wrapping ErrTooLarge, ErrMalformed or
// ErrVersion; they never panic. An Envelope is one delta signed by its
// author, so a relayed delta still verifies:
//
//	e := &net.Envelope{Doc: "todo", Origin: r, Seq: 1, HLC: hlc, Payload: delta}
//	err := net.SignEnvelope(priv, e)  // priv must be Origin's key
//	err = e.Verify()                  // ErrBadSignature / ErrBadReplica
//
// A GossipSub message carries a DeltaBatch; fill one with a BatchBuilder so
// the encoding never exceeds the budget (Limits.MaxMessageBytes):
//
//	bb := net.NewBatchBuilder(lim.MaxMessageBytes)
//	ok, err := bb.Add(*e)   // ok=false: full, Encode and start a new batch
//	msg, err := bb.Encode()
//	batch, err := net.DecodeBatch(msg, lim)
//
// A Summary (EncodeSummary/DecodeSummary) is the beacon carrying a
// replica's version vector for a document.
//
// Hosts. NewHost builds a libp2p host with TCP and QUIC, Noise and TLS, a
// resource manager, no relay, no NAT port mapping, no hole punching and
// private reachability. LoopbackHostConfig is the preset for tests. A
// private network key (ParsePSK reads swarm.key files) works over TCP only
// (ErrPSKWithQUIC). A Gater lets tests cut peers apart (Partition) and
// rejoin them (Gater.Unblock).
//
//	h, err := net.NewHost(net.LoopbackHostConfig())
//	defer h.Close()
//
// Supervision. A Supervisor keeps connections to bootstrap and known peers,
// redialling with exponential backoff and full jitter (seeded, so schedules
// are reproducible) and reporting each peer's state (connecting, connected,
// backoff, gone) through States and an optional OnEvent callback:
//
//	cfg := net.DefaultSupervisorConfig(net.HostDialer(h))
//	cfg.Metrics = metrics
//	s, err := net.NewSupervisor(cfg)
//	stop := net.WatchHost(h, s) // feeds Connected/Disconnected
//	s.Add(peer.AddrInfo{ID: id, Addrs: addrs})
//	…
//	stop(); s.Close(); h.Close()
//
// Time is injected through Clock; FakeClock (NewFakeClock, Advance) drives
// timers by hand in tests of any package.
//
// Metrics. NewMetrics(reg) creates the concord_* collectors (connections,
// reconnects, propagation latency, outbox depth, sync, rejections, gossip
// and delta traffic, drops) and registers them on reg only; a nil *Metrics
// records nothing.
package net
