package concord

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/store"
)

// Node is one Concord peer: a libp2p host, its store and the documents it
// hosts. It owns every goroutine it starts; Close stops them all.
type Node struct {
	cfg         Config
	st          *store.Store
	h           host.Host
	key         crypto.PrivKey
	self        crdt.ReplicaID
	metrics     *cnet.Metrics
	reg         *prometheus.Registry
	gossip      *cnet.Gossip
	syncer      *cnet.Syncer
	sup         *cnet.Supervisor
	stopWatch   func()
	connEvents  chan peer.ID
	gater       *cnet.Gater
	quit        chan struct{}
	wg          sync.WaitGroup
	notifyee    *network.NotifyBundle
	closeOnce   sync.Once
	closeErr    error
	mu          sync.Mutex
	docs        map[string]*Doc
	closed      bool
	connectedAt map[peer.ID]time.Time
	beacons     atomic.Uint64 // numbers summary beacons (see cnet.Summary.Beacon)
	identified  event.Subscription
}

// Open starts a node: it opens the store (creating the node key on first
// use), the libp2p host, GossipSub, the sync protocol and the peer
// supervisor, and dials the bootstrap peers.
func Open(ctx context.Context, cfg Config) (n *Node, err error) {
	cfg.ensureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var bootstrap []peer.AddrInfo
	for _, a := range cfg.Bootstrap {
		info, err := peer.AddrInfoFromString(a)
		if err != nil {
			return nil, fmt.Errorf("%w: bootstrap address %q: %v", ErrConfig, a, err)
		}
		bootstrap = append(bootstrap, *info)
	}
	n = &Node{cfg: cfg, docs: map[string]*Doc{}, quit: make(chan struct{}), connEvents: make(chan peer.ID, 1024), connectedAt: map[peer.ID]time.Time{}}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	sopts := store.DefaultOptions()
	sopts.Logger = cfg.Logger
	if cfg.DataDir == "" {
		n.st, err = store.OpenMemory(sopts)
	} else {
		n.st, err = store.OpenPebble(cfg.DataDir, sopts)
	}
	if err != nil {
		return nil, fmt.Errorf("concord: open store: %w", err)
	}
	cleanup = append(cleanup, func() { _ = n.st.Close() })
	n.key = cfg.PrivateKey
	if n.key == nil {
		n.key, err = LoadOrCreateKey(ctx, n.st)
		if err != nil {
			return nil, err
		}
	}
	if cfg.Registerer == nil {
		n.reg = prometheus.NewRegistry()
		cfg.Registerer = n.reg
	}
	n.metrics = cnet.NewMetrics(cfg.Registerer)
	hc := cnet.DefaultHostConfig()
	hc.ListenAddrs = cfg.ListenAddrs
	hc.PrivKey = n.key
	hc.PSK = cfg.PSK
	hc.Logger = cfg.Logger
	hc.Gater = cfg.Gater
	n.gater = cfg.Gater
	if n.h, err = cnet.NewHost(hc); err != nil {
		return nil, fmt.Errorf("concord: %w", err)
	}
	cleanup = append(cleanup, func() { _ = n.h.Close() })
	n.self = cnet.ReplicaFor(n.h.ID(), n.st.Incarnation())
	gc := cnet.DefaultGossipConfig()
	gc.FastHeartbeat = cfg.FastGossip
	gc.MeshDegree = cfg.MeshDegree
	gc.Metrics = n.metrics
	gc.Logger = cfg.Logger
	if n.gossip, err = cnet.NewGossip(n.h, gc); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = n.gossip.Close() })
	sl := cnet.DefaultSyncLimits()
	sl.Envelope = storedLimits
	n.syncer = cnet.NewSyncer(n.h, cnet.SyncerConfig{
		Timeout: cfg.SyncTimeout, Limits: sl, Metrics: n.metrics, Logger: cfg.Logger,
		OnExchange: cfg.Events.SyncFinished,
		Resolve: func(doc string) cnet.Replica {
			n.mu.Lock()
			defer n.mu.Unlock()
			if d := n.docs[doc]; d != nil {
				return d.r
			}
			return nil
		},
	})
	cleanup = append(cleanup, func() { _ = n.syncer.Close() })
	sc := cnet.DefaultSupervisorConfig(cnet.HostDialer(n.h))
	sc.Metrics = n.metrics
	sc.Logger = cfg.Logger
	if n.sup, err = cnet.NewSupervisor(sc); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = n.sup.Close() })
	n.notifyee = &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			select {
			case n.connEvents <- c.RemotePeer():
			default:
				n.metrics.Drop("conn_events", "full")
			}
		},
	}
	n.identified, err = n.h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted), eventbus.BufSize(256))
	if err != nil {
		return nil, fmt.Errorf("concord: subscribe to identify events: %w", err)
	}
	n.h.Network().Notify(n.notifyee)
	n.stopWatch = cnet.WatchHost(n.h, n.sup)
	n.wg.Add(3)
	go n.eventLoop()
	go n.beaconLoop()
	go n.learnLoop()
	// Peers to keep: bootstrap, then the peer book.
	for _, info := range bootstrap {
		n.h.Peerstore().AddAddrs(info.ID, info.Addrs, time.Hour)
		n.sup.Add(info)
	}
	if recs, err := n.st.Peers(ctx); err == nil {
		for _, rec := range recs {
			id, err := peer.Decode(rec.ID)
			if err != nil || id == n.h.ID() {
				continue
			}
			var addrs []multiaddr.Multiaddr
			for _, s := range rec.Addrs {
				if a, err := multiaddr.NewMultiaddr(s); err == nil {
					addrs = append(addrs, a)
				}
			}
			if len(addrs) > 0 {
				n.sup.Add(peer.AddrInfo{ID: id, Addrs: addrs})
			}
		}
	}
	return n, nil
}

