package net

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// TopicName returns the GossipSub topic of a document.
func TopicName(doc string) string { return "/concord/doc/" + doc + "/1" }

// ErrClosed is returned by operations on a closed Gossip or Topic.
var ErrClosed = errors.New("net: closed")

// GossipConfig configures the GossipSub layer.
type GossipConfig struct {
	// FlushInterval is how long a published envelope waits for others to
	// share its message. Default 0: natural batching (whatever queued up
	// while the previous message was being published goes in the next).
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
	// PeerQueueSize is GossipSub's per-peer outbound queue, validate queue
	// and subscription buffer. Default 1024 (the library's 32 drops bursts).
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
	Metrics       *Metrics
	Logger        *slog.Logger
}

// DefaultGossipConfig returns the documented defaults.
func DefaultGossipConfig() GossipConfig {
	return GossipConfig{QueueSize: 8192, QueueBytes: 64 << 20, PeerQueueSize: 1024, Limits: wire.DefaultLimits()}
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
	// message, in order.
	Deliver(from peer.ID, envs []*wire.Envelope)
	// Summary hands over a summary beacon relayed by from. Its Origin is
	// authenticated only when it names from itself (a direct neighbour over
	// a secure channel); a relayed summary is a hint, not an ack.
	Summary(from peer.ID, s *wire.Summary)
}

// VersionHolder is implemented by a Handler that can tell what its replica
// holds: the contiguous version vector of its durable deltas, which only
// grows (Replica.Version). Summaries in the node's own name are checked
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

	mu     sync.Mutex
	topics map[string]*Topic
	closed bool
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
	if cfg.Limits.MaxMessageBytes == 0 {
		cfg.Limits = d.Limits
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
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
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerOutboundQueueSize(cfg.PeerQueueSize),
		pubsub.WithValidateQueueSize(cfg.PeerQueueSize),
		pubsub.WithMaxMessageSize(maxPubsubMessage),
		pubsub.WithLogger(cfg.Logger),
		pubsub.WithRPCLogger(slog.New(rpcLogCounter{next: cfg.Logger.Handler(), m: cfg.Metrics}).With("system", "pubsub/rpc")),
		pubsub.WithRawTracer(newPubsubTracer(cfg.Metrics, maxPubsubMessage)),
	}
	p := pubsub.DefaultGossipSubParams()
	if cfg.FastHeartbeat {
		p.HeartbeatInitialDelay = 10 * time.Millisecond
		p.HeartbeatInterval = 50 * time.Millisecond
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
	return &Gossip{h: h, cfg: cfg, ps: ps, ctx: ctx, cancel: cancel, topics: map[string]*Topic{}}, nil
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
	g.mu.Unlock()
	for _, t := range topics {
		_ = t.Close()
	}
	g.cancel()
	return nil
}

// Topic is one document's GossipSub topic.
type Topic struct {
	g      *Gossip
	doc    string
	hd     Handler
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	queue  chan *wire.Envelope
	queued atomic.Int64 // queueCost of the envelopes in queue
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

type decoded struct {
	envs    []*wire.Envelope
	summary *wire.Summary
}

// Join subscribes to doc's topic; hd receives what arrives.
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
	err := g.ps.RegisterTopicValidator(name, func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if from == self {
			return pubsub.ValidationAccept // our own publish
		}
		d, reason, res := g.validate(doc, hd, msg)
		switch res {
		case pubsub.ValidationReject:
			m.Reject(reason)
		case pubsub.ValidationIgnore:
			m.Ignore(reason)
		case pubsub.ValidationAccept:
			msg.ValidatorData = d
		}
		return res
	})
	if err != nil {
		return nil, fmt.Errorf("net: register validator: %w", err)
	}
	topic, err := g.ps.Join(name)
	if err != nil {
		_ = g.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("net: join topic: %w", err)
	}
	sub, err := topic.Subscribe(pubsub.WithBufferSize(g.cfg.PeerQueueSize))
	if err != nil {
		_ = topic.Close()
		_ = g.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("net: subscribe: %w", err)
	}
	ctx, cancel := context.WithCancel(g.ctx)
	t := &Topic{g: g, doc: doc, hd: hd, topic: topic, sub: sub, queue: make(chan *wire.Envelope, g.cfg.QueueSize), ctx: ctx, cancel: cancel}
	g.topics[doc] = t
	t.wg.Add(2)
	go t.readLoop()
	go t.publishLoop()
	return t, nil
}

