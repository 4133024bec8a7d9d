package net

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/internal/workpool"
	"github.com/concord-p2p/concord/wire"
)

// TopicName returns the GossipSub topic of a document.
func TopicName(doc string) string { return "/concord/doc/" + doc + "/1" }

// ErrClosed is returned by operations on a closed Gossip or Topic.
var ErrClosed = errors.New("net: closed")

// GossipConfig configures the GossipSub layer.
type GossipConfig struct {
	// FlushInterval is how long a published envelope waits for others to
	// share its message, when it is the first after the queue was idle
	// (what queues while a batch is published goes in the next at once).
	// Default 0: natural batching (whatever queued up while the previous
	// message was being published goes in the next).
	FlushInterval time.Duration
	// QueueSize bounds envelopes waiting to be published per document.
	// Overflow policy: the new envelope is dropped and counted
	// (queue="gossip_out", reason="full"); anti-entropy delivers it later.
	// Default 8192.
	QueueSize int
	// QueueBytes bounds the memory of those envelopes (payloads, counted
	// eight times over when the author's decoded delta rides along); past
	// it new envelopes are dropped and counted like overflow. Default 64 MiB.
	QueueBytes int64
	// NodeQueueBytes bounds the same for all of the node's topics together
	// (drops counted as reason="node_full"). Default 256 MiB (4 ×
	// QueueBytes when that is set and this is not).
	NodeQueueBytes int64
	// PeerQueueSize is GossipSub's per-peer outbound queue and validate
	// queue. Default 1024 (the library's 32 drops bursts).
	PeerQueueSize int
	// Limits bound decoded messages.
	Limits wire.Limits
	// MeshDegree is GossipSub's target mesh degree D (Dlo = D−2, Dhi = 2D).
	// Each peer relays a message to about D others, so D bounds fan-out
	// whatever the swarm size. Default 6 (GossipSub's own).
	MeshDegree int
	// FastHeartbeat shortens GossipSub's heartbeat for tests (mesh forms in
	// tens of milliseconds instead of about a second).
	FastHeartbeat bool
	// Discovery, if set, is the rendezvous GossipSub advertises each joined
	// topic on and looks up more peers in when a topic's mesh is short
	// (Discovery.Rendezvous). Default nil: only the peers the node is
	// connected to.
	Discovery discovery.Discovery
	// NoFloodPublish turns GossipSub's flood publishing off: an author
	// then sends its own messages to its mesh peers only, like a relay,
	// instead of to every topic peer (what it does by default, for the
	// lowest latency). Summaries, which reach an author's connected peers
	// by flood publishing and are not relayed, are then relayed like
	// deltas. For measuring the trade (internal/meshsim).
	NoFloodPublish bool
	// IDontWantThreshold is the size from which a GossipSub peer that
	// receives a message tells its mesh peers IDONTWANT (GossipSub v1.2),
	// so they do not send it a copy. Default 0: the library's 1 KiB, which
	// most deltas are under. For measuring the trade (internal/meshsim).
	IDontWantThreshold int
	// Tracers are more GossipSub tracers (a simulation's counters).
	Tracers []pubsub.RawTracer
	// Features are the optional features the node announces through
	// identify and speaks on its topics (0: wire.SupportedFeatures).
	// Tests set fewer to play a node of an older version.
	Features wire.Features
	Metrics  *Metrics
	Logger   *slog.Logger
}

// DefaultGossipConfig returns the documented defaults.
func DefaultGossipConfig() GossipConfig {
	return GossipConfig{QueueSize: 8192, QueueBytes: 64 << 20, NodeQueueBytes: 256 << 20, PeerQueueSize: 1024, Limits: wire.DefaultLimits()}
}

// maxPubsubMessage is GossipSub's maximum RPC size, in bytes (its default).
// wire.Limits.MaxMessageBytes keeps Concord's own messages below it.
const maxPubsubMessage = 1 << 20

