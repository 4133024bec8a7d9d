package net

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/multiformats/go-multiaddr"
)

// PeerEvents are the host events a node reacts to. Both callbacks run on
// the watcher's goroutine, one at a time, in order; they may block briefly.
type PeerEvents struct {
	// Connected is called for each new connection (p may have others).
	Connected func(p peer.ID)
	// Identified is called once a peer that speaks SyncProtocol has told
	// its listen addresses.
	Identified func(info peer.AddrInfo)
}

// peerEventQueue bounds connection events waiting for the watcher's
// goroutine. Overflow policy: the event is dropped and counted
// (queue="conn_events"); the next summary beacon covers what it would have
// triggered.
const peerEventQueue = 1024

// PeerWatcher delivers a host's PeerEvents. Close stops it.
type PeerWatcher struct {
	h     host.Host
	ev    PeerEvents
	nb    *network.NotifyBundle
	sub   event.Subscription
	conns chan peer.ID
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// WatchPeers starts delivering h's events to ev.
func WatchPeers(h host.Host, ev PeerEvents, m *Metrics) (*PeerWatcher, error) {
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted), eventbus.BufSize(256))
	if err != nil {
		return nil, fmt.Errorf("net: subscribe to identify events: %w", err)
	}
	w := &PeerWatcher{h: h, ev: ev, sub: sub, conns: make(chan peer.ID, peerEventQueue), quit: make(chan struct{}), done: make(chan struct{})}
	w.nb = &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			select {
			case w.conns <- c.RemotePeer():
			default:
				m.Drop("conn_events", "full")
			}
		},
	}
	h.Network().Notify(w.nb)
	go w.run()
	return w, nil
}

func (w *PeerWatcher) run() {
	defer close(w.done)
	for {
		select {
		case <-w.quit:
			return
		case p := <-w.conns:
			if w.ev.Connected != nil {
				w.ev.Connected(p)
			}
		case e, ok := <-w.sub.Out():
			if !ok {
				return
			}
			id := e.(event.EvtPeerIdentificationCompleted)
			if id.Peer == w.h.ID() || !slices.Contains(id.Protocols, SyncProtocol) || len(id.ListenAddrs) == 0 {
				continue
			}
			if w.ev.Identified != nil {
				w.ev.Identified(peer.AddrInfo{ID: id.Peer, Addrs: id.ListenAddrs})
			}
		}
	}
}

// Close stops the watcher and waits for its goroutine. Idempotent.
func (w *PeerWatcher) Close() error {
	w.once.Do(func() {
		w.h.Network().StopNotify(w.nb)
		close(w.quit)
		<-w.done
		_ = w.sub.Close()
	})
	return nil
}

// Connected reports whether h has a connection to p.
func Connected(h host.Host, p peer.ID) bool {
	return h.Network().Connectedness(p) == network.Connected
}

// ConnectedPeers returns the peers h is connected to, each with the time
// its oldest open connection was opened.
func ConnectedPeers(h host.Host) map[peer.ID]time.Time {
	out := map[peer.ID]time.Time{}
	for _, p := range h.Network().Peers() {
		since := time.Now()
		for _, c := range h.Network().ConnsToPeer(p) {
			if o := c.Stat().Opened; !o.IsZero() && o.Before(since) {
				since = o
			}
		}
		out[p] = since
	}
	return out
}

// FullAddrs returns h's listen addresses with /p2p/<id> appended, sorted.
func FullAddrs(h host.Host) []string {
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.String()+"/p2p/"+h.ID().String())
	}
	sort.Strings(out)
	return out
}

// ParseAddrInfo builds a peer's AddrInfo from its ID and multiaddr
// strings, as a peer book stores them; unparsable addresses are skipped.
func ParseAddrInfo(id string, addrs []string) (peer.AddrInfo, error) {
	p, err := peer.Decode(id)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("net: peer ID %q: %w", id, err)
	}
	info := peer.AddrInfo{ID: p}
	for _, s := range addrs {
		if a, err := multiaddr.NewMultiaddr(s); err == nil {
			info.Addrs = append(info.Addrs, a)
		}
	}
	return info, nil
}
