package net

import (
	"context"
	"errors"
	"fmt"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// Presence moves a document's presence messages (wire.Presence) on a
// GossipSub topic of their own. Only peers that speak presence subscribe to
// it, so no feature is announced: subscribing is the announcement. The
// topic's validator decodes and verifies every message and asks the
// handler about the rest (writer allowlist, stamps, bounds); GossipSub
// relays only what it accepted. Presence never touches the log, the
// outbox, snapshots or sync streams.

// PresenceTopicName returns the presence topic of a document.
func PresenceTopicName(doc string) string { return "/concord/presence/" + doc + "/1" }

// ErrIgnore, wrapped in an error a PresenceHandler's ValidatePresence
// returns, drops the message quietly (not relayed, counted as a drop, no
// penalty) instead of rejecting it.
var ErrIgnore = errors.New("net: ignore")

// PresenceHandler receives what a document's presence topic carries.
type PresenceHandler interface {
	// ValidatePresence checks a decoded message that is for the topic's
	// document and carries a valid signature of its origin's peer: the
	// writer allowlist and the receiver's own rules. It returns nil to
	// accept (relay and deliver), an error wrapping ErrIgnore to drop it
	// quietly, or another error to reject it. The error's Reason() method,
	// if it has one, names the reason counted in
	// concord_dropped_total{queue="presence"}. It runs concurrently.
	ValidatePresence(from peer.ID, m *wire.Presence) error
	// DeliverPresence hands over an accepted message, from the topic's one
	// read loop: in the order GossipSub delivers them.
	DeliverPresence(from peer.ID, m *wire.Presence)
	// PresencePeerJoined tells that p subscribed to the topic (also for the
	// peers already subscribed when it was joined), so the owner can send
	// its entries early: a late joiner then sees them within about a
	// heartbeat. It must not block.
	PresencePeerJoined(p peer.ID)
}

// PresenceTopic is one document's presence topic.
type PresenceTopic struct {
	g      *Gossip
	doc    string
	hd     PresenceHandler
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	events *pubsub.TopicEventHandler
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// JoinPresence registers the validator of doc's presence topic, subscribes
// to it and starts its read loop; hd receives what arrives. Errors:
// ErrClosed, or a failure of GossipSub wrapped with context.
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
		if err := hd.ValidatePresence(msg.ReceivedFrom, p); err != nil {
			m.Drop("presence", reasonOf(err))
			if errors.Is(err, ErrIgnore) {
				return pubsub.ValidationIgnore
			}
			return pubsub.ValidationReject
		}
		msg.ValidatorData = p
		return pubsub.ValidationAccept
	})
	if err != nil {
		return nil, fmt.Errorf("net: register presence validator: %w", err)
	}
	t := &PresenceTopic{g: g, doc: doc, hd: hd}
	fail := func(what string, err error) (*PresenceTopic, error) {
		if t.events != nil {
			t.events.Cancel()
		}
		if t.sub != nil {
			t.sub.Cancel()
		}
		if t.topic != nil {
			_ = t.topic.Close()
		}
		_ = g.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("net: %s presence topic %q: %w", what, doc, err)
	}
	if t.topic, err = g.ps.Join(name); err != nil {
		return fail("join", err)
	}
	if t.events, err = t.topic.EventHandler(); err != nil {
		return fail("watch", err)
	}
	if t.sub, err = t.topic.Subscribe(pubsub.WithBufferSize(g.cfg.PeerQueueSize)); err != nil {
		return fail("subscribe to", err)
	}
	t.ctx, t.cancel = context.WithCancel(g.ctx)
	g.presence[doc] = t
	t.wg.Add(2)
	go t.readLoop()
	go t.joinLoop()
	return t, nil
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

func (t *PresenceTopic) readLoop() {
	defer t.wg.Done()
	self := t.g.h.ID()
	for {
		msg, err := t.sub.Next(t.ctx)
		if err != nil {
			return
		}
		if msg.ReceivedFrom == self {
			continue
		}
		if p, ok := msg.ValidatorData.(*wire.Presence); ok {
			t.hd.DeliverPresence(msg.ReceivedFrom, p)
		}
	}
}

// joinLoop tells the handler of the peers that join the topic.
func (t *PresenceTopic) joinLoop() {
	defer t.wg.Done()
	for {
		ev, err := t.events.NextPeerEvent(t.ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			t.hd.PresencePeerJoined(ev.Peer)
		}
	}
}

// Publish publishes one encoded presence message (see wire.EncodePresence)
// within ctx. Errors: ErrClosed after Close, or GossipSub's, wrapped.
func (t *PresenceTopic) Publish(ctx context.Context, data []byte) error {
	if t.ctx.Err() != nil {
		return ErrClosed
	}
	if err := t.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("net: publish presence on %q: %w", t.doc, err)
	}
	return nil
}

// Peers returns the peers known to subscribe to the presence topic.
func (t *PresenceTopic) Peers() []peer.ID { return t.topic.ListPeers() }

// Close leaves the topic and waits for its loops. It is idempotent.
func (t *PresenceTopic) Close() error {
	t.once.Do(func() {
		t.cancel()
		t.sub.Cancel()
		t.events.Cancel()
		t.wg.Wait()
		_ = t.topic.Close()
		_ = t.g.ps.UnregisterTopicValidator(PresenceTopicName(t.doc))
		t.g.mu.Lock()
		delete(t.g.presence, t.doc)
		t.g.mu.Unlock()
	})
	return nil
}
