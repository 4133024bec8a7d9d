package concord

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// TestRejectForgedAndUnauthorised: a delta signed by a key that does not
// match its replica, or written by a peer outside the allowlist, is
// rejected and counted and never stored — through gossip and through sync.
func TestRejectForgedAndUnauthorised(t *testing.T) {
	ctx := context.Background()
	a := testNode(t, "")
	mallory := testNode(t, "")
	b := testNode(t, "")
	allow := WithWriters(a.ID())
	da := openDoc(t, a, "guarded", allow)
	dm := openDoc(t, mallory, "guarded") // mallory accepts anyone
	db := openDoc(t, b, "guarded", allow)
	connect(t, mallory, a)
	connect(t, b, mallory) // b hears about a only through mallory
	if err := da.Set(ctx, []string{"ok"}, 1); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 10*time.Second, da, dm, db)

	// 1. Mallory writes as herself: not an allowed writer.
	if err := dm.Set(ctx, []string{"evil"}, 1); err != nil {
		t.Fatal(err)
	}
	// 2. Mallory forges a delta in a's name, signed with her own key,
	// gossips it and stores it so sync serves it too.
	forged := forgeEnvelope(t, mallory, a.Replica(), "guarded", 99)
	dm.topic.Publish(forged)
	data, err := wire.EncodeEnvelope(forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := mallory.st.Append(ctx, "guarded", "", []store.Entry{{Replica: forged.Origin, Seq: forged.Seq, Data: data}}); err != nil {
		t.Fatal(err)
	}
	// Sync explicitly too (gossip may or may not have carried it).
	for _, nd := range []*Node{a, b} {
		d, _ := nd.Doc(ctx, "guarded")
		if _, err := d.Sync(ctx, mallory.ID()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "rejections counted", func() bool {
		return counterValue(t, b, "concord_messages_rejected_total", map[string]string{"reason": "not_writer"}) > 0 &&
			counterValue(t, a, "concord_messages_rejected_total", map[string]string{"reason": "not_writer"}) > 0
	})
	for _, nd := range []*Node{a, b} {
		d, _ := nd.Doc(ctx, "guarded")
		if _, ok := d.Get("evil"); ok {
			t.Fatalf("%s applied an unauthorised write", nd.ID())
		}
		if nd.st.Has("guarded", forged.Origin, forged.Seq) {
			t.Fatalf("%s stored a forged delta", nd.ID())
		}
		if nd.st.MaxSeq("guarded", mallory.Replica()) != 0 {
			t.Fatalf("%s stored an unauthorised delta", nd.ID())
		}
	}
	// The forged envelope (a's replica, mallory's key) fails the signature
	// check on the sync path, where the allowlist lets a's replica through.
	if v := counterValue(t, a, "concord_messages_rejected_total", map[string]string{"reason": "bad_signature"}) +
		counterValue(t, b, "concord_messages_rejected_total", map[string]string{"reason": "bad_signature"}); v == 0 {
		t.Fatal("forged signature not counted")
	}
	// Mallory herself holds both (she allows anyone and stored the forgery).
	if _, ok := dm.Get("evil"); !ok {
		t.Fatal("mallory lost her own write")
	}
}

// TestForgedAckNotRelayed: a summary claiming to come from B, published by
// C, is rejected by B (it never published it), so A never takes it for B's
// acknowledgment.
func TestForgedAckNotRelayed(t *testing.T) {
	ctx := context.Background()
	a, b, c := testNode(t, ""), testNode(t, ""), testNode(t, "")
	da := openDoc(t, a, "ack")
	_ = openDoc(t, b, "ack", WithWriters(b.ID())) // b refuses a's deltas
	dc := openDoc(t, c, "ack")
	connect(t, b, a)
	connect(t, c, b)
	if err := da.Set(ctx, []string{"x"}, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "topic peers", func() bool { return len(dc.Status().Peers) > 0 })
	forged := &wire.Summary{Doc: "ack", Origin: b.Replica(), VV: crdt.VersionVector{a.Replica(): 1}}
	waitFor(t, 10*time.Second, "b to reject the forged summary", func() bool {
		forged.Beacon++
		_ = dc.topic.PublishSummary(ctx, forged)
		return counterValue(t, b, "concord_messages_rejected_total", map[string]string{"reason": "summary_forged"}) > 0
	})
	if n := da.Status().Outbox; n != 1 {
		t.Fatalf("a's outbox is %d: a forged summary acknowledged its delta", n)
	}
}

// forgeEnvelope builds a delta claiming origin but signed by n's key.
func forgeEnvelope(t *testing.T, n *Node, origin crdt.ReplicaID, doc string, seq uint64) *wire.Envelope {
	t.Helper()
	st := crdt.New()
	delta, err := st.Apply(origin, 1, crdt.Set([]string{"forged"}, []byte(`true`)))
	if err != nil {
		t.Fatal(err)
	}
	e := &wire.Envelope{Doc: doc, Origin: origin, Seq: seq, HLC: 1, Payload: crdt.EncodeDelta(delta, origin)}
	// SignEnvelope refuses a key that is not the origin's: sign by hand.
	sig, err := n.key.Sign(append([]byte("forged"), e.Payload...))
	if err != nil {
		t.Fatal(err)
	}
	e.Sig = sig
	if _, err := peer.IDFromPrivateKey(n.key); err != nil {
		t.Fatal(err)
	}
	return e
}
