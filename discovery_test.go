package concord

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// Thirty peers on loopback, each given one bootstrap address: the same
// hub, which holds none of their documents. GossipSub does not relay a
// topic the hub does not subscribe to, so the peers of a document converge
// only if they find each other: through the DHT of Concord peers, on which
// each advertises its documents' topics.
//
// Under the race detector, which slows every node several times over, ten
// peers.
func TestDiscoveryFindsThePeersOfADocument(t *testing.T) {
	if testing.Short() {
		t.Skip("30 nodes")
	}
	const docs = 3
	peers := 30
	if raceEnabled {
		peers = 10
	}
	hub := testNode(t, "", func(c *Config) { c.Discovery = true })
	boot := hub.Addrs()[0]
	byDoc := make([][]*Doc, docs)
	for i := 1; i < peers; i++ {
		n := testNode(t, "", func(c *Config) {
			c.Discovery = true
			c.Bootstrap = []string{boot}
		})
		d := openDoc(t, n, "doc"+strconv.Itoa(i%docs))
		if err := d.Set(context.Background(), []string{"from" + strconv.Itoa(i)}, i); err != nil {
			t.Fatal(err)
		}
		byDoc[i%docs] = append(byDoc[i%docs], d)
	}
	if got := len(hub.Docs()); got != 0 {
		t.Fatalf("the hub holds %d documents", got)
	}
	for k, ds := range byDoc {
		waitFor(t, 90*time.Second, fmt.Sprintf("the %d peers of doc%d to hold every write", len(ds), k), func() bool {
			for _, d := range ds {
				if len(d.Status().Version) != len(ds) {
					return false
				}
			}
			return true
		})
		waitConverged(t, 30*time.Second, ds...)
	}
}
