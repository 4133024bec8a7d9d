package concord

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/engine"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Peers, connections and summary beacons.

// PeerInfo is one peer's connection state.
type PeerInfo struct {
	ID    peer.ID
	State string // connecting, connected, backoff
	Since time.Time
}

// Peers returns the supervised peers and every other connected peer.
func (n *Node) Peers() []PeerInfo {
	conns := cnet.ConnectedPeers(n.h)
	var out []PeerInfo
	for _, s := range n.sup.States() {
		st := s.State.String()
		if _, ok := conns[s.ID]; ok {
			st = "connected"
			delete(conns, s.ID)
		}
		out = append(out, PeerInfo{ID: s.ID, State: st, Since: s.Since})
	}
	for p, since := range conns {
		out = append(out, PeerInfo{ID: p, State: "connected", Since: since})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Connect dials addr (a multiaddr ending in /p2p/<id>) and keeps the peer
// connected from then on.
func (n *Node) Connect(ctx context.Context, addr string) error {
	info, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return fmt.Errorf("concord: bad peer address %q: %w", addr, err)
	}
	n.sup.Add(*info)
	if err := cnet.HostDialer(n.h).Dial(ctx, *info); err != nil {
		return fmt.Errorf("concord: connect %s: %w", info.ID, err)
	}
	return nil
}

// onConnect reacts to a new connection: run anti-entropy for every
// document (only the lower peer ID starts it: one exchange repairs both
// sides) and publish summaries. It runs on the peer watcher's goroutine.
func (n *Node) onConnect(p peer.ID) {
	n.mu.Lock()
	docs := make([]*Doc, 0, len(n.docs))
	for _, d := range n.docs {
		docs = append(docs, d)
	}
	n.mu.Unlock()
	for _, d := range docs {
		d.r.step(func(e *engine.Doc) { e.Connected(p) })
	}
	n.publishSummaries()
}

// maxLearnedPeers bounds the supervised peers; past it, peers that connect
// to us are served but not remembered (counted as learned_peers drops).
const maxLearnedPeers = 256

// onIdentified keeps a Concord peer that connected to us: its listen
// addresses go into the persisted peer book and the supervisor redials it
// when the connection drops.
func (n *Node) onIdentified(info peer.AddrInfo) {
	if len(n.sup.States()) >= maxLearnedPeers {
		n.metrics.Drop("learned_peers", "full")
		return
	}
	n.rememberPeer(info)
	n.sup.Add(info)
}

// rememberPeer records a peer's listen addresses in the peer book.
func (n *Node) rememberPeer(info peer.AddrInfo) {
	p := info.ID
	rec := store.PeerRecord{ID: p.String(), LastSeen: time.Now()}
	for _, a := range info.Addrs {
		rec.Addrs = append(rec.Addrs, a.String())
	}
	slices.Sort(rec.Addrs)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.st.PutPeer(ctx, rec); err != nil {
		n.cfg.Logger.Debug("peer book write failed", "peer", p, "err", err)
	}
}

// beaconLoop publishes every document's summary on a jittered interval.
func (n *Node) beaconLoop() {
	defer n.wg.Done()
	for {
		d := time.Duration(float64(n.cfg.SummaryInterval) * (0.75 + 0.5*mrand.Float64()))
		t := time.NewTimer(d)
		select {
		case <-n.quit:
			t.Stop()
			return
		case <-t.C:
			n.publishSummaries()
		}
	}
}

func (n *Node) publishSummaries() {
	n.mu.Lock()
	docs := make([]*Doc, 0, len(n.docs))
	for _, d := range n.docs {
		docs = append(docs, d)
	}
	n.mu.Unlock()
	for _, d := range docs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := d.topic.PublishSummary(ctx, &wire.Summary{Doc: d.name, Origin: n.self, VV: d.r.Version(), Beacon: n.beacons.Add(1)})
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			n.cfg.Logger.Debug("summary not published", "doc", d.name, "err", err)
		}
	}
}
