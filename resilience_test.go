package concord

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// TestRestartCatchUp: a peer stops, the others keep writing, and it restarts
// from its Pebble directory with its state and identity, then catches up.
func TestRestartCatchUp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := testNode(t, ""), testNode(t, "")
	connect(t, b, a)
	da, db := openDoc(t, a, "r"), openDoc(t, b, "r")

	c := testNode(t, dir)
	connect(t, c, a)
	dc := openDoc(t, c, "r")
	for i := 0; i < 20; i++ {
		if err := dc.Add(ctx, []string{"from-c"}, i); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, 10*time.Second, da, db, dc)
	id, rep := c.ID(), c.Replica()
	before := dc.JSON()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := da.Inc(ctx, []string{"n"}, 1); err != nil {
			t.Fatal(err)
		}
		if err := db.Set(ctx, []string{"b", fmt.Sprint(i)}, i); err != nil {
			t.Fatal(err)
		}
	}

	c2 := testNode(t, dir)
	if c2.ID() != id || c2.Replica() != rep {
		t.Fatalf("identity changed across restart: %s/%s → %s/%s", id, rep, c2.ID(), c2.Replica())
	}
	dc2 := openDoc(t, c2, "r")
	if got := dc2.JSON(); !bytes.Equal(got, before) {
		t.Fatalf("state after restart %s, before %s", got, before)
	}
	connect(t, c2, a)
	waitConverged(t, 15*time.Second, da, db, dc2)
	// The restarted peer keeps writing with fresh sequence numbers.
	if err := dc2.Add(ctx, []string{"from-c"}, "after"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 10*time.Second, da, db, dc2)
}

// TestLostStoreNewIncarnation: a node whose store is lost but whose key is
// kept writes under a new replica ID, so it never reuses a sequence number.
func TestLostStoreNewIncarnation(t *testing.T) {
	ctx := context.Background()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	a := testNode(t, "")
	da := openDoc(t, a, "inc")
	b1 := testNode(t, t.TempDir(), func(c *Config) { c.PrivateKey = key })
	connect(t, b1, a)
	db1 := openDoc(t, b1, "inc")
	if err := db1.Set(ctx, []string{"k"}, "old"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 10*time.Second, da, db1)
	rep1 := b1.Replica()
	_ = b1.Close()

	b2 := testNode(t, t.TempDir(), func(c *Config) { c.PrivateKey = key }) // store lost
	if b2.ID() != b1.ID() {
		t.Fatal("same key, different peer ID")
	}
	if b2.Replica() == rep1 {
		t.Fatal("a fresh store reused the replica ID: sequence numbers would repeat")
	}
	db2 := openDoc(t, b2, "inc")
	if err := db2.Set(ctx, []string{"k2"}, "new"); err != nil {
		t.Fatal(err)
	}
	connect(t, b2, a)
	waitConverged(t, 10*time.Second, da, db2)
	if got := string(db2.JSON()); got != `{"k":"old","k2":"new"}` {
		t.Fatalf("view %s", got)
	}
}

// TestLateJoinerSnapshot: a peer joining a 10k-key document after the log
// was compacted is brought up by a snapshot.
func TestLateJoinerSnapshot(t *testing.T) {
	ctx := context.Background()
	var log exchangeLog
	a := testNode(t, "", func(c *Config) { c.Events.SyncFinished = log.add })
	b := testNode(t, "")
	connect(t, b, a)
	da, db := openDoc(t, a, "big"), openDoc(t, b, "big")
	for i := 0; i < 100; i++ {
		if err := da.Update(ctx, func(tx *Txn) {
			for j := 0; j < 100; j++ {
				tx.Set([]string{fmt.Sprintf("k%05d", i*100+j)}, i*100+j)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, 20*time.Second, da, db)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := da.WaitAcked(wctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b's summary", func() bool {
		var held uint64
		da.r.withEngine(func(e *engine.Doc) { held = e.PeerHolds(b.ID())[a.Replica()] })
		return held == 100
	})
	if err := da.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.st.NeedsSnapshot("big", crdt.VersionVector{}) {
		t.Fatal("log not compacted")
	}
	log.reset()
	c := testNode(t, "")
	dc := openDoc(t, c, "big")
	connect(t, c, a)
	waitConverged(t, 20*time.Second, da, db, dc)
	// a's side of the exchange sent the snapshot and no delta: the log was
	// folded into it. (Its event is recorded once a's side has finished.)
	waitFor(t, 10*time.Second, "a's exchange with the late joiner", func() bool {
		for _, e := range log.snapshot() {
			if e.Peer == c.ID() && e.Err == nil && e.Stats.SnapshotOut && e.Stats.DeltasOut == 0 {
				return true
			}
		}
		return false
	})
	if n := len(dc.JSON()); n < 10000*8 {
		t.Fatalf("late joiner view only %d bytes", n)
	}
}

// TestSparseTopology: 20 peers in a ring (each dials the next) converge.
func TestSparseTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("20 libp2p hosts")
	}
	const n = 20
	ctx := context.Background()
	nodes := make([]*Node, n)
	docs := make([]*Doc, n)
	for i := range nodes {
		nodes[i] = testNode(t, "")
		docs[i] = openDoc(t, nodes[i], "ring")
	}
	for i := range nodes {
		connect(t, nodes[i], nodes[(i+1)%n])
	}
	for i, d := range docs {
		if err := d.Set(ctx, []string{"peer", fmt.Sprint(i)}, i); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, 60*time.Second, docs...)
	for _, nd := range nodes {
		if len(nd.Host().Network().Peers()) > 6 {
			t.Fatalf("ring node has %d connections", len(nd.Host().Network().Peers()))
		}
	}
}

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

