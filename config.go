package concord

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/wire"
)

// Config configures a Node. The zero value works: an in-memory node on a
// random loopback port, alone until Connect is called.
type Config struct {
	// DataDir is where the node keeps its Pebble store (deltas, snapshots,
	// outbox, peer book, key). Empty means in memory: nothing survives Close.
	DataDir string
	// ListenAddrs are libp2p multiaddrs. Default (zero Config): TCP and QUIC
	// on 127.0.0.1, random ports. DefaultConfig listens on all interfaces.
	ListenAddrs []string
	// Bootstrap peers (multiaddrs ending in /p2p/<id>) are kept connected by
	// the supervisor, with backoff.
	Bootstrap []string
	// PSK, if set, makes the swarm private: only peers with the same key
	// connect. TCP only (QUIC listen addresses are then a config error).
	PSK pnet.PSK
	// PrivateKey overrides the key kept in the store (a restored key).
	PrivateKey crypto.PrivKey
	// Writers is the default writer allowlist of every document (nil: any
	// peer may write). A Doc option overrides it.
	Writers []peer.ID
	// AckPeers is how many peers must hold an own delta before it leaves
	// the outbox. Default 1.
	AckPeers int
	// SummaryInterval is the mean period of summary beacons (jittered by
	// ±25%). Default 2 s.
	SummaryInterval time.Duration
	// SyncTimeout bounds one anti-entropy exchange. Default 30 s.
	SyncTimeout time.Duration
	// CompactAfter is how many log entries every known peer must hold
	// before they are folded into the snapshot. Default 10,000.
	CompactAfter int
	// CompactRetention: a peer not heard from for this long no longer holds
	// compaction back (it catches up by snapshot when it returns), so the
	// log of a document does not grow forever because of a peer that left.
	// Default 7 days.
	CompactRetention time.Duration
	// SnapshotAfter: a peer that has nothing of a document receives a
	// snapshot instead of the log once the log holds more entries than
	// this. Default 1,000.
	SnapshotAfter int
	// MaxDocs bounds the documents a node hosts at once (each is a topic,
	// goroutines and an in-memory state); Node.Doc beyond it returns
	// ErrTooManyDocs. Default 1024.
	MaxDocs int
	// Registerer receives the node's Prometheus metrics. Default: a fresh
	// registry, available from Node.Registry.
	Registerer prometheus.Registerer
	// Logger. Default: discard.
	Logger *slog.Logger
	// MeshDegree is GossipSub's mesh degree D: how many peers relay each
	// message onwards. Default 6.
	MeshDegree int
	// FastGossip shortens GossipSub heartbeats, for tests.
	FastGossip bool
	// Discovery finds the peers of the node's documents beyond the ones it
	// is connected to: a DHT among Concord peers (protocol prefix
	// /concord, seeded with Bootstrap only, never public peers) on which
	// GossipSub advertises each document's topic and looks up more peers
	// when a topic's mesh is short. A node that knows any one Concord peer
	// then finds the others of its documents. Off in a zero Config, on in
	// DefaultConfig (and so in the demo peer).
	Discovery bool
	// MDNS also finds peers on the local network with multicast DNS (the
	// demo peer's --mdns). Implies Discovery. Never in tests or CI.
	MDNS bool
	// GossipFlushInterval is how long a delta queued for gossip waits for
	// more before its message goes out. Default 0: whatever queued while
	// the previous message was being published goes out at once. Runs of
	// this node's consecutive deltas in one message are sent as one
	// aggregate (signed, checked and stored once), so a longer interval
	// trades latency for less CPU on every receiver.
	GossipFlushInterval time.Duration
	// TrustAuthorChannel skips the Ed25519 check of a delta received
	// straight from its author, whose identity the connection's Noise/TLS
	// handshake already proves; relayed deltas are always checked. It saves
	// CPU where it is scarce (see BENCHMARKS.md). The cost: an
	// author that signs badly can get a neighbour to store a delta that
	// third parties then refuse. Default false: every delta is checked.
	TrustAuthorChannel bool
	// GroupCommitWait, when positive, lets a document's next own delta
	// wait, once the previous one is durable, for the writers that delta
	// answered to write again, so that concurrent writers that each wait
	// for durability share one delta (one signature, one sync) instead of
	// alternating between two. The wait ends when they are back, or after
	// GroupCommitWait, or after as long as the previous delta took to
	// persist; a lone writer never waits. It pays on disks whose sync
	// takes milliseconds; on fast storage (tmpfs) under CPU load it made
	// deltas smaller and throughput lower (BENCHMARKS.md, "Scale: durable
	// throughput"). Default 0: off.
	GroupCommitWait time.Duration
	// PresenceTTL is how long peers keep this node's presence entries
	// without a refresh (the ttl_ms of its presence messages); the node
	// refreshes them every PresenceTTL/3. Default and cap 30 s
	// (MaxPresenceTTL); tests use a second or two.
	PresenceTTL time.Duration
	// Events receives node events (optional callbacks).
	Events Events
	// Gater, if set, filters connections (tests use it to partition peers).
	Gater *cnet.Gater
	// Now is the wall clock (for HLC timestamps). Default time.Now.
	Now func() time.Time
	// features, when not 0, are the optional wire features the node
	// announces and speaks (default wire.SupportedFeatures): tests set
	// fewer to play a node of an older version.
	features wire.Features
}

// DefaultConfig returns the configuration of a real peer: data under
// ./concord-data, listening on all interfaces (TCP and QUIC, random ports),
// finding the peers of its documents through the DHT (Discovery).
func DefaultConfig() Config {
	return Config{
		DataDir:     "./concord-data",
		ListenAddrs: []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"},
		Discovery:   true,
	}
}

func (c *Config) ensureDefaults() {
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
		if c.PSK != nil {
			c.ListenAddrs = c.ListenAddrs[:1]
		}
	}
	if c.AckPeers <= 0 {
		c.AckPeers = 1
	}
	if c.SummaryInterval <= 0 {
		c.SummaryInterval = 2 * time.Second
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = 30 * time.Second
	}
	if c.CompactAfter <= 0 {
		c.CompactAfter = 10_000
	}
	if c.SnapshotAfter <= 0 {
		c.SnapshotAfter = 1000
	}
	if c.CompactRetention <= 0 {
		c.CompactRetention = 7 * 24 * time.Hour
	}
	if c.MaxDocs <= 0 {
		c.MaxDocs = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PresenceTTL <= 0 || c.PresenceTTL > MaxPresenceTTL {
		c.PresenceTTL = MaxPresenceTTL
	}
}

func (c *Config) validate() error {
	if c.PSK != nil && len(c.PSK) != 32 {
		return fmt.Errorf("%w: PSK must be 32 bytes", ErrConfig)
	}
	return nil
}

// Events receives a node's events. Every callback is optional, may be
// called from any goroutine and must not block.
type Events struct {
	// SyncFinished is called after every anti-entropy exchange.
	SyncFinished func(cnet.ExchangeEvent)
	// Equivocation is called when a document receives proof that a writer
	// signed two different deltas with one sequence number.
	Equivocation func(EquivocationEvent)
}

// EquivocationEvent reports a fork: Origin signed two different deltas
// with sequence number Seq. Both are merged (see the README, "Security").
type EquivocationEvent struct {
	Doc    string
	Origin crdt.ReplicaID
	Seq    uint64
	Peer   peer.ID // the peer that sent us the second delta
}