// LoadOrCreateKey returns the node key kept in st, creating an Ed25519 key
// the first time.
func LoadOrCreateKey(ctx context.Context, st *store.Store) (crypto.PrivKey, error) {
	raw, err := st.LoadOrCreateKey(ctx, func() ([]byte, error) {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		return crypto.MarshalPrivateKey(k)
	})
	if err != nil {
		return nil, fmt.Errorf("concord: node key: %w", err)
	}
	k, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("concord: node key is unreadable: %w", err)
	}
	return k, nil
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Replica returns the node's replica ID (peer ID plus store incarnation).
func (n *Node) Replica() crdt.ReplicaID { return n.self }

// Host returns the libp2p host.
func (n *Node) Host() host.Host { return n.h }

// Addrs returns the node's full listen multiaddrs (…/p2p/<id>).
func (n *Node) Addrs() []string {
	var out []string
	for _, a := range n.h.Addrs() {
		out = append(out, a.String()+"/p2p/"+n.h.ID().String())
	}
	sort.Strings(out)
	return out
}

// Registry returns the registry of the node's metrics when Config.Registerer
// was nil, else nil.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// PeerInfo is one peer's connection state.
type PeerInfo struct {
	ID    peer.ID
	State string // connecting, connected, backoff
	Since time.Time
}

