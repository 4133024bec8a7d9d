package concord

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/wire"
)

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
