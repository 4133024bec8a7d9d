package net

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// A Concord node announces its features through identify, and a topic
// coalesces its runs into aggregates only while every peer of the topic
// announced them: a plain GossipSub peer (one that announced nothing, as a
// node from before features would) turns aggregation off.
func TestFeaturesGateAggregates(t *testing.T) {
	a := newGossipNode(t, "feat", &acceptAll{}, nil)
	b := newGossipNode(t, "feat", &acceptAll{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.h.Connect(ctx, peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	ta := a.g.topics["feat"]
	waitFor(t, 10*time.Second, "b in a's topic, its features identified", func() bool {
		return slices.Contains(ta.topic.ListPeers(), b.h.ID()) && PeerFeatures(a.h, b.h.ID()).Has(wire.FeatureAggregates)
	})
	if !ta.topicSpeaks(wire.FeatureAggregates) {
		t.Fatal("a topic of Concord peers does not speak aggregates")
	}
	r := newRawPeer(t, a.h, "feat", noSign()...)
	sub, err := r.topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	waitFor(t, 10*time.Second, "the plain peer in a's topic", func() bool {
		return slices.Contains(ta.topic.ListPeers(), r.h.ID())
	})
	if PeerFeatures(a.h, r.h.ID()) != 0 {
		t.Fatalf("a plain GossipSub peer has features %b", PeerFeatures(a.h, r.h.ID()))
	}
	if ta.topicSpeaks(wire.FeatureAggregates) {
		t.Fatal("aggregation stays on with a topic peer that did not announce it")
	}
}

// deliverRec accepts every envelope and records the delivered ones.
type deliverRec struct {
	mu   sync.Mutex
	seqs []uint64
}

func (h *deliverRec) Validate(peer.ID, *wire.Envelope) error { return nil }
func (h *deliverRec) Summary(peer.ID, *wire.Summary)         {}
func (h *deliverRec) Deliver(_ peer.ID, envs []*wire.Envelope) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range envs {
		h.seqs = append(h.seqs, e.Seq)
	}
}

func (h *deliverRec) has(seq uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.seqs, seq)
}

// Deltas holding sequences never reach a peer that did not announce them:
// a relay takes them itself and does not forward them to such a
// neighbour, and an author does not publish them on a topic that has one
// (the peers that speak sequences pull them by sync). Deltas without them
// still flow.
func TestFeaturesGateSequences(t *testing.T) {
	const doc = "seqfeat"
	rb := &deliverRec{}
	a := newGossipNode(t, doc, &acceptAll{}, nil)
	b := newGossipNode(t, doc, rb, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.h.Connect(ctx, peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	ta, tb := a.g.topics[doc], b.g.topics[doc]
	waitFor(t, 10*time.Second, "a and b in each other's topic, features identified", func() bool {
		return slices.Contains(ta.topic.ListPeers(), b.h.ID()) && PeerFeatures(a.h, b.h.ID()).Has(wire.FeatureSequences) &&
			slices.Contains(tb.topic.ListPeers(), a.h.ID()) && PeerFeatures(b.h, a.h.ID()).Has(wire.FeatureSequences)
	})
	r := newRawPeer(t, b.h, doc, noSign()...) // a plain peer, a neighbour of b only
	sub, err := r.topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	waitFor(t, 10*time.Second, "the plain peer in b's topic", func() bool {
		return slices.Contains(tb.topic.ListPeers(), r.h.ID())
	})
	env := func(seq uint64, f wire.Features) *wire.Envelope {
		return &wire.Envelope{Doc: doc, Origin: "a", Seq: seq, Features: f, Payload: []byte{0xa0}, Sig: []byte{1}}
	}
	ta.Publish(env(1, wire.FeatureSequences))
	waitFor(t, 10*time.Second, "b to take the sequence delta without relaying it", func() bool {
		return rb.has(1) && counterValue(b.m.MessagesIgnored.WithLabelValues("relay_needs_feature")) == 1
	})
	// Deltas without sequences do reach it, through b (published again
	// until one arrives: b forwards only once the plain peer is in its
	// mesh, which takes a heartbeat or two).
	deadline := time.Now().Add(30 * time.Second)
	for seq := uint64(2); ; seq++ {
		if time.Now().After(deadline) {
			t.Fatal("the plain peer got none of the deltas without sequences")
		}
		ta.Publish(env(seq, 0))
		wctx, wcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		msg, err := sub.Next(wctx)
		wcancel()
		if err != nil {
			continue
		}
		bt, err := wire.DecodeBatch(msg.Data, wire.DefaultLimits())
		if err != nil {
			continue
		}
		if bt.Envelopes[0].Seq == 1 {
			t.Fatal("the plain peer was relayed a delta holding sequences")
		}
		break
	}
	// With the plain peer in its own topic, a does not publish one at all.
	r2 := newRawPeer(t, a.h, doc, noSign()...)
	sub2, err := r2.topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Cancel()
	waitFor(t, 10*time.Second, "the second plain peer in a's topic", func() bool {
		return slices.Contains(ta.topic.ListPeers(), r2.h.ID())
	})
	ta.Publish(env(1000, wire.FeatureSequences))
	waitFor(t, 10*time.Second, "the publish to be left out", func() bool {
		return counterValue(a.m.Dropped.WithLabelValues("gossip_out", "needs_feature")) == 1
	})
	if rb.has(1000) {
		t.Fatal("a published a sequence delta on a topic with a plain peer")
	}
}

// A node announces only the features its config names: a neighbour that
// did not announce the compact splice form (as a node of an earlier
// version) is never published a compact delta — the author drops it — and
// still gets the deltas it reads.
func TestFeaturesGateCompactSplice(t *testing.T) {
	const doc = "compactfeat"
	rb := &deliverRec{}
	a := newGossipNode(t, doc, &acceptAll{}, nil)
	b := newGossipNode(t, doc, rb, nil, func(c *GossipConfig) { c.Features = wire.FeatureAggregates | wire.FeatureSequences })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.h.Connect(ctx, peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	ta := a.g.topics[doc]
	waitFor(t, 10*time.Second, "b in a's topic, its features identified", func() bool {
		return slices.Contains(ta.topic.ListPeers(), b.h.ID()) && PeerFeatures(a.h, b.h.ID()).Has(wire.FeatureSequences)
	})
	if f := PeerFeatures(a.h, b.h.ID()); f != wire.FeatureAggregates|wire.FeatureSequences {
		t.Fatalf("b announced %b, want aggregates and sequences only", f)
	}
	if ta.topicSpeaks(wire.FeatureCompactSplice) {
		t.Fatal("a topic with an older peer speaks the compact form")
	}
	env := func(seq uint64, f wire.Features) *wire.Envelope {
		return &wire.Envelope{Doc: doc, Origin: "a", Seq: seq, Features: f, Payload: []byte{0x80}, Sig: []byte{1}}
	}
	ta.Publish(env(1, wire.FeatureSequences|wire.FeatureCompactSplice))
	waitFor(t, 10*time.Second, "the compact publish to be left out", func() bool {
		return counterValue(a.m.Dropped.WithLabelValues("gossip_out", "needs_feature")) == 1
	})
	// A classic one does reach b (published again until one arrives: the
	// mesh may still be forming).
	deadline := time.Now().Add(30 * time.Second)
	for seq, got := uint64(2), false; !got; seq++ {
		if time.Now().After(deadline) {
			t.Fatal("b got none of the classic deltas")
		}
		ta.Publish(env(seq, wire.FeatureSequences))
		for try := time.Now().Add(500 * time.Millisecond); !got && time.Now().Before(try); {
			time.Sleep(10 * time.Millisecond)
			got = rb.has(seq)
		}
	}
	if rb.has(1) {
		t.Fatal("b was published a compact delta")
	}
}
