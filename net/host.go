package net

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/concord-p2p/concord/wire"
)

// Errors returned (wrapped) by NewHost.
var (
	// ErrPSKWithQUIC: a private network key was set together with a QUIC
	// listen address. libp2p private networks only work over TCP (QUIC has
	// its own handshake that the PSK cannot wrap).
	ErrPSKWithQUIC = errors.New("net: a private network (PSK) cannot use QUIC; listen on TCP only")
	// ErrHostConfig: the HostConfig is invalid (bad address, bad PSK length…).
	ErrHostConfig = errors.New("net: invalid host config")
)

// HostConfig configures NewHost. The zero value is not usable: start from
// DefaultHostConfig or LoopbackHostConfig.
type HostConfig struct {
	// PrivKey is the node's identity. Nil: a fresh Ed25519 key (the peer ID
	// then inlines the public key, which envelope verification relies on).
	PrivKey crypto.PrivKey
	// ListenAddrs are multiaddr strings. Default (DefaultHostConfig):
	// /ip4/0.0.0.0/tcp/0 and /ip4/0.0.0.0/udp/0/quic-v1. Empty: the host
	// listens nowhere (it can still dial).
	ListenAddrs []string
	// PSK, if set, makes the host join a private network: it only talks to
	// hosts holding the same 32-byte key. Requires TCP-only ListenAddrs
	// (ErrPSKWithQUIC otherwise); the QUIC transport is then not enabled.
	// Default nil.
	PSK pnet.PSK
	// Gater, if set, decides which peers may connect (see Gater.Block).
	// Default nil (everyone).
	Gater *Gater
	// EnableMDNS is reserved for local-network discovery (the --mdns flag of
	// the demo peer). NewHost does not start mDNS; the discovery component
	// does, when this is true. Default false; tests never enable it.
	EnableMDNS bool
	// MemoryLimit is the memory the resource manager lets libp2p use, in
	// bytes; the default libp2p scaling limits (plus the default limits of
	// identify/ping/etc. services) are scaled to it. Default 256 MiB.
	MemoryLimit int64
	// FDLimit is the number of file descriptors (≈ connections) the resource
	// manager may use. Default 512.
	FDLimit int
	// SyncMemory bounds the memory all sync streams together may reserve
	// for the frames they read (service SyncService), on top of
	// MemoryLimit. Default 256 MiB.
	SyncMemory int64
	// SyncPeerMemory bounds what the sync streams of one peer may reserve:
	// one peer cannot make the node hold more through sync. Default
	// 144 MiB: the largest snapshot frame of wire.DefaultSyncLimits held twice
	// while it is decoded, plus four ordinary frames.
	SyncPeerMemory int64
	// ResourceLimits, if non-nil, replaces the scaled limits above (and the
	// sync limits).
	ResourceLimits *rcmgr.ConcreteLimitConfig
	// Registerer, if non-nil, receives libp2p's own metrics. Default nil:
	// libp2p metrics are disabled (nothing is registered globally).
	Registerer prometheus.Registerer
	// UserAgent announced by identify. Default "concord".
	UserAgent string
	// Logger receives host construction messages. Default slog.Default().
	Logger *slog.Logger
}

// DefaultHostConfig returns a config listening on all IPv4 interfaces over
// TCP and QUIC, with the defaults documented on HostConfig.
func DefaultHostConfig() HostConfig {
	return HostConfig{
		ListenAddrs:    []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"},
		MemoryLimit:    256 << 20,
		FDLimit:        512,
		SyncMemory:     256 << 20,
		SyncPeerMemory: defaultSyncPeerMemory,
		UserAgent:      "concord",
	}
}

// defaultSyncPeerMemory: see HostConfig.SyncPeerMemory.
var defaultSyncPeerMemory = func() int64 {
	l := wire.DefaultSyncLimits()
	return int64(2*l.MaxSnapshotBytes + 4*l.MaxFrameBytes)
}()

