package net

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A watcher reports a new connection and, once identify ran, the listen
// addresses of a peer that speaks the sync protocol; Close stops it.
func TestPeerWatcher(t *testing.T) {
	a, err := NewHost(LoopbackHostConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewHost(LoopbackHostConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sb := NewSyncer(b, SyncerConfig{}) // b speaks SyncProtocol
	defer sb.Close()
	conns := make(chan peer.ID, 4)
	idents := make(chan peer.AddrInfo, 4)
	w, err := WatchPeers(a, PeerEvents{
		Connected:  func(p peer.ID) { conns <- p },
		Identified: func(info peer.AddrInfo) { idents <- info },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-conns:
		if p != b.ID() {
			t.Fatalf("connected %s", p)
		}
	case <-ctx.Done():
		t.Fatal("no connection event")
	}
	select {
	case info := <-idents:
		if info.ID != b.ID() || len(info.Addrs) == 0 {
			t.Fatalf("identified %+v", info)
		}
	case <-ctx.Done():
		t.Fatal("no identify event")
	}
	if !Connected(a, b.ID()) || len(ConnectedPeers(a)) != 1 || len(FullAddrs(a)) == 0 {
		t.Fatal("connection helpers disagree")
	}
	_ = w.Close()
	_ = w.Close()
}
