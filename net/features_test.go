package net

import (
	"context"
	"slices"
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
