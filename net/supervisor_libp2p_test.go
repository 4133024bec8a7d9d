package net

import (
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestSupervisorReconnectsLibp2p: a supervised peer shuts down and comes back
// on the same address with the same key; the supervisor notices the
// disconnect through WatchHost and reconnects through HostDialer.
func TestSupervisorReconnectsLibp2p(t *testing.T) {
	a := newTestHost(t, LoopbackHostConfig())

	privB, idB := testKey(t, 30)
	cfgB := LoopbackHostConfig()
	cfgB.PrivKey = privB
	cfgB.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	b, err := NewHost(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	addrs := b.Addrs() // fixed port, reused on restart

	var mu sync.Mutex
	var events []PeerEvent
	m := NewMetrics(nil)
	cfg := DefaultSupervisorConfig(HostDialer(a))
	cfg.Seed = 3
	cfg.BackoffBase = 20 * time.Millisecond
	cfg.BackoffMax = 200 * time.Millisecond
	cfg.DialTimeout = 2 * time.Second
	cfg.Metrics = m
	cfg.OnEvent = func(e PeerEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }
	s, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := WatchHost(a, s)
	defer func() { stop(); s.Close() }()

	state := func() State {
		for _, st := range s.States() {
			if st.ID == idB {
				return st.State
			}
		}
		return 0
	}
	s.Add(peer.AddrInfo{ID: idB, Addrs: addrs})
	waitFor(t, 5*time.Second, "first connection", func() bool {
		return state() == StateConnected && a.Network().Connectedness(idB) == network.Connected
	})

	// B goes away: the supervisor sees the disconnect and starts backing off.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "disconnect noticed", func() bool { return state() != StateConnected })
	waitFor(t, 5*time.Second, "failed redials", func() bool { return counterValue(m.ReconnectAttempts) >= 2 })

	// B comes back on the same address.
	cfgB.ListenAddrs = nil
	for _, ad := range addrs {
		cfgB.ListenAddrs = append(cfgB.ListenAddrs, ad.String())
	}
	b2, err := NewHost(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	waitFor(t, 10*time.Second, "reconnection", func() bool {
		return state() == StateConnected && a.Network().Connectedness(idB) == network.Connected
	})
	// The connect notification may overtake the dial's return, which is
	// where the success is counted.
	waitFor(t, 5*time.Second, "reconnect success counted", func() bool {
		return counterValue(m.ReconnectSuccesses) >= 1
	})
	if histCount(m.ConnectionDuration) < 1 {
		t.Fatal("connection duration not observed")
	}
	mu.Lock()
	defer mu.Unlock()
	var sawBackoff bool
	for _, e := range events {
		if e.To == StateBackoff {
			sawBackoff = true
		}
	}
	if !sawBackoff || events[len(events)-1].To != StateConnected {
		t.Fatalf("events: %+v", events)
	}
}
