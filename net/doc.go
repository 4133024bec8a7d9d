// Package net moves Concord's bytes: GossipSub topics (gossip), the sync
// stream protocol that carries anti-entropy exchanges, libp2p host
// construction, peer supervision and metrics. The formats of what it moves
// (envelopes, batches, summaries, sync messages, limits, replica IDs) belong
// to package wire. It may import the standard library, libp2p (including
// its network, host and pubsub packages), crdt, store, wire and internal
// packages; never the root package.
//
// # Usage
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
// Gossip and sync. NewGossip runs GossipSub on a host; Gossip.Join
// subscribes to a document's topic (TopicName) and hands its decoded,
// checked messages to a Handler. NewSyncer serves and opens sync streams;
// Syncer.Sync runs one anti-entropy exchange with a peer for a SyncDoc,
// framing the wire.SyncMsg values of its Exchange (the engine's session,
// behind the root package's driver) on the stream; Syncer.Trigger queues
// one to run in the background (coalesced per peer and document, the queue
// bounded, run by at most 64 goroutines, 4 with one peer).
//
// Presence. Gossip.JoinPresence joins a document's presence topic
// (PresenceTopicName): its validator decodes and verifies every
// wire.Presence and hands it to a PresenceHandler, which checks the rest
// and takes it; the handler is also told when a peer subscribes (seen by
// the node's GossipSub tracer), so a presence topic costs no goroutine.
// PresenceTopic.Publish sends one encoded message; PublishFlushed waits
// until it was written to the topic's peers (goodbyes at shutdown).
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
// The supervisor's clock and timers are the time package's: its tests run
// it in a testing/synctest bubble with a fake Dialer, where time.Sleep
// moves the bubble's clock and synctest.Wait lets the supervisor act.
//
// Metrics. NewMetrics(reg) creates the concord_* collectors (connections,
// reconnects, propagation latency, outbox depth, sync, rejections, gossip
// and delta traffic, drops) and registers them on reg only; a nil *Metrics
// records nothing.
package net
