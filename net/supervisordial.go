package net

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// Dialing: the supervisor's dials in flight and its seam to a libp2p host.

// Dialer is how the supervisor reaches the network. Dial returns nil once a
// connection to p is open (already being connected counts).
type Dialer interface {
	Dial(ctx context.Context, p peer.AddrInfo) error
}

func (s *Supervisor) startDialLocked(e *peerEntry) {
	e.dialing, e.lost = true, false
	s.inflight++
	reconnect := e.redial
	e.redial = true
	if reconnect {
		s.cfg.Metrics.reconnectAttempt()
	}
	info := peer.AddrInfo{ID: e.info.ID, Addrs: slices.Clone(e.info.Addrs)}
	gen := e.gen
	s.wg.Add(1)
	go s.dial(info, gen, reconnect)
}

func (s *Supervisor) dial(info peer.AddrInfo, gen uint64, reconnect bool) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	err := s.cfg.Dialer.Dial(ctx, info)
	cancel()

	s.mu.Lock()
	s.inflight--
	e, ok := s.peers[info.ID]
	if ok && !s.closed && e.gen == gen {
		e.dialing = false
		if err == nil && e.state == StateConnecting && e.lost {
			// The connection the dial found (one that was open already)
			// closed before we could mark the peer connected: without this
			// the peer would sit in Connected with no connection, never
			// redialled.
			err = errLostDuringDial
		}
		if err == nil && reconnect {
			s.cfg.Metrics.reconnectSuccess()
		}
		if e.state == StateConnecting { // else a notification got there first
			now := time.Now()
			if err == nil {
				s.setStateLocked(e, StateConnected, now, 0, nil)
			} else {
				s.log.Debug("dial failed", "peer", info.ID, "err", err)
				s.backoffLocked(e, now, err)
			}
		}
	}
	s.mu.Unlock()
	s.kick()
	s.flush()
}

// HostDialer adapts a libp2p host to Dialer. Each dial first clears the
// swarm's own dial backoff for the peer (the supervisor does the backing
// off), then calls h.Connect.
func HostDialer(h host.Host) Dialer { return hostDialer{h} }

type hostDialer struct{ h host.Host }

func (d hostDialer) Dial(ctx context.Context, p peer.AddrInfo) error {
	if sw, ok := d.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p.ID)
	}
	if err := d.h.Connect(ctx, p); err != nil {
		return err
	}
	if d.h.Network().Connectedness(p.ID) != network.Connected {
		return fmt.Errorf("net: connection to %s closed right after dial", p.ID)
	}
	return nil
}

// WatchHost feeds h's connection notifications to s: Connected when a
// connection opens, Disconnected when the last connection to a peer closes.
// Peers already connected are reported at once. Call stop (idempotent) to
// detach, before closing h or s.
func WatchHost(h host.Host, s *Supervisor) (stop func()) {
	nb := &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) { s.Connected(c.RemotePeer()) },
		DisconnectedF: func(n network.Network, c network.Conn) {
			if n.Connectedness(c.RemotePeer()) != network.Connected {
				s.Disconnected(c.RemotePeer())
			}
		},
	}
	h.Network().Notify(nb)
	for _, p := range h.Network().Peers() {
		s.Connected(p)
	}
	var once sync.Once
	return func() { once.Do(func() { h.Network().StopNotify(nb) }) }
}
