package concord

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/wire"
)

// inboxDriver is a driver whose worker never comes (scheduled already):
// what gossip hands it stays in its inbox.
func inboxDriver(node *atomic.Int64) (*driver, *cnet.Metrics) {
	m := cnet.NewMetrics(nil)
	return &driver{d: driverDeps{metrics: m, inboxBytes: node}, scheduled: true}, m
}

func dropped(m *cnet.Metrics, reason string) float64 {
	return testutil.ToFloat64(m.Dropped.WithLabelValues("gossip_in", reason))
}

// The inbox is bounded in messages and in bytes, for the document and for
// the node; what it refuses is counted, and closing it drops (and counts)
// what waits and gives the node's bytes back.
func TestInboxBounds(t *testing.T) {
	var node atomic.Int64
	r, m := inboxDriver(&node)
	env := []*wire.Envelope{{Payload: make([]byte, 100)}}
	for range maxInbox + 10 {
		r.Deliver("p", env)
	}
	if len(r.inbox) != maxInbox || dropped(m, "full") != 10 {
		t.Fatalf("%d queued, %v dropped as full", len(r.inbox), dropped(m, "full"))
	}
	if node.Load() != r.inboxBytes || r.inboxBytes != int64(maxInbox)*inboxCost(env) {
		t.Fatalf("node holds %d, the document %d", node.Load(), r.inboxBytes)
	}
	r.qmu.Lock()
	r.closeInboxLocked()
	r.qmu.Unlock()
	if node.Load() != 0 || r.inboxBytes != 0 || dropped(m, "closed") != maxInbox {
		t.Fatalf("after close: node %d, document %d, %v dropped as closed", node.Load(), r.inboxBytes, dropped(m, "closed"))
	}
	r.Deliver("p", env)
	if len(r.inbox) != 0 || dropped(m, "closed") != maxInbox+1 {
		t.Fatal("a closed inbox took a message")
	}

	// Big messages: the document's byte bound comes first.
	r2, m2 := inboxDriver(nil)
	big := []*wire.Envelope{{Payload: make([]byte, 1<<20)}}
	for range 10 {
		r2.Deliver("p", big)
	}
	if want := int(maxInboxBytes / inboxCost(big)); len(r2.inbox) != want || dropped(m2, "full") != float64(10-want) {
		t.Fatalf("%d big messages queued (want %d), %v dropped", len(r2.inbox), want, dropped(m2, "full"))
	}

	// The node's bound, shared by its documents.
	node.Store(maxNodeInboxBytes - 10)
	r3, m3 := inboxDriver(&node)
	r3.Deliver("p", env)
	if len(r3.inbox) != 0 || dropped(m3, "node_full") != 1 || node.Load() != maxNodeInboxBytes-10 {
		t.Fatalf("past the node's bound: %d queued, node %d", len(r3.inbox), node.Load())
	}
}

// Only the latest summary of an origin from one sender waits: a newer one
// takes its place.
func TestInboxSupersedesSummaries(t *testing.T) {
	r, m := inboxDriver(nil)
	for i := range 5 {
		for _, o := range []crdt.ReplicaID{"a", "b"} {
			r.Summary(peer.ID("p"), &wire.Summary{Origin: o, Beacon: uint64(i)})
		}
		r.Summary(peer.ID("q"), &wire.Summary{Origin: "a", Beacon: uint64(i)})
	}
	var got []string
	for _, in := range r.inbox {
		got = append(got, fmt.Sprintf("%s/%s/%d", string(in.from), in.summary.Origin, in.summary.Beacon))
	}
	if fmt.Sprint(got) != "[p/a/4 p/b/4 q/a/4]" || dropped(m, "superseded") != 12 {
		t.Fatalf("inbox %v, %v superseded", got, dropped(m, "superseded"))
	}
	// An older beacon coming second does not replace the newer one.
	r.Summary(peer.ID("p"), &wire.Summary{Origin: "a", Beacon: 2})
	if b := r.inbox[0].summary.Beacon; b != 4 || dropped(m, "superseded") != 13 {
		t.Fatalf("an older beacon replaced a newer one: %d waits", b)
	}
	// A full inbox still takes a newer summary in the older one's place,
	// and its bytes are the newer one's.
	for len(r.inbox) < maxInbox {
		r.Deliver("p", []*wire.Envelope{{Payload: make([]byte, 10)}})
	}
	big := &wire.Summary{Origin: "a", Beacon: 9, VV: crdt.VersionVector{"a": 1, "b": 2, "c": 3}}
	before := r.inboxBytes
	r.Summary(peer.ID("p"), big)
	if r.inbox[0].summary != big || dropped(m, "full") != 0 || r.inboxBytes != before+3*48 {
		t.Fatalf("a full inbox: waiting %+v, %v dropped as full, bytes %d (from %d)", r.inbox[0].summary, dropped(m, "full"), r.inboxBytes, before)
	}
}