// Peers returns the supervised peers and every other connected peer.
func (n *Node) Peers() []PeerInfo {
	seen := map[peer.ID]bool{}
	var out []PeerInfo
	for _, s := range n.sup.States() {
		seen[s.ID] = true
		st := s.State.String()
		if n.h.Network().Connectedness(s.ID) == network.Connected {
			st = "connected"
		}
		out = append(out, PeerInfo{ID: s.ID, State: st, Since: s.Since})
	}
	for _, p := range n.h.Network().Peers() {
		if seen[p] {
			continue
		}
		since := time.Now()
		for _, c := range n.h.Network().ConnsToPeer(p) {
			if o := c.Stat().Opened; !o.IsZero() && o.Before(since) {
				since = o
			}
		}
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
	n.h.Peerstore().AddAddrs(info.ID, info.Addrs, time.Hour)
	n.sup.Add(*info)
	if err := n.h.Connect(ctx, *info); err != nil {
		return fmt.Errorf("concord: connect %s: %w", info.ID, err)
	}
	return nil
}

// Docs returns the names of the open documents.
func (n *Node) Docs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.docs))
	for name := range n.docs {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// DocOption configures a document.
type DocOption func(*docOptions)

type docOptions struct {
	writers  []peer.ID
	set      bool
	ackPeers int
}

// WithWriters restricts who may write the document: deltas authored by
// other peers are rejected (gossip and sync alike) and counted.
func WithWriters(ids ...peer.ID) DocOption {
	return func(o *docOptions) { o.writers, o.set = ids, true }
}

// WithAckPeers sets how many peers must hold an own delta before it leaves
// the outbox.
func WithAckPeers(k int) DocOption { return func(o *docOptions) { o.ackPeers = k } }

// Doc opens (joins or creates) the document name. Opening an open document
// returns the same *Doc; options apply only the first time.
func (n *Node) Doc(ctx context.Context, name string, opts ...DocOption) (*Doc, error) {
	if name == "" {
		return nil, fmt.Errorf("concord: empty document name")
	}
	o := docOptions{writers: n.cfg.Writers, set: n.cfg.Writers != nil, ackPeers: n.cfg.AckPeers}
	for _, f := range opts {
		f(&o)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if d := n.docs[name]; d != nil {
		return d, nil
	}
	if len(n.docs) >= n.cfg.MaxDocs {
		return nil, fmt.Errorf("%w: %d", ErrTooManyDocs, n.cfg.MaxDocs)
	}
	var writers map[peer.ID]bool
	if o.set {
		writers = map[peer.ID]bool{}
		for _, w := range o.writers {
			writers[w] = true
		}
	}
	d := &Doc{n: n, name: name}
	deps := replicaDeps{
		store: n.st, key: n.key, self: n.self, selfPeer: n.h.ID(), writers: writers,
		ackPeers: max(o.ackPeers, 1), trustAuthor: n.cfg.TrustAuthorChannel, snapshotAfter: n.cfg.SnapshotAfter, compactAfter: n.cfg.CompactAfter,
		now: n.cfg.Now, metrics: n.metrics, log: n.cfg.Logger.With("doc", name),
		publish: func(e *cnet.Envelope) {
			if len(e.Payload) > cnet.DefaultLimits().MaxPayloadBytes {
				n.metrics.Drop("gossip_out", "too_large") // the sync stream carries it
				return
			}
			if t := d.topic; t != nil {
				t.Publish(e)
			}
		},
	}
	r, err := openReplica(ctx, name, deps)
	if err != nil {
		return nil, err
	}
	d.r = r
	t, err := n.gossip.Join(name, docHandler{d})
	if err != nil {
		r.close()
		return nil, err
	}
	d.topic = t
	n.docs[name] = d
	// Catch up with everyone already connected.
	for _, p := range n.h.Network().Peers() {
		n.syncer.Trigger(p, r)
	}
	return d, nil
}

// docHandler routes a topic's traffic to its document.
type docHandler struct{ d *Doc }

func (h docHandler) Validate(from peer.ID, e *cnet.Envelope) error { return h.d.r.Validate(from, e) }

func (h docHandler) Deliver(from peer.ID, envs []*cnet.Envelope) {
	r := h.d.r
	r.Deliver(from, envs)
	// A gap — a delta whose predecessor we do not hold — is repaired by sync
	// if it is still there after a grace period: concurrent validation
	// reorders gossip slightly, and the predecessor is usually a moment
	// behind (or still being persisted).
	for _, e := range envs {
		if e.Seq > 1 && !r.d.store.Has(r.doc, e.Origin, e.Seq-1) {
			h.d.checkGapLater(from, e.Origin, e.Seq)
		}
	}
}

func (h docHandler) Summary(from peer.ID, s *cnet.Summary) {
	n, d := h.d.n, h.d
	r := d.r
	p, err := cnet.PeerOf(s.Origin)
	if err != nil {
		return
	}
	if p == from {
		// Straight from its origin over an authenticated connection: an ack.
		r.Observed(p, s.VV)
	}
	// Pull only what the previous summary of this origin announced and we
	// still lack: deltas announced a moment ago are usually still in
	// flight on gossip, and pulling them would send them twice.
	prev := d.swapSummary(s.Origin, s.VV)
	if prev == nil {
		return
	}
	mine := r.Version()
	weLack, theyLack := false, false
	for rep, v := range prev {
		if v > mine[rep] {
			weLack = true
		}
	}
	for rep, v := range mine {
		if v > s.VV[rep] {
			theyLack = true
		}
	}
	// When both sides lack something, both see it in each other's
	// summaries: only the lower ID starts the exchange.
	if !weLack || (theyLack && n.h.ID() > p) {
		return
	}
	target := p
	if n.h.Network().Connectedness(p) != network.Connected {
		target = from
	}
	n.syncer.Trigger(target, r)
}

// eventLoop reacts to new connections: remember the peer, publish
// summaries and run anti-entropy for every document.
func (n *Node) eventLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.quit:
			return
		case p := <-n.connEvents:
			n.mu.Lock()
			docs := make([]*Doc, 0, len(n.docs))
			for _, d := range n.docs {
				docs = append(docs, d)
			}
			n.mu.Unlock()
			// One side starts the exchange (it repairs both): the lower ID.
			if n.h.ID() < p {
				for _, d := range docs {
					n.syncer.Trigger(p, d.r)
				}
			}
			n.publishSummaries()
		}
	}
}