// LoopbackHostConfig is DefaultHostConfig listening on 127.0.0.1 only
// (TCP and QUIC, port 0): the preset for tests.
func LoopbackHostConfig() HostConfig {
	cfg := DefaultHostConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	return cfg
}

// isQUIC reports whether a multiaddr uses QUIC (or WebTransport over QUIC).
func isQUIC(a multiaddr.Multiaddr) bool {
	for _, c := range a {
		switch c.Protocol().Code {
		case multiaddr.P_QUIC, multiaddr.P_QUIC_V1, multiaddr.P_WEBTRANSPORT:
			return true
		}
	}
	return false
}

// Validate checks cfg without creating anything. Errors wrap ErrHostConfig
// or ErrPSKWithQUIC.
func (cfg *HostConfig) Validate() error {
	_, err := cfg.listenAddrs()
	return err
}

func (cfg *HostConfig) listenAddrs() ([]multiaddr.Multiaddr, error) {
	if cfg.PSK != nil && len(cfg.PSK) != 32 {
		return nil, fmt.Errorf("%w: PSK must be 32 bytes, got %d", ErrHostConfig, len(cfg.PSK))
	}
	out := make([]multiaddr.Multiaddr, 0, len(cfg.ListenAddrs))
	for _, s := range cfg.ListenAddrs {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: listen address %q: %v", ErrHostConfig, s, err)
		}
		if cfg.PSK != nil && isQUIC(a) {
			return nil, fmt.Errorf("%w (listen address %s)", ErrPSKWithQUIC, s)
		}
		out = append(out, a)
	}
	return out, nil
}

// NewHost builds a libp2p host from cfg: TCP (and QUIC unless a PSK is set),
// Noise and TLS security, yamux, a resource manager with the configured
// limits, the optional gater and private network. It never enables relays,
// NAT port mapping, hole punching, AutoNAT services, mDNS or a DHT, and it
// forces private reachability so the host does not try to become public.
// The caller owns the host and must Close it.
func NewHost(cfg HostConfig) (host.Host, error) {
	addrs, err := cfg.listenAddrs()
	if err != nil {
		return nil, err
	}
	priv := cfg.PrivKey
	if priv == nil {
		priv, _, err = crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("net: generate host key: %w", err)
		}
	}
	limits := cfg.resourceLimits()
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
	if err != nil {
		return nil, fmt.Errorf("net: resource manager: %w", err)
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = "concord"
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrs(addrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.UserAgent(ua),
	}
	if cfg.PSK == nil {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	} else {
		opts = append(opts, libp2p.PrivateNetwork(cfg.PSK))
	}
	if cfg.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.Gater))
	}
	if cfg.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		// libp2p closes the resource manager it was given on failure.
		return nil, fmt.Errorf("net: new host: %w", err)
	}
	if cfg.Logger != nil {
		cfg.Logger.Debug("libp2p host started", "peer", h.ID(), "addrs", h.Addrs())
	}
	return h, nil
}

// resourceLimits: libp2p's default scaling limits (with the default service
// limits for identify, ping, etc.) scaled to MemoryLimit and FDLimit. At the
// defaults (256 MiB, 512 FDs) that allows roughly 100+ concurrent
// connections and a few thousand streams system-wide; per-peer limits keep a
// single peer from taking them all.
func (cfg *HostConfig) resourceLimits() rcmgr.ConcreteLimitConfig {
	if cfg.ResourceLimits != nil {
		return *cfg.ResourceLimits
	}
	mem, fds := cfg.MemoryLimit, cfg.FDLimit
	if mem <= 0 {
		mem = 256 << 20
	}
	if fds <= 0 {
		fds = 512
	}
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	cfg.addSyncLimits(&scaling)
	return scaling.Scale(mem, fds)
}