// TestOutboxSurvivesRestart: writes made while alone stay in the durable
// outbox across a restart and leave it once a peer holds them; with
// WithAckPeers(2) one peer is not enough.
func TestOutboxSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := testNode(t, dir)
	da := openDoc(t, a, "ob", WithAckPeers(2))
	for i := 0; i < 3; i++ {
		if err := da.Inc(ctx, []string{"n"}, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := da.Status().Outbox; n != 3 {
		t.Fatalf("outbox %d while alone", n)
	}
	_ = a.Close()
	a2 := testNode(t, dir)
	da2 := openDoc(t, a2, "ob", WithAckPeers(2))
	if n := da2.Status().Outbox; n != 3 {
		t.Fatalf("outbox %d after restart", n)
	}
	b := testNode(t, "")
	db := openDoc(t, b, "ob")
	connect(t, b, a2)
	waitConverged(t, 10*time.Second, da2, db)
	// One peer holds them, but two acknowledgments are required.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := da2.WaitAcked(short)
	cancel()
	if err == nil || da2.Status().Outbox != 3 {
		t.Fatalf("acknowledged by one peer with WithAckPeers(2): err=%v outbox=%d", err, da2.Status().Outbox)
	}
	c := testNode(t, "")
	dc := openDoc(t, c, "ob")
	connect(t, c, a2)
	waitConverged(t, 10*time.Second, da2, db, dc)
	wctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	if err := da2.WaitAcked(wctx); err != nil {
		t.Fatal(err)
	}
	if n := da2.Status().Outbox; n != 0 {
		t.Fatalf("outbox %d after two peers acknowledged", n)
	}
}

// TestInboundPeerRedialed: a peer that dialed us is remembered (peer book)
// and redialed by our supervisor after the connection drops.
func TestInboundPeerRedialed(t *testing.T) {
	a, b := testNode(t, ""), testNode(t, "")
	defer func() {
		if t.Failed() {
			var dirs []string
			for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
				dirs = append(dirs, c.Stat().Direction.String()+" "+c.RemoteMultiaddr().String())
			}
			t.Logf("a supervises %+v; connectedness %v; conns %v; reconnect attempts %v successes %v",
				a.sup.States(), a.Host().Network().Connectedness(b.ID()), dirs,
				counterValue(t, a, "concord_reconnect_attempts_total", nil), counterValue(t, a, "concord_reconnect_successes_total", nil))
		}
	}()
	_ = openDoc(t, a, "x")
	_ = openDoc(t, b, "x")
	connect(t, b, a) // b dials a: for a, b is an inbound peer
	// Wait until a's supervisor holds b as connected (by its own dial, or
	// by the connection notice): any dial after that is a reconnect.
	waitFor(t, 10*time.Second, "a to supervise b", func() bool {
		for _, p := range a.sup.States() {
			if p.ID == b.ID() {
				return p.State == cnet.StateConnected
			}
		}
		return false
	})
	recs, err := a.st.Peers(context.Background())
	if err != nil || len(recs) != 1 || recs[0].ID != b.ID().String() {
		t.Fatalf("peer book: %v %v", recs, err)
	}
	// Drop the connection from b's side; a redials b. b stops supervising
	// altogether first: removing a alone would race with b learning a again
	// from a late identify, and b's redial would then hide a's.
	_ = b.sup.Close()
	for _, c := range b.Host().Network().ConnsToPeer(a.ID()) {
		_ = c.Close()
	}
	waitFor(t, 15*time.Second, "a to redial b", func() bool {
		return counterValue(t, a, "concord_reconnect_successes_total", nil) >= 1 &&
			a.Host().Network().Connectedness(b.ID()) == network.Connected
	})
}

// TestGapRepairedBySync: a gossiped delta whose predecessor never arrived
// makes the receiver fetch the missing one from the sender after a short
// grace period (summaries are slowed down so they cannot do it).
func TestGapRepairedBySync(t *testing.T) {
	ctx := context.Background()
	slow := func(c *Config) { c.SummaryInterval = time.Hour }
	a, b, c := testNode(t, "", slow), testNode(t, "", slow), testNode(t, "", slow)
	da, db, dc := openDoc(t, a, "gap"), openDoc(t, b, "gap"), openDoc(t, c, "gap")
	connect(t, b, a)
	for i := 0; i < 2; i++ {
		if err := dc.Inc(ctx, []string{"n"}, 1); err != nil {
			t.Fatal(err)
		}
	}
	connect(t, c, a) // a catches up with c by sync; nothing is gossiped to b
	waitFor(t, 10*time.Second, "a to hold c's deltas", func() bool {
		return da.Status().Version[c.Replica()] == 2
	})
	e2, err := c.st.Get(ctx, "gap", c.Replica(), 2)
	if err != nil {
		t.Fatal(err)
	}
	env2, err := wire.DecodeEnvelope(e2.Data, storedLimits)
	if err != nil {
		t.Fatal(err)
	}
	// As if a had relayed c's second delta but the first was lost.
	docHandler{db}.Deliver(a.ID(), []*wire.Envelope{env2})
	waitFor(t, 10*time.Second, "b to repair the gap", func() bool {
		return db.Status().Version[c.Replica()] == 2
	})
	if got := string(db.JSON()); got != `{"n":2}` {
		t.Fatalf("view %s", got)
	}
}