// maxLearnedPeers bounds the supervised peers; past it, peers that connect
// to us are served but not remembered.
const maxLearnedPeers = 256

// learnLoop keeps the Concord peers that connect to us: once identify tells
// their listen addresses, they go into the persisted peer book and the
// supervisor redials them when the connection drops.
func (n *Node) learnLoop() {
	defer n.wg.Done()
	for ev := range n.identified.Out() {
		e := ev.(event.EvtPeerIdentificationCompleted)
		if e.Peer == n.h.ID() || !slices.Contains(e.Protocols, cnet.SyncProtocol) || len(e.ListenAddrs) == 0 {
			continue
		}
		if len(n.sup.States()) >= maxLearnedPeers {
			n.metrics.Drop("learned_peers", "full")
			continue
		}
		n.rememberPeer(e.Peer, e.ListenAddrs)
		n.sup.Add(peer.AddrInfo{ID: e.Peer, Addrs: e.ListenAddrs})
	}
}

// rememberPeer records a peer's listen addresses in the peer book.
func (n *Node) rememberPeer(p peer.ID, addrs []multiaddr.Multiaddr) {
	if len(addrs) == 0 {
		return
	}
	rec := store.PeerRecord{ID: p.String(), LastSeen: time.Now()}
	for _, a := range addrs {
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
		err := d.topic.PublishSummary(ctx, &cnet.Summary{Doc: d.name, Origin: n.self, VV: d.r.Version(), Beacon: n.beacons.Add(1)})
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			n.cfg.Logger.Debug("summary not published", "doc", d.name, "err", err)
		}
	}
}

// Close stops the node: documents flush their pending writes, then the
// network stops and the store closes. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.closeAll() })
	return n.closeErr
}

func (n *Node) closeAll() error {
	n.mu.Lock()
	n.closed = true
	docs := make([]*Doc, 0, len(n.docs))
	for _, d := range n.docs {
		docs = append(docs, d)
	}
	n.mu.Unlock()
	for _, p := range n.h.Network().Peers() {
		n.rememberPeer(p, n.h.Peerstore().Addrs(p)) // refresh last seen
	}
	for _, d := range docs {
		d.stopGapChecks()
		d.r.close()
	}
	n.h.Network().StopNotify(n.notifyee)
	close(n.quit)
	if n.identified != nil {
		_ = n.identified.Close()
	}
	n.wg.Wait()
	n.stopWatch()
	var errs []error
	errs = append(errs, n.sup.Close())
	errs = append(errs, n.syncer.Close())
	errs = append(errs, n.gossip.Close())
	errs = append(errs, n.h.Close())
	errs = append(errs, n.st.Close())
	return errors.Join(errs...)
}
