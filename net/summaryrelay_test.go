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
	// Deltas until one reaches r through b (b forwards once r is in its
	// mesh, a heartbeat or two). Then summaries, each followed by a delta
	// as a marker: r reads until the last marker, and none of what it gets
	// may be a summary, which b takes.
	origin := wire.ReplicaFor(a.h.ID(), 1)
	next := func(timeout time.Duration) (uint64, uint64, bool) {
		wctx, wcancel := context.WithTimeout(context.Background(), timeout)
		defer wcancel()
		msg, err := sub.Next(wctx)
		if err != nil {
			return 0, 0, false
		}
		typ, err := wire.MessageType(msg.Data, wire.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if typ != wire.TypeBatch {
			return typ, 0, true
		}
		bt, err := wire.DecodeBatch(msg.Data, wire.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		return typ, bt.Envelopes[len(bt.Envelopes)-1].Seq, true
	}
	delta := func(seq uint64) *wire.Envelope {
		return &wire.Envelope{Doc: doc, Origin: "a", Seq: seq, Payload: []byte{0xa0}, Sig: []byte{1}}
	}
	deadline := time.Now().Add(30 * time.Second)
	seq := uint64(0)
	for {
		if time.Now().After(deadline) {
			t.Fatal("the raw peer got none of a's deltas")
		}
		seq++
		ta.Publish(delta(seq))
		if _, _, ok := next(500 * time.Millisecond); ok {
			break
		}
	}
	const beacons = 20
	for i := range uint64(beacons) {
		if err := ta.PublishSummary(ctx, &wire.Summary{Doc: doc, Origin: origin, Beacon: i + 1}); err != nil {
			t.Fatal(err)
		}
		seq++
		ta.Publish(delta(seq))
	}
	for last := uint64(0); last < seq; {
		typ, s, ok := next(10 * time.Second)
		switch {
		case !ok:
			t.Fatalf("the raw peer got deltas up to %d of %d", last, seq)
		case typ == wire.TypeSummary:
			t.Fatal("b relayed a's summary")
		}
		last = max(last, s)
	}
	waitFor(t, 10*time.Second, "b to take a's summaries", func() bool { return rb.count() >= beacons })
}