// validate decodes and checks one message; it returns the decoded content,
// a reject reason and the verdict.
func (g *Gossip) validate(doc string, hd Handler, msg *pubsub.Message) (*decoded, string, pubsub.ValidationResult) {
	data := msg.GetData()
	typ, err := wire.MessageType(data, g.cfg.Limits)
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) || len(data) > g.cfg.Limits.MaxMessageBytes {
			return nil, "too_large", pubsub.ValidationReject
		}
		return nil, "malformed", pubsub.ValidationReject
	}
	switch typ {
	case wire.TypeSummary:
		s, err := wire.DecodeSummary(data, g.cfg.Limits)
		if err != nil {
			return nil, reasonOf(err), pubsub.ValidationReject
		}
		if s.Doc != doc {
			return nil, "wrong_doc", pubsub.ValidationReject
		}
		op, err := wire.PeerOf(s.Origin)
		if err != nil {
			return nil, "summary_origin", pubsub.ValidationReject
		}
		if op == g.h.ID() {
			// A summary in our name that this run did not publish (our own
			// publishes are accepted above and their echoes are duplicates).
			// Neither delivered nor relayed. When all it claims is held
			// here, it is most likely a beacon of an earlier run (before a
			// restart) coming back, and it says nothing false about us:
			// stale. A claim beyond what we hold was never ours: forged.
			if vh, ok := hd.(VersionHolder); ok && vh.Version().Covers(s.VV) {
				return nil, "summary_stale", pubsub.ValidationIgnore
			}
			return nil, "summary_forged", pubsub.ValidationReject
		}
		return &decoded{summary: s}, "", pubsub.ValidationAccept
	case wire.TypeBatch:
		b, err := wire.DecodeBatch(data, g.cfg.Limits)
		if err != nil {
			return nil, reasonOf(err), pubsub.ValidationReject
		}
		// Bound the sequence numbers one message may make a receiver store
		// (an aggregate stores a marker for each it covers), before any
		// envelope is checked.
		var covered uint64
		for i := range b.Envelopes {
			e := &b.Envelopes[i]
			if e.Doc != doc {
				return nil, "wrong_doc", pubsub.ValidationReject
			}
			n := e.LastSeq() - e.Seq + 1
			if n > wire.MaxGossipRun {
				return nil, "aggregate_too_long", pubsub.ValidationReject
			}
			if covered += n; covered > wire.MaxGossipSeqs {
				return nil, "too_many_deltas", pubsub.ValidationReject
			}
		}
		d := &decoded{}
		for i := range b.Envelopes {
			e := &b.Envelopes[i]
			switch err := hd.Validate(msg.ReceivedFrom, e); {
			case err == nil:
				d.envs = append(d.envs, e)
			case errors.Is(err, wire.ErrDuplicate):
			default:
				return nil, reasonOf(err), pubsub.ValidationReject
			}
		}
		if len(d.envs) == 0 {
			return nil, "duplicate", pubsub.ValidationIgnore
		}
		return d, "", pubsub.ValidationAccept
	default:
		return nil, "unknown_type", pubsub.ValidationReject
	}
}

// RejectReason is implemented by errors that name their metrics reason.
type RejectReason interface{ Reason() string }

func reasonOf(err error) string {
	var rr RejectReason
	switch {
	case errors.As(err, &rr):
		return rr.Reason()
	case errors.Is(err, wire.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, wire.ErrTooLarge):
		return "too_large"
	case errors.Is(err, wire.ErrVersion):
		return "version"
	case errors.Is(err, wire.ErrBadReplica):
		return "bad_replica"
	}
	return "malformed"
}

func (t *Topic) readLoop() {
	defer t.wg.Done()
	self := t.g.h.ID()
	m := t.g.cfg.Metrics
	for {
		msg, err := t.sub.Next(t.ctx)
		if err != nil {
			return
		}
		if msg.ReceivedFrom == self {
			continue
		}
		d, ok := msg.ValidatorData.(*decoded)
		if !ok {
			continue
		}
		if m != nil {
			m.GossipMessages.WithLabelValues("in").Inc()
		}
		if d.summary != nil {
			t.hd.Summary(msg.ReceivedFrom, d.summary)
			continue
		}
		if m != nil {
			m.Deltas.WithLabelValues("in").Add(float64(len(d.envs)))
		}
		t.hd.Deliver(msg.ReceivedFrom, d.envs)
	}
}

// Publish queues e for gossip. It never blocks: when the queue is full the
// envelope is dropped and counted; anti-entropy delivers it later.
func (t *Topic) Publish(e *wire.Envelope) {
	select {
	case <-t.ctx.Done():
		t.g.cfg.Metrics.Drop("gossip_out", "closed")
		return
	default:
	}
	c := queueCost(e)
	if t.queued.Add(c) > t.g.cfg.QueueBytes {
		t.queued.Add(-c)
		t.g.cfg.Metrics.Drop("gossip_out", "full")
		return
	}
	select {
	case t.queue <- e:
	default:
		t.queued.Add(-c)
		t.g.cfg.Metrics.Drop("gossip_out", "full")
	}
}

// queueCost estimates the memory an envelope holds while queued: a decoded
// delta takes several times its encoding.
func queueCost(e *wire.Envelope) int64 {
	n := int64(len(e.Payload) + len(e.Sig) + 64)
	if e.Delta != nil {
		n *= 8
	}
	return n
}

// take receives from the queue and releases the envelope's cost.
func (t *Topic) take(e *wire.Envelope) *wire.Envelope {
	t.queued.Add(-queueCost(e))
	return e
}