// Handler receives what a document's topic carries.
type Handler interface {
	// Validate checks one envelope: signature, writer allowlist, document.
	// It returns nil to accept, wire.ErrDuplicate for one already held, or an
	// error naming the reason to reject. It runs concurrently.
	Validate(from peer.ID, e *wire.Envelope) error
	// Deliver hands over the validated, non-duplicate envelopes of one
	// message, in order. It runs in GossipSub's validator, concurrently
	// with other messages, and must not wait: a handler queues what it
	// gets (bounded, counting what it drops).
	Deliver(from peer.ID, envs []*wire.Envelope)
	// Summary hands over a summary beacon relayed by from. Its Origin is
	// authenticated only when it names from itself (a direct neighbour over
	// a secure channel); a relayed summary is a hint, not an ack. Like
	// Deliver, it must not wait.
	Summary(from peer.ID, s *wire.Summary)
}

// VersionHolder is implemented by a Handler that can tell what its replica
// holds: the contiguous version vector of its durable deltas, which only
// grows (VersionHolder.Version). Summaries in the node's own name are checked
// against it (see Gossip.validate); without it every summary in our name
// that we did not publish counts as forged.
type VersionHolder interface {
	Version() crdt.VersionVector
}

// Coalescer is implemented by a Handler that can sign runs of its own
// deltas. Before publishing, a topic hands it every run of two or more
// queued envelopes with one origin and consecutive sequence numbers (none
// an aggregate); Coalesce returns one aggregate covering the run — the join
// of its payloads, signed once by the author — or nil to publish the run
// as it is. Receivers then check one signature, merge one delta and store
// one envelope (plus markers) per run instead of one per delta.
type Coalescer interface {
	Coalesce(run []*wire.Envelope) (*wire.Envelope, error)
}

// Gossip is the GossipSub engine of a node: one topic per document.
type Gossip struct {
	h      host.Host
	cfg    GossipConfig
	ps     *pubsub.PubSub
	ctx    context.Context
	cancel context.CancelFunc
	trace  *presenceTracer // presence topics' joins and flushes
	pool   *workpool.Pool  // publishes every topic's queue
	queued atomic.Int64    // queueCost of every topic's queued envelopes

	mu       sync.Mutex
	topics   map[string]*Topic
	presence map[string]*PresenceTopic
	closed   bool
}

// NewGossip starts GossipSub on h.
func NewGossip(h host.Host, cfg GossipConfig) (*Gossip, error) {
	d := DefaultGossipConfig()
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = d.QueueSize
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = d.QueueBytes
	}
	if cfg.PeerQueueSize <= 0 {
		cfg.PeerQueueSize = d.PeerQueueSize
	}
	if cfg.NodeQueueBytes <= 0 {
		cfg.NodeQueueBytes = 4 * cfg.QueueBytes
	}
	if cfg.Limits.MaxMessageBytes == 0 {
		cfg.Limits = d.Limits
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	trace := newPresenceTracer()
	// Deltas carry their author's signature (Envelope.Sig), so GossipSub's
	// own per-message signature would double the Ed25519 work of every hop
	// for nothing: messages are unsigned and identified by a hash of their
	// content. Summaries, which carry no author signature, are trusted for
	// acknowledgments only when they come straight from their origin over
	// the authenticated (Noise/TLS) connection; see Handler.Summary.
	opts := []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string {
			h := sha256.Sum256(m.Data)
			return string(h[:20])
		}),
		pubsub.WithFloodPublish(!cfg.NoFloodPublish),
		pubsub.WithPeerOutboundQueueSize(cfg.PeerQueueSize),
		pubsub.WithValidateQueueSize(cfg.PeerQueueSize),
		pubsub.WithMaxMessageSize(maxPubsubMessage),
		pubsub.WithLogger(cfg.Logger),
		pubsub.WithRPCLogger(slog.New(rpcLogCounter{next: cfg.Logger.Handler(), m: cfg.Metrics}).With("system", "pubsub/rpc")),
		pubsub.WithRawTracer(newPubsubTracer(cfg.Metrics, maxPubsubMessage)),
		pubsub.WithRawTracer(trace),
	}
	if cfg.Discovery != nil {
		opts = append(opts, pubsub.WithDiscovery(presenceOffRendezvous{cfg.Discovery}))
	}
	for _, t := range cfg.Tracers {
		opts = append(opts, pubsub.WithRawTracer(t))
	}
	p := pubsub.DefaultGossipSubParams()
	if cfg.FastHeartbeat {
		p.HeartbeatInitialDelay = 10 * time.Millisecond
		p.HeartbeatInterval = 50 * time.Millisecond
	}
	if cfg.IDontWantThreshold > 0 {
		p.IDontWantMessageThreshold = cfg.IDontWantThreshold
	}
	if cfg.MeshDegree > 0 {
		p.D = cfg.MeshDegree
		p.Dlo = max(cfg.MeshDegree-2, 1)
		p.Dhi = 2 * cfg.MeshDegree
		p.Dscore = min(p.Dscore, p.Dlo)
		p.Dout = min(p.Dout, p.Dlo-1, p.D/2)
		p.Dlazy = cfg.MeshDegree
	}
	opts = append(opts, pubsub.WithGossipSubParams(p))
	// GossipSub registers its stream handlers on frameHost, which counts the
	// inbound RPCs it refuses as too large (see frameWatch).
	ps, err := pubsub.NewGossipSub(ctx, frameHost{Host: h, maxSize: maxPubsubMessage, m: cfg.Metrics}, opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("net: start gossipsub: %w", err)
	}
	// Announce the optional features this node speaks: identify advertises
	// the protocols, and peers check them before sending such messages.
	if cfg.Features == 0 {
		cfg.Features = wire.SupportedFeatures
	}
	for f, proto := range wire.FeatureProtocols {
		if cfg.Features.Has(f) {
			h.SetStreamHandler(protocol.ID(proto), func(s network.Stream) { _ = s.Reset() })
		}
	}
	return &Gossip{h: h, cfg: cfg, ps: ps, ctx: ctx, cancel: cancel, trace: trace,
		pool:   workpool.New(publishWorkers()),
		topics: map[string]*Topic{}, presence: map[string]*PresenceTopic{}}, nil
}