// addSyncLimits gives the sync streams their budget: SyncService limits
// for the node and for each peer (the exchange caps of the Syncer, and
// SyncMemory and SyncPeerMemory), and room for it in the scopes a sync
// stream's reservations also pass through (the stream, its protocol, the
// protocol for its peer, its peer, the system), which libp2p's defaults
// size for protocols that reserve little.
func (cfg *HostConfig) addSyncLimits(sc *rcmgr.ScalingLimitConfig) {
	node, perPeer := cfg.SyncMemory, cfg.SyncPeerMemory
	if node <= 0 {
		node = 256 << 20
	}
	if perPeer <= 0 {
		perPeer = defaultSyncPeerMemory
	}
	perPeer = min(perPeer, node)
	sc.AddServiceLimit(SyncService, rcmgr.BaseLimit{
		StreamsInbound: maxInbound, StreamsOutbound: 1024, Streams: maxInbound + 1024, Memory: node,
	}, rcmgr.BaseLimitIncrease{})
	sc.AddServicePeerLimit(SyncService, rcmgr.BaseLimit{
		StreamsInbound: maxInboundPerPeer, StreamsOutbound: maxOutboundPerPeer,
		Streams: maxInboundPerPeer + maxOutboundPerPeer, Memory: perPeer,
	}, rcmgr.BaseLimitIncrease{})
	proto, protoInc := sc.ProtocolBaseLimit, sc.ProtocolLimitIncrease
	proto.Memory, protoInc.Memory = node, 0
	sc.AddProtocolLimit(SyncProtocol, proto, protoInc)
	pp, ppInc := sc.ProtocolPeerBaseLimit, sc.ProtocolPeerLimitIncrease
	pp.Memory, ppInc.Memory = perPeer, 0
	sc.AddProtocolPeerLimit(SyncProtocol, pp, ppInc)
	sc.StreamBaseLimit.Memory = max(sc.StreamBaseLimit.Memory, perPeer)
	sc.PeerBaseLimit.Memory += perPeer
	sc.SystemBaseLimit.Memory += node
}

// Gater is a connmgr.ConnectionGater that refuses blocked peers, for tests
// that partition the network and for a deny list. The zero value is not
// usable; use NewGater.
type Gater struct {
	mu      sync.RWMutex
	blocked map[peer.ID]bool
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// NewGater returns a gater that allows every peer.
func NewGater() *Gater { return &Gater{blocked: make(map[peer.ID]bool)} }

// Block refuses new connections to and from p. Existing connections stay
// open; see Partition.
func (g *Gater) Block(p peer.ID) {
	g.mu.Lock()
	g.blocked[p] = true
	g.mu.Unlock()
}

// Unblock allows p again.
func (g *Gater) Unblock(p peer.ID) {
	g.mu.Lock()
	delete(g.blocked, p)
	g.mu.Unlock()
}

// Blocked reports whether p is blocked.
func (g *Gater) Blocked(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.blocked[p]
}

// InterceptPeerDial implements connmgr.ConnectionGater.
func (g *Gater) InterceptPeerDial(p peer.ID) bool { return !g.Blocked(p) }

// InterceptAddrDial implements connmgr.ConnectionGater.
func (g *Gater) InterceptAddrDial(p peer.ID, _ multiaddr.Multiaddr) bool { return !g.Blocked(p) }

// InterceptAccept implements connmgr.ConnectionGater (the peer is not known
// yet at this point).
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured implements connmgr.ConnectionGater.
func (g *Gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.Blocked(p)
}

// InterceptUpgraded implements connmgr.ConnectionGater.
func (g *Gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return !g.Blocked(c.RemotePeer()), 0
}

// Partition blocks p in g (which must be h's gater) and closes h's existing
// connections to p, so the two stay apart until g.Unblock(p).
func Partition(h host.Host, g *Gater, p peer.ID) error {
	g.Block(p)
	if err := h.Network().ClosePeer(p); err != nil {
		return fmt.Errorf("net: partition %s: %w", p, err)
	}
	return nil
}
