package concord

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	cnet "github.com/concord-p2p/concord/net"
)

// testNode opens an in-memory (or on-disk, with dir) node on loopback.
func testNode(t testing.TB, dir string, mod ...func(*Config)) *Node {
	t.Helper()
	cfg := Config{DataDir: dir, FastGossip: true, SummaryInterval: 200 * time.Millisecond}
	for _, m := range mod {
		m(&cfg)
	}
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func connect(t testing.TB, a, b *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
}

func openDoc(t testing.TB, n *Node, name string, opts ...DocOption) *Doc {
	t.Helper()
	d, err := n.Doc(context.Background(), name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitConverged waits until every doc shows the same JSON and version.
func waitConverged(t testing.TB, d time.Duration, docs ...*Doc) {
	t.Helper()
	var last string
	waitFor(t, d, "convergence", func() bool {
		a := string(docs[0].JSON())
		va := fmt.Sprint(docs[0].Status().Version)
		for _, o := range docs[1:] {
			if string(o.JSON()) != a || fmt.Sprint(o.Status().Version) != va {
				last = fmt.Sprintf("%s %s vs %s %s", a, va, o.JSON(), fmt.Sprint(o.Status().Version))
				return false
			}
		}
		return true
	})
	_ = last
}

// counterValue sums a counter family's samples whose labels match.
func counterValue(t testing.TB, n *Node, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}

// exchangeLog records finished sync exchanges.
type exchangeLog struct {
	mu     sync.Mutex
	events []cnet.ExchangeEvent
}

func (l *exchangeLog) add(e cnet.ExchangeEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *exchangeLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = nil
}

func (l *exchangeLog) snapshot() []cnet.ExchangeEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]cnet.ExchangeEvent(nil), l.events...)
}
