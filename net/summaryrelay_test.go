package net

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// A summary goes to its author's neighbours only: a peer takes the
// summaries it gets and does not relay them (deltas it does relay), so
// beacons cost O(peers × neighbours), not O(peers²).
func TestSummariesAreNotRelayed(t *testing.T) {
	const doc = "beacons"
	rb := &recHandler{}
	a := newGossipNode(t, doc, &acceptAll{}, nil)
	b := newGossipNode(t, doc, rb, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.h.Connect(ctx, peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	ta, tb := a.g.topics[doc], b.g.topics[doc]
	waitFor(t, 10*time.Second, "a and b in each other's topic", func() bool {
		return slices.Contains(ta.topic.ListPeers(), b.h.ID()) && slices.Contains(tb.topic.ListPeers(), a.h.ID())
	})
	r := newRawPeer(t, b.h, doc, noSign()...) // a neighbour of b only
	sub, err := r.topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	waitFor(t, 10*time.Second, "the raw peer in b's topic", func() bool {
		return slices.Contains(tb.topic.ListPeers(), r.h.ID())
	})
	// a's summary, then deltas until one reaches r through b (b forwards
	// once r is in its mesh, a heartbeat or two): r gets the deltas and
	// never the summary, which b took.
	origin := wire.ReplicaFor(a.h.ID(), 1)
	deadline := time.Now().Add(30 * time.Second)
	for seq := uint64(1); ; seq++ {
		if time.Now().After(deadline) {
			t.Fatal("the raw peer got none of a's deltas")
		}
		if err := ta.PublishSummary(ctx, &wire.Summary{Doc: doc, Origin: origin, Beacon: seq}); err != nil {
			t.Fatal(err)
		}
		ta.Publish(&wire.Envelope{Doc: doc, Origin: "a", Seq: seq, Payload: []byte{0xa0}, Sig: []byte{1}})
		wctx, wcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		msg, err := sub.Next(wctx)
		wcancel()
		if err != nil {
			continue
		}
		typ, err := wire.MessageType(msg.Data, wire.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if typ == wire.TypeSummary {
			t.Fatal("b relayed a's summary")
		}
		break
	}
	if rb.count() == 0 {
		t.Fatal("b did not take a's summary")
	}
}
