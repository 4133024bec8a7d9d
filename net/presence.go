package net

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// Presence moves a document's presence messages (wire.Presence) on a
// GossipSub topic of their own. Only peers that speak presence join it, so
// no feature is announced: joining is the announcement. The topic's
// validator decodes and verifies every message and hands it to the
// handler, which checks the rest (writer allowlist, stamps, bounds) and
// takes it; GossipSub relays only what it took. Presence never touches the
// log, the outbox, snapshots or sync streams.

// PresenceTopicName returns the presence topic of a document.
func PresenceTopicName(doc string) string { return presenceTopicPrefix + doc + "/1" }

const presenceTopicPrefix = "/concord/presence/"

// ErrIgnore, wrapped in an error a PresenceHandler's ValidatePresence
// returns, drops the message quietly (not relayed, counted as a drop, no
// penalty) instead of rejecting it.
var ErrIgnore = errors.New("net: ignore")

// PresenceHandler receives what a document's presence topic carries.
type PresenceHandler interface {
	// ReceivePresence takes a decoded message that is for the topic's
	// document and carries a valid signature of its origin's peer: it
	// checks the writer allowlist and the receiver's own rules and, when
	// they pass, applies it, in one step (so that a check cannot be
	// overtaken by another message of the same key). It returns nil when
	// it took the message (GossipSub relays it), an error wrapping
	// ErrIgnore to drop it quietly, or another error to reject it; the
	// error's Reason() method, if it has one, names the reason counted in
	// concord_dropped_total{queue="presence"}. It runs on GossipSub's
	// validation goroutines, concurrently, and must not block.
	ReceivePresence(from peer.ID, m *wire.Presence) error
	// PresencePeerJoined tells that p subscribed to the topic, so the
	// owner can send its entries early: a late joiner then sees them
	// within about a heartbeat. It runs on GossipSub's event loop and must
	// not block (nor call into GossipSub).
	PresencePeerJoined(p peer.ID)
}

// PresenceTopic is one document's presence topic. It costs no goroutine:
// messages are taken in the topic's validator, and peers joining are seen
// by the node's GossipSub tracer. The node relays the topic (it announces
// it and joins its mesh) without a subscription, since nothing is
// delivered past the validator.
type PresenceTopic struct {
	g      *Gossip
	doc    string
	topic  *pubsub.Topic
	relay  pubsub.RelayCancelFunc
	closed atomic.Bool
	once   sync.Once
}

// JoinPresence registers the validator of doc's presence topic and joins
// the topic; hd receives what arrives and who joins. Errors: ErrClosed,
// or a failure of GossipSub wrapped with context.
func (g *Gossip) JoinPresence(doc string, hd PresenceHandler) (*PresenceTopic, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	if _, ok := g.presence[doc]; ok {
		return nil, fmt.Errorf("net: presence topic for %q already joined", doc)
	}
	name := PresenceTopicName(doc)
	self := g.h.ID()
	m := g.cfg.Metrics
	err := g.ps.RegisterTopicValidator(name, func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if from == self {
			return pubsub.ValidationAccept // our own publish
		}
		p, reason := validatePresence(doc, msg.GetData())
		if reason != "" {
			m.Reject("presence_" + reason)
			return pubsub.ValidationReject
		}
		if err := hd.ReceivePresence(msg.ReceivedFrom, p); err != nil {
			m.Drop("presence", presenceReason(err))
			if errors.Is(err, ErrIgnore) {
				return pubsub.ValidationIgnore
			}
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	})
	if err != nil {
		return nil, fmt.Errorf("net: register presence validator: %w", err)
	}
	t := &PresenceTopic{g: g, doc: doc}
	if t.topic, err = g.ps.Join(name); err == nil {
		if t.relay, err = t.topic.Relay(); err != nil {
			_ = t.topic.Close()
		}
	}
	if err != nil {
		_ = g.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("net: join presence topic %q: %w", doc, err)
	}
	g.presence[doc] = t
	g.trace.joined(name, hd)
	return t, nil
}

// presenceReason is the reason a handler's refusal is counted under: its
// Reason(), or "refused".
func presenceReason(err error) string {
	var rr RejectReason
	if errors.As(err, &rr) {
		return rr.Reason()
	}
	return "refused"
}

// presenceOffRendezvous keeps presence topics out of the topic rendezvous
// (GossipConfig.Discovery): a presence topic's peers are its document
// topic's, which is advertised and looked up already, so advertising both
// would only double the records and lookups. Other namespaces pass
// through. (GossipSub names a topic's namespace "floodsub:" + topic.)
type presenceOffRendezvous struct{ discovery.Discovery }

// presenceAdvertTTL is what Advertise answers for a presence topic: when
// to ask again.
const presenceAdvertTTL = 24 * time.Hour

func isPresenceNS(ns string) bool {
	return strings.HasPrefix(strings.TrimPrefix(ns, "floodsub:"), presenceTopicPrefix)
}

// Advertise advertises ns unless it is a presence topic's.
func (d presenceOffRendezvous) Advertise(ctx context.Context, ns string, opts ...discovery.Option) (time.Duration, error) {
	if isPresenceNS(ns) {
		return presenceAdvertTTL, nil
	}
	return d.Discovery.Advertise(ctx, ns, opts...)
}

// FindPeers looks peers of ns up unless it is a presence topic's (then
// it finds none).
func (d presenceOffRendezvous) FindPeers(ctx context.Context, ns string, opts ...discovery.Option) (<-chan peer.AddrInfo, error) {
	if isPresenceNS(ns) {
		ch := make(chan peer.AddrInfo)
		close(ch)
		return ch, nil
	}
	return d.Discovery.FindPeers(ctx, ns, opts...)
}

// validatePresence decodes and checks a message for doc: it returns the
// message, or the reason to reject it.
func validatePresence(doc string, data []byte) (*wire.Presence, string) {
	p, err := wire.DecodePresence(data)
	if err != nil {
		return nil, reasonOf(err)
	}
	if p.Doc != doc {
		return nil, "wrong_doc"
	}
	if err := p.Verify(); err != nil {
		return nil, reasonOf(err)
	}
	return p, ""
}

// Publish publishes one encoded presence message (see wire.EncodePresence)
// within ctx. Errors: ErrClosed after Close, or GossipSub's, wrapped.
func (t *PresenceTopic) Publish(ctx context.Context, data []byte) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if err := t.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("net: publish presence on %q: %w", t.doc, err)
	}
	return nil
}

// Peers returns the peers known to subscribe to the presence topic.
func (t *PresenceTopic) Peers() []peer.ID { return t.topic.ListPeers() }

// Close leaves the topic. It is idempotent.
func (t *PresenceTopic) Close() error {
	t.once.Do(func() {
		t.closed.Store(true)
		name := PresenceTopicName(t.doc)
		t.g.trace.left(name)
		t.relay()
		_ = t.topic.Close()
		_ = t.g.ps.UnregisterTopicValidator(name)
		t.g.mu.Lock()
		delete(t.g.presence, t.doc)
		t.g.mu.Unlock()
	})
	return nil
}