// PublishSummary publishes a summary beacon now.
func (t *Topic) PublishSummary(ctx context.Context, s *wire.Summary) error {
	b, err := wire.EncodeSummary(s)
	if err != nil {
		return err
	}
	if err := t.topic.Publish(ctx, b); err != nil {
		return fmt.Errorf("net: publish summary: %w", err)
	}
	if m := t.g.cfg.Metrics; m != nil {
		m.GossipMessages.WithLabelValues("out").Inc()
	}
	return nil
}

// Peers returns the peers known to subscribe to the topic.
func (t *Topic) Peers() []peer.ID { return t.topic.ListPeers() }

func (t *Topic) publishLoop() {
	defer t.wg.Done()
	bb := wire.NewBatchBuilder(t.g.cfg.Limits.MaxMessageBytes)
	m := t.g.cfg.Metrics
	taken := make([]*wire.Envelope, 0, 64)
	defer func() {
		// Closing: what is still taken, batched or queued is not published
		// (the outbox and anti-entropy carry it); count it.
		m.DropN("gossip_out", "closed", len(taken)+bb.Len()+len(t.queue))
	}()
	flush := func() {
		if bb.Len() == 0 {
			return
		}
		n := bb.Len()
		b, err := bb.Encode()
		if err != nil {
			m.DropN("gossip_out", "encode", n)
			return
		}
		if err := t.topic.Publish(t.ctx, b); err != nil {
			m.DropN("gossip_out", "publish", n)
			return
		}
		if m != nil {
			m.GossipMessages.WithLabelValues("out").Inc()
			m.Deltas.WithLabelValues("out").Add(float64(n))
		}
	}
	add := func(e *wire.Envelope) {
		ok, err := bb.Add(*e)
		if err != nil {
			// Too big for one message: the sync stream carries it.
			m.Drop("gossip_out", "too_large")
			return
		}
		if !ok {
			flush()
			if ok, _ = bb.Add(*e); !ok {
				m.Drop("gossip_out", "too_large")
			}
		}
	}
	co, _ := t.hd.(Coalescer)
	for {
		select {
		case <-t.ctx.Done():
			return
		case e := <-t.queue:
			// Natural batching: take whatever is queued now (at most
			// maxTake), publish it, repeat. Under load batches grow while
			// Publish runs; an idle writer's delta goes out at once.
			// FlushInterval, if set, waits that long for more.
			taken = append(taken[:0], t.take(e))
			var timer <-chan time.Time
			if t.g.cfg.FlushInterval > 0 {
				timer = time.After(t.g.cfg.FlushInterval)
			}
		collect:
			for len(taken) < maxTake {
				select {
				case e := <-t.queue:
					taken = append(taken, t.take(e))
					continue
				default:
				}
				if timer == nil {
					break collect
				}
				select {
				case e := <-t.queue:
					taken = append(taken, t.take(e))
				case <-timer:
					break collect
				case <-t.ctx.Done():
					return
				}
			}
			for _, e := range coalesceRuns(co, taken, t.g.cfg.Limits, t.g.cfg.Logger) {
				add(e)
			}
			clear(taken)
			taken = taken[:0]
			flush()
		}
	}
}

// maxTake bounds the envelopes the publisher takes from its queue at once
// (and so the deltas of one aggregate).
const maxTake = wire.MaxGossipRun

// coalesceRuns replaces each run of two or more envelopes with one origin
// and consecutive sequence numbers by co's aggregate. A run is cut where
// its payloads would exceed half a payload budget, so that the aggregate
// (at most their sum) always fits in one message.
func coalesceRuns(co Coalescer, envs []*wire.Envelope, lim wire.Limits, log *slog.Logger) []*wire.Envelope {
	if co == nil || len(envs) < 2 {
		return envs
	}
	budget := min(lim.MaxPayloadBytes, lim.MaxMessageBytes) / 2
	out := envs[:0:0]
	emit := func(run []*wire.Envelope) {
		if len(run) < 2 {
			out = append(out, run...)
			return
		}
		agg, err := co.Coalesce(run)
		if err != nil || agg == nil {
			if err != nil {
				log.Warn("coalesce failed; publishing the run", "doc", run[0].Doc, "err", err)
			}
			out = append(out, run...)
			return
		}
		out = append(out, agg)
	}
	start, bytes := 0, 0
	for i, e := range envs {
		if i > start {
			prev := envs[i-1]
			if e.Origin != prev.Origin || e.Last != 0 || prev.Last != 0 || e.Seq != prev.Seq+1 ||
				i-start >= wire.MaxAggregateRun || bytes+len(e.Payload) > budget {
				emit(envs[start:i])
				start, bytes = i, 0
			}
		}
		bytes += len(e.Payload)
	}
	emit(envs[start:])
	return out
}

// Close leaves the topic.
func (t *Topic) Close() error {
	t.once.Do(func() {
		t.cancel()
		t.sub.Cancel()
		t.wg.Wait()
		_ = t.topic.Close()
		_ = t.g.ps.UnregisterTopicValidator(TopicName(t.doc))
		t.g.mu.Lock()
		delete(t.g.topics, t.doc)
		t.g.mu.Unlock()
	})
	return nil
}
