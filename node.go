package concord

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/internal/workpool"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Node is one Concord peer: a libp2p host, its store and the documents it
// hosts. It owns every goroutine it starts; Close stops them all.
type Node struct {
	cfg       Config
	st        *store.Store
	h         host.Host
	key       crypto.PrivKey
	self      crdt.ReplicaID
	metrics   *cnet.Metrics
	reg       *prometheus.Registry
	gossip    *cnet.Gossip
	disc      *cnet.Discovery // nil without Config.Discovery
	syncer    *cnet.Syncer
	sup       *cnet.Supervisor
	stopWatch func()
	watcher   *cnet.PeerWatcher
	gater     *cnet.Gater
	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	mu        sync.Mutex
	docs      map[string]*Doc
	opening   map[string]chan struct{} // documents being loaded, closed when done
	closed    bool
	pool      *workpool.Pool // runs every document's work
	inbox     atomic.Int64   // bytes waiting in every document's gossip inbox
	presence  *presenceMgr   // every document's presence, one goroutine
	beacons   atomic.Uint64  // numbers summary beacons (see wire.Summary.Beacon), from the clock at Open
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
	n = &Node{cfg: cfg, docs: map[string]*Doc{}, opening: map[string]chan struct{}{}, quit: make(chan struct{})}
	// Beacon numbers start from the clock, not 1: a restarted node's first
	// beacons would otherwise repeat its previous run's byte for byte and be
	// dropped as duplicates by pubsub's seen cache for minutes.
	n.beacons.Store(uint64(cfg.Now().UnixMicro()))
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
	n.self = wire.ReplicaFor(n.h.ID(), n.st.Incarnation())
	gc := cnet.DefaultGossipConfig()
	gc.FastHeartbeat = cfg.FastGossip
	gc.FlushInterval = cfg.GossipFlushInterval
	gc.MeshDegree = cfg.MeshDegree
	gc.Features = cfg.features
	gc.Metrics = n.metrics
	gc.Logger = cfg.Logger
	if cfg.Discovery || cfg.MDNS {
		if n.disc, err = cnet.StartDiscovery(n.h, cnet.DiscoveryConfig{Bootstrap: bootstrap, MDNS: cfg.MDNS, Logger: cfg.Logger}); err != nil {
			return nil, fmt.Errorf("concord: %w", err)
		}
		cleanup = append(cleanup, func() { _ = n.disc.Close() })
		gc.Discovery = n.disc.Rendezvous()
	}
	n.pool = workpool.New(max(8, 4*runtime.GOMAXPROCS(0)))
	cleanup = append(cleanup, n.pool.Close)
	if n.gossip, err = cnet.NewGossip(n.h, gc); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = n.gossip.Close() })
	n.presence = newPresenceMgr(n, cfg.Registerer)
	cleanup = append(cleanup, n.presence.close)
	sl := wire.DefaultSyncLimits()
	sl.Envelope = storedLimits
	n.syncer = cnet.NewSyncer(n.h, cnet.SyncerConfig{
		Timeout: cfg.SyncTimeout, Limits: sl, Metrics: n.metrics, Logger: cfg.Logger,
		OnExchange: cfg.Events.SyncFinished,
		Resolve: func(doc string) cnet.SyncDoc {
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
	n.watcher, err = cnet.WatchPeers(n.h, cnet.PeerEvents{Connected: n.onConnect, Identified: n.onIdentified}, n.metrics)
	if err != nil {
		return nil, err
	}
	n.stopWatch = cnet.WatchHost(n.h, n.sup)
	n.wg.Add(1)
	go n.beaconLoop()
	// Peers to keep: bootstrap, then the peer book.
	for _, info := range bootstrap {
		n.sup.Add(info)
	}
	if recs, err := n.st.Peers(ctx); err == nil {
		for _, rec := range recs {
			info, err := cnet.ParseAddrInfo(rec.ID, rec.Addrs)
			if err == nil && info.ID != n.h.ID() && len(info.Addrs) > 0 {
				n.sup.Add(info)
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
func (n *Node) Addrs() []string { return cnet.FullAddrs(n.h) }

// Registry returns the registry of the node's metrics when Config.Registerer
// was nil, else nil.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Docs returns the names of the open documents.
func (n *Node) Docs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Sorted(maps.Keys(n.docs))
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
	if err := wire.CheckDocName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDocName, err)
	}
	o := docOptions{writers: n.cfg.Writers, set: n.cfg.Writers != nil, ackPeers: n.cfg.AckPeers}
	for _, f := range opts {
		f(&o)
	}
	// The document is loaded (its whole log replayed) outside n.mu: other
	// documents stay usable meanwhile; a second caller for the same name
	// waits for the first.
	n.mu.Lock()
	for {
		if n.closed {
			n.mu.Unlock()
			return nil, ErrClosed
		}
		if d := n.docs[name]; d != nil {
			n.mu.Unlock()
			return d, nil
		}
		ch := n.opening[name]
		if ch == nil {
			break
		}
		n.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		n.mu.Lock()
	}
	if len(n.docs)+len(n.opening) >= n.cfg.MaxDocs {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: %d", ErrTooManyDocs, n.cfg.MaxDocs)
	}
	done := make(chan struct{})
	n.opening[name] = done
	n.mu.Unlock()
	d, err := n.openDoc(name, o)
	n.mu.Lock()
	delete(n.opening, name)
	close(done)
	if err == nil && n.closed {
		n.mu.Unlock()
		d.close()
		return nil, ErrClosed
	}
	if err == nil {
		n.docs[name] = d
	}
	n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// Catch up with everyone already connected.
	d.r.step(func(e *engine.Doc) {
		for p := range cnet.ConnectedPeers(n.h) {
			e.Pull(p)
		}
	})
	return d, nil
}

// openDoc loads document name and joins its topic.
func (n *Node) openDoc(name string, o docOptions) (*Doc, error) {
	var writers map[peer.ID]bool
	if o.set {
		writers = map[peer.ID]bool{}
		for _, w := range o.writers {
			writers[w] = true
		}
	}
	d := &Doc{n: n, name: name}
	deps := driverDeps{
		store: n.st, key: n.key, self: n.self, selfPeer: n.h.ID(), writers: writers,
		ackPeers: max(o.ackPeers, 1), trustAuthor: n.cfg.TrustAuthorChannel, groupWait: n.cfg.GroupCommitWait, snapshotAfter: n.cfg.SnapshotAfter, compactAfter: n.cfg.CompactAfter, retention: n.cfg.CompactRetention,
		features: n.cfg.features,
		now:      n.cfg.Now, metrics: n.metrics, log: n.cfg.Logger.With("doc", name),
		onEquivocation: n.cfg.Events.Equivocation,
		publish: func(e *wire.Envelope) {
			if len(e.Payload) > wire.DefaultLimits().MaxPayloadBytes {
				n.metrics.Drop("gossip_out", "too_large") // the sync stream carries it
				return
			}
			if t := d.topic; t != nil {
				t.Publish(e)
			}
		},
		pool:       n.pool,
		inboxBytes: &n.inbox,
		connected:  func(p peer.ID) bool { return cnet.Connected(n.h, p) },
		pull:       func(p peer.ID, r *driver) { n.syncer.Trigger(p, r) },
	}
	r, err := openDriver(name, deps)
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
	if err := n.presence.join(name, writers); err != nil {
		_ = t.Close()
		r.close()
		return nil, err
	}
	return d, nil
}

// close stops the document's driver.
func (d *Doc) close() { d.r.close() }

// docHandler routes a topic's traffic to its document.
type docHandler struct{ d *Doc }

func (h docHandler) Validate(from peer.ID, e *wire.Envelope) error { return h.d.r.Validate(from, e) }

// Version implements cnet.VersionHolder: summaries in this node's name are
// checked against what it durably holds.
func (h docHandler) Version() crdt.VersionVector { return h.d.r.Version() }

// Coalesce implements cnet.Coalescer: a run of own deltas queued for gossip
// goes out as one aggregate.
func (h docHandler) Coalesce(run []*wire.Envelope) (*wire.Envelope, error) {
	return h.d.r.coalesce(run)
}

// Deliver queues validated envelopes for the engine (the document's
// inbox), which repairs a gap — a delta whose predecessor we do not hold —
// by sync if it is still there after a grace period (engine.GapGrace).
func (h docHandler) Deliver(from peer.ID, envs []*wire.Envelope) { h.d.r.Deliver(from, envs) }

// Summary hands a summary to the engine: an acknowledgment when it comes
// from its origin, and a reason to pull when it shows what we lack.
func (h docHandler) Summary(from peer.ID, s *wire.Summary) { h.d.r.Summary(from, s) }

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
	n.presence.close()    // goodbyes first, while the network is up
	_ = n.watcher.Close() // no more connection events reach the documents
	for _, d := range docs {
		d.close()
	}
	n.pool.Close()
	close(n.quit)
	n.wg.Wait()
	n.stopWatch()
	var errs []error
	errs = append(errs, n.sup.Close())
	errs = append(errs, n.syncer.Close())
	errs = append(errs, n.gossip.Close())
	if n.disc != nil {
		errs = append(errs, n.disc.Close())
	}
	errs = append(errs, n.h.Close())
	errs = append(errs, n.st.Close())
	return errors.Join(errs...)
}
