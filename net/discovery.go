package net

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// Discovery beyond the bootstrap peers, with libp2p's own engines: a
// Kademlia DHT among Concord peers only (its own protocol prefix, so it
// never joins the public IPFS DHT, and no bootstrap peers but the ones the
// node is given), used by GossipSub as a rendezvous by topic — each node
// advertises the topics of its documents and looks up more peers for a
// topic whose mesh is short — and, when asked, mDNS on the local network.
// So a peer that knows any one Concord peer finds the peers of its
// documents, even when that one holds none of them.

// DHTProtocolPrefix is the protocol prefix of Concord's DHT: its protocol
// is /concord/kad/1.0.0.
const DHTProtocolPrefix = "/concord"

// MDNSServiceName is the mDNS service Concord peers announce.
const MDNSServiceName = "_concord-p2p._udp"

// MaxProviderRecords bounds the provider records a node's DHT keeps for
// others (each a few hundred bytes, kept 48 h); past it new records are
// refused until old ones expire, so a peer flooding it with records costs
// this node at most tens of MiB.
const MaxProviderRecords = 1 << 16

// errDatastoreFull is a bounded datastore's refusal.
var errDatastoreFull = errors.New("net: DHT record store full")

// boundedDatastore is an in-memory datastore holding at most max keys.
type boundedDatastore struct {
	ds.Datastore
	mu  sync.Mutex
	n   int
	max int
}

func newBoundedDatastore(max int) *boundedDatastore {
	return &boundedDatastore{Datastore: dssync.MutexWrap(ds.NewMapDatastore()), max: max}
}

func (b *boundedDatastore) Put(ctx context.Context, k ds.Key, v []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	had, err := b.Datastore.Has(ctx, k)
	if err != nil {
		return err
	}
	if !had && b.n >= b.max {
		return errDatastoreFull
	}
	if err := b.Datastore.Put(ctx, k, v); err != nil {
		return err
	}
	if !had {
		b.n++
	}
	return nil
}

func (b *boundedDatastore) Delete(ctx context.Context, k ds.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	had, err := b.Datastore.Has(ctx, k)
	if err != nil || !had {
		return err
	}
	if err := b.Datastore.Delete(ctx, k); err != nil {
		return err
	}
	b.n--
	return nil
}

// Batch applies its writes through Put and Delete, in the order they
// were made, so they are bounded too and a batch past the bound keeps
// its first writes (go-datastore's basic batch applies them in map order).
func (b *boundedDatastore) Batch(context.Context) (ds.Batch, error) {
	return &orderedBatch{d: b}, nil
}

// orderedBatch is a batch of writes applied in order on Commit.
type orderedBatch struct {
	d   *boundedDatastore
	ops []batchOp
}

type batchOp struct {
	k      ds.Key
	v      []byte
	delete bool
}

func (o *orderedBatch) Put(_ context.Context, k ds.Key, v []byte) error {
	o.ops = append(o.ops, batchOp{k: k, v: v})
	return nil
}

func (o *orderedBatch) Delete(_ context.Context, k ds.Key) error {
	o.ops = append(o.ops, batchOp{k: k, delete: true})
	return nil
}

// Commit applies the writes in order and stops at the first error.
func (o *orderedBatch) Commit(ctx context.Context) error {
	ops := o.ops
	o.ops = nil
	for _, op := range ops {
		var err error
		if op.delete {
			err = o.d.Delete(ctx, op.k)
		} else {
			err = o.d.Put(ctx, op.k, op.v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// DiscoveryConfig configures StartDiscovery.
type DiscoveryConfig struct {
	// Bootstrap are the DHT's first peers (the node's bootstrap peers).
	// Public DHT bootstrap peers are never used.
	Bootstrap []peer.AddrInfo
	// MDNS also finds peers on the local network by multicast DNS. Never
	// enabled in tests or CI.
	MDNS bool
	// Logger receives discovery messages. Default: discarded.
	Logger *slog.Logger
}

// Discovery is a node's DHT (and mDNS service).
type Discovery struct {
	h    host.Host
	dht  *dht.IpfsDHT
	rd   *drouting.RoutingDiscovery
	mdns mdns.Service
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc
}

// StartDiscovery starts the DHT on h in server mode (every Concord peer
// answers lookups: on a private network or loopback no peer would
// otherwise count as reachable) and, with cfg.MDNS, mDNS.
func StartDiscovery(h host.Host, cfg DiscoveryConfig) (*Discovery, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	kdht, err := dht.New(h,
		dht.ProtocolPrefix(DHTProtocolPrefix),
		dht.Mode(dht.ModeServer),
		dht.BootstrapPeers(cfg.Bootstrap...),
		dht.DisableValues(), // rendezvous needs provider records only
		// A server stores the provider records other peers send it: bounded,
		// so that no peer can make it hold unbounded memory.
		dht.ProviderDatastore(newBoundedDatastore(MaxProviderRecords)),
	)
	if err != nil {
		return nil, fmt.Errorf("net: start the DHT: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	d := &Discovery{h: h, dht: kdht, rd: drouting.NewRoutingDiscovery(kdht), log: cfg.Logger, ctx: ctx, stop: stop}
	if err := kdht.Bootstrap(ctx); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("net: bootstrap the DHT: %w", err)
	}
	if cfg.MDNS {
		d.mdns = mdns.NewMdnsService(h, MDNSServiceName, mdnsNotifee{d})
		if err := d.mdns.Start(); err != nil {
			_ = d.Close()
			return nil, fmt.Errorf("net: start mDNS: %w", err)
		}
	}
	return d, nil
}

// Rendezvous returns the topic rendezvous GossipSub uses
// (GossipConfig.Discovery).
func (d *Discovery) Rendezvous() discovery.Discovery { return d.rd }

// RoutingTableSize returns how many peers the DHT's routing table holds.
func (d *Discovery) RoutingTableSize() int { return d.dht.RoutingTable().Size() }

// Close stops mDNS and the DHT.
func (d *Discovery) Close() error {
	d.stop()
	var errs []error
	if d.mdns != nil {
		errs = append(errs, d.mdns.Close())
	}
	errs = append(errs, d.dht.Close())
	return errors.Join(errs...)
}

// mdnsNotifee connects to the peers mDNS finds.
type mdnsNotifee struct{ d *Discovery }

func (n mdnsNotifee) HandlePeerFound(info peer.AddrInfo) {
	if info.ID == n.d.h.ID() {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(n.d.ctx, 10*time.Second)
		defer cancel()
		if err := n.d.h.Connect(ctx, info); err != nil {
			n.d.log.Debug("mdns: connect", "peer", info.ID, "err", err)
		}
	}()
}
