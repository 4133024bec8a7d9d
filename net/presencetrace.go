package net

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// presenceTracer is the GossipSub tracer of presence. It tells the handler
// of a presence topic when a peer subscribes to it (the subscriptions of
// every received RPC), so that no goroutine per topic waits for peer
// events; and it tells when a published message has been written to the
// streams of given peers, so that a goodbye published at shutdown is on
// its way before the host closes (PresenceTopic.PublishFlushed) — hashing
// what GossipSub writes only while someone waits.
type presenceTracer struct {
	joins sync.Map // presence topic name → PresenceHandler

	active atomic.Int32
	mu     sync.Mutex
	waits  map[[32]byte]*sentWait
}

// sentWait is one message awaited: the peers it has not reached yet.
type sentWait struct {
	peers map[peer.ID]struct{}
	done  chan struct{}
}

func newPresenceTracer() *presenceTracer { return &presenceTracer{waits: map[[32]byte]*sentWait{}} }

// joined makes hd hear of the peers that subscribe to topic.
func (w *presenceTracer) joined(topic string, hd PresenceHandler) { w.joins.Store(topic, hd) }

// left stops telling anyone of topic's subscribers.
func (w *presenceTracer) left(topic string) { w.joins.Delete(topic) }

// RecvRPC tells the handlers of presence topics of the peers that
// subscribe to them.
func (w *presenceTracer) RecvRPC(rpc *pubsub.RPC) {
	for _, s := range rpc.GetSubscriptions() {
		topic := s.GetTopicid()
		if !s.GetSubscribe() || !strings.HasPrefix(topic, presenceTopicPrefix) {
			continue
		}
		if hd, ok := w.joins.Load(topic); ok {
			hd.(PresenceHandler).PresencePeerJoined(rpc.From())
		}
	}
}

// await registers data as awaited at peers; the returned wait's done
// closes once it was written (or dropped) for every one of them. Call
// release when done waiting.
func (w *presenceTracer) await(data []byte, peers []peer.ID) (wait *sentWait, release func()) {
	h := sha256.Sum256(data)
	wait = &sentWait{peers: map[peer.ID]struct{}{}, done: make(chan struct{})}
	for _, p := range peers {
		wait.peers[p] = struct{}{}
	}
	if len(wait.peers) == 0 {
		close(wait.done)
		return wait, func() {}
	}
	w.mu.Lock()
	w.waits[h] = wait
	w.mu.Unlock()
	w.active.Add(1)
	return wait, func() {
		w.mu.Lock()
		if w.waits[h] == wait {
			delete(w.waits, h)
		}
		w.mu.Unlock()
		w.active.Add(-1)
	}
}

// reached marks the messages of rpc as no longer awaited at p.
func (w *presenceTracer) reached(rpc *pubsub.RPC, p peer.ID) {
	if w.active.Load() == 0 || rpc == nil {
		return
	}
	for _, m := range rpc.GetPublish() {
		h := sha256.Sum256(m.GetData())
		w.mu.Lock()
		if wait := w.waits[h]; wait != nil {
			if _, ok := wait.peers[p]; ok {
				delete(wait.peers, p)
				if len(wait.peers) == 0 {
					close(wait.done)
					delete(w.waits, h)
				}
			}
		}
		w.mu.Unlock()
	}
}

var _ pubsub.RawTracer = (*presenceTracer)(nil)

func (w *presenceTracer) SendRPCCompleted(rpc *pubsub.RPC, p peer.ID, _ time.Duration) {
	w.reached(rpc, p)
}
func (w *presenceTracer) DropRPC(rpc *pubsub.RPC, p peer.ID)     { w.reached(rpc, p) }
func (*presenceTracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (*presenceTracer) OnClosedOutboundStream(peer.ID)           {}
func (*presenceTracer) Join(string)                              {}
func (*presenceTracer) Leave(string)                             {}
func (*presenceTracer) Graft(peer.ID, string)                    {}
func (*presenceTracer) Prune(peer.ID, string)                    {}
func (*presenceTracer) ValidateMessage(*pubsub.Message)          {}
func (*presenceTracer) DeliverMessage(*pubsub.Message)           {}
func (*presenceTracer) RejectMessage(*pubsub.Message, string)    {}
func (*presenceTracer) DuplicateMessage(*pubsub.Message)         {}
func (*presenceTracer) ThrottlePeer(peer.ID)                     {}
func (*presenceTracer) SendRPC(*pubsub.RPC, peer.ID)             {}
func (*presenceTracer) UndeliverableMessage(*pubsub.Message)     {}

// PublishFlushed publishes data as Publish does, then waits until
// GossipSub has written it to every connected peer of the topic (handed
// it to the transport), or ctx ends. It is for messages that must leave
// before the host closes: the goodbyes of a shutdown. Errors: Publish's,
// or ctx's, wrapped.
func (t *PresenceTopic) PublishFlushed(ctx context.Context, data []byte) error {
	var peers []peer.ID
	for _, p := range t.topic.ListPeers() {
		if t.g.h.Network().Connectedness(p) == network.Connected {
			peers = append(peers, p)
		}
	}
	wait, release := t.g.trace.await(data, peers)
	defer release()
	if err := t.Publish(ctx, data); err != nil {
		return err
	}
	select {
	case <-wait.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("net: presence on %q not written to every peer: %w", t.doc, ctx.Err())
	}
}
