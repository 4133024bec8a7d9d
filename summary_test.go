package concord

import (
	"context"
	"crypto/sha256"
	"slices"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/wire"
)

// beaconRelay is a plain GossipSub peer on a document's topic that records
// the summaries of one origin as they pass and can publish them again
// later. Its validator ignores what others send, so it relays nothing by
// itself, and leaves its own publishes (even of recorded bytes) alone.
type beaconRelay struct {
	h     host.Host
	topic *pubsub.Topic
	mu    sync.Mutex
	seen  map[string]*wire.Summary // encoded summary → decoded
}

func newBeaconRelay(t *testing.T, doc string, origin crdt.ReplicaID) *beaconRelay {
	t.Helper()
	cfg := cnet.LoopbackHostConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	h, err := cnet.NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string {
			s := sha256.Sum256(m.Data)
			return string(s[:20])
		}),
		pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	r := &beaconRelay{h: h, seen: map[string]*wire.Summary{}}
	name := cnet.TopicName(doc)
	err = ps.RegisterTopicValidator(name, func(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if from == h.ID() {
			return pubsub.ValidationAccept
		}
		if s, err := wire.DecodeSummary(m.Data, wire.DefaultLimits()); err == nil && s.Origin == origin {
			r.mu.Lock()
			r.seen[string(m.Data)] = s
			r.mu.Unlock()
		}
		return pubsub.ValidationIgnore
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.topic, err = ps.Join(name); err != nil {
		t.Fatal(err)
	}
	sub, err := r.topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	return r
}

// connect dials n and waits until n is a peer of the topic.
func (r *beaconRelay) connect(t *testing.T, n *Node) {
	t.Helper()
	info, err := peer.AddrInfoFromString(n.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.h.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "node in the relay's topic", func() bool { return slices.Contains(r.topic.ListPeers(), n.ID()) })
}

// recorded returns the recorded summaries for which keep holds.
func (r *beaconRelay) recorded(keep func(*wire.Summary) bool) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for b, s := range r.seen {
		if keep(s) {
			out = append(out, []byte(b))
		}
	}
	return out
}

func (r *beaconRelay) publish(t *testing.T, b []byte) {
	t.Helper()
	if err := r.topic.Publish(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestRestartedPeerStaleBeacons: after a restart (same Pebble store), the
// peer's own beacons from its previous run, relayed back to it, count as
// stale, not forged; a summary in its name claiming deltas it never wrote
// still counts as forged.
func TestRestartedPeerStaleBeacons(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := testNode(t, "")
	c := testNode(t, dir)
	connect(t, c, a)
	da, dc := openDoc(t, a, "b"), openDoc(t, c, "b")
	relay := newBeaconRelay(t, "b", c.Replica())
	relay.connect(t, c)
	relay.connect(t, a)
	for i := range 5 {
		if err := dc.Set(ctx, []string{"k"}, i); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, 10*time.Second, da, dc)
	rep := c.Replica()
	atFive := func(s *wire.Summary) bool { return s.VV[rep] == 5 }
	waitFor(t, 10*time.Second, "three beacons of the first run", func() bool { return len(relay.recorded(atFive)) >= 3 })
	// One more write, so that no beacon of the next run can equal, byte for
	// byte, one recorded at 5 (beacon numbers restart with the process).
	if err := dc.Set(ctx, []string{"k"}, 5); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 10*time.Second, da, dc)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c2 := testNode(t, dir)
	if c2.Replica() != rep {
		t.Fatalf("replica changed across restart: %s → %s", rep, c2.Replica())
	}
	dc2 := openDoc(t, c2, "b")
	connect(t, c2, a)
	relay.connect(t, c2)
	old := relay.recorded(atFive)
	for _, b := range old {
		relay.publish(t, b)
	}
	stale := func() float64 {
		return counterValue(t, c2, "concord_messages_ignored_total", map[string]string{"reason": "summary_stale"})
	}
	waitFor(t, 10*time.Second, "old beacons counted as stale", func() bool { return stale() >= float64(len(old)) })
	forged := func() float64 {
		return counterValue(t, c2, "concord_messages_rejected_total", map[string]string{"reason": "summary_forged"})
	}
	if n := forged(); n != 0 {
		t.Fatalf("%v of our own old beacons counted as forged", n)
	}
	waitConverged(t, 10*time.Second, da, dc2)

	// A claim of a delta c never wrote.
	b, err := wire.EncodeSummary(&wire.Summary{Doc: "b", Origin: rep, VV: crdt.VersionVector{rep: 7}, Beacon: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	relay.publish(t, b)
	waitFor(t, 10*time.Second, "forged summary counted", func() bool { return forged() == 1 })
}