// PeerFeatures returns the optional features peer p announced through
// identify (none before identify has run, or for a peer from before
// features were announced).
func PeerFeatures(h host.Host, p peer.ID) wire.Features {
	var f wire.Features
	for feat, proto := range wire.FeatureProtocols {
		if ok, err := h.Peerstore().SupportsProtocols(p, protocol.ID(proto)); err == nil && len(ok) > 0 {
			f |= feat
		}
	}
	return f
}

// topicSpeaks reports whether every peer of the topic announced f.
func (t *Topic) topicSpeaks(f wire.Features) bool {
	return t.topicFeatures().Has(f)
}

// topicFeatures returns the features every peer of the topic announced.
func (t *Topic) topicFeatures() wire.Features {
	f := t.g.cfg.Features
	if f == 0 {
		f = wire.SupportedFeatures
	}
	for _, p := range t.topic.ListPeers() {
		f &= PeerFeatures(t.g.h, p)
	}
	return f
}

// envFeatures returns the features the envelopes use.
func envFeatures(envs []*wire.Envelope) wire.Features {
	var f wire.Features
	for _, e := range envs {
		f |= e.Features
	}
	return f
}

// Close leaves every topic and stops GossipSub.
func (g *Gossip) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	topics := make([]*Topic, 0, len(g.topics))
	for _, t := range g.topics {
		topics = append(topics, t)
	}
	presence := make([]*PresenceTopic, 0, len(g.presence))
	for _, t := range g.presence {
		presence = append(presence, t)
	}
	g.mu.Unlock()
	for _, t := range topics {
		_ = t.Close()
	}
	for _, t := range presence {
		_ = t.Close()
	}
	g.cancel()
	g.pool.Close()
	return nil
}

// publishWorkers is the number of goroutines publishing for all of a
// node's topics: a publish can wait on GossipSub's event loop, so a few
// per core keep one slow topic from holding the others back.
func publishWorkers() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// Topic is one document's GossipSub topic. It costs no goroutine: what
// arrives is decoded, checked and handed to the handler in the topic's
// validator, and what is published waits in the topic's queue until one
// of the Gossip's publish workers takes it. The node relays the topic (it
// announces it and joins its mesh) without a subscription, since nothing
// is delivered past the validator.
type Topic struct {
	g      *Gossip
	doc    string
	hd     Handler
	topic  *pubsub.Topic
	relay  pubsub.RelayCancelFunc
	ctx    context.Context // cancelled by Close: a publish in flight ends
	cancel context.CancelFunc
	closed atomic.Bool
	once   sync.Once

	mu        sync.Mutex // guards the queue and the fields below
	queue     []*wire.Envelope
	queued    int64      // queueCost of the envelopes in queue
	scheduled bool       // in the publish pool's queue, running, or its flush timer armed
	running   bool       // a worker is publishing what it took
	idle      *sync.Cond // on mu: running went false
	timer     *time.Timer
	co        Coalescer // the handler's, if it coalesces
}

// Join joins doc's topic (it relays the topic, announcing it and joining
// its mesh, without a subscription); hd receives what arrives. Errors:
// ErrClosed, a topic already joined, or a failure of GossipSub wrapped
// with context.
func (g *Gossip) Join(doc string, hd Handler) (*Topic, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	if _, ok := g.topics[doc]; ok {
		return nil, fmt.Errorf("net: topic for %q already joined", doc)
	}
	name := TopicName(doc)
	self := g.h.ID()
	m := g.cfg.Metrics
	ctx, cancel := context.WithCancel(g.ctx)
	t := &Topic{g: g, doc: doc, hd: hd, ctx: ctx, cancel: cancel}
	t.idle = sync.NewCond(&t.mu)
	t.co, _ = hd.(Coalescer)
	// The topic first, then its validator, then the relay that brings
	// messages in: the validator always sees t.topic set.
	var err error
	if t.topic, err = g.ps.Join(name); err != nil {
		cancel()
		return nil, fmt.Errorf("net: join topic %q: %w", doc, err)
	}
	err = g.ps.RegisterTopicValidator(name, func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if from == self {
			return pubsub.ValidationAccept // our own publish
		}
		if t.closed.Load() {
			return pubsub.ValidationIgnore
		}
		d, reason, res := g.validate(doc, hd, msg)
		switch res {
		case pubsub.ValidationReject:
			m.Reject(reason)
		case pubsub.ValidationIgnore:
			m.Ignore(reason)
		case pubsub.ValidationAccept:
			// GossipSub (v0.19) calls a topic's validator once per message:
			// it marks a message seen before validating it. So this is the
			// one delivery (a GossipSub that marked it after would deliver
			// concurrent copies twice: harmless, as the engine drops
			// duplicates, but each costs inbox room). The handler queues
			// it and never waits.
			t.deliver(msg.ReceivedFrom, d)
			if d.summary != nil && !g.cfg.NoFloodPublish {
				// A summary is for the peers its author is connected to
				// (flood publishing sends it to all of them): relayed on,
				// every peer would get every peer's beacons, N² messages
				// per interval, and a relayed summary is only a hint.
				// Without flood publishing an author reaches its mesh
				// only, so summaries are relayed as before.
				return pubsub.ValidationIgnore
			}
			if f := envFeatures(d.envs); f != 0 && !t.topicSpeaks(f) {
				// A topic peer did not announce what these deltas use: take
				// them here, and do not relay them (it would refuse them).
				m.Ignore("relay_needs_feature")
				return pubsub.ValidationIgnore
			}
		}
		return res
	})
	if err != nil {
		cancel()
		_ = t.topic.Close()
		return nil, fmt.Errorf("net: register validator: %w", err)
	}
	if t.relay, err = t.topic.Relay(); err != nil {
		cancel()
		_ = g.ps.UnregisterTopicValidator(name)
		_ = t.topic.Close()
		return nil, fmt.Errorf("net: relay topic %q: %w", doc, err)
	}
	g.topics[doc] = t
	return t, nil
}

// Peers returns the peers known to subscribe to the topic.
func (t *Topic) Peers() []peer.ID { return t.topic.ListPeers() }

// Close leaves the topic. What is still queued is not published (the
// outbox and anti-entropy carry it) and is counted as dropped.
func (t *Topic) Close() error {
	t.once.Do(func() {
		t.closed.Store(true)
		t.cancel()
		t.mu.Lock()
		if t.timer != nil {
			t.timer.Stop()
		}
		for t.running {
			t.idle.Wait()
		}
		t.g.cfg.Metrics.DropN("gossip_out", "closed", len(t.queue))
		t.g.queued.Add(-t.queued)
		t.queue, t.queued = nil, 0
		t.mu.Unlock()
		t.relay()
		_ = t.topic.Close()
		_ = t.g.ps.UnregisterTopicValidator(TopicName(t.doc))
		t.g.mu.Lock()
		delete(t.g.topics, t.doc)
		t.g.mu.Unlock()
	})
	return nil
}
