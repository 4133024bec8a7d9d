// Package meshsim measures Concord's gossip layer past what one machine can
// run as real nodes: many GossipSub peers in one process over go-libp2p's
// mocknet (in-memory links with a latency), each joining a few documents'
// topics through net.NewGossip with Concord's own options (message IDs,
// validation, batching, flood publishing, mesh degree), writes published
// from random peers. It reports how long until every peer holds each
// write, and what each write costs every peer on the wire, so that the
// growth from 100 to 1,000 peers can be read off.
//
// Only the gossip layer runs: no store, no engine, no sync. Envelopes
// carry a 48-byte payload and a dummy signature, and peers accept them
// without checking it (the cost of checking is the engine's, measured by
// the other benchmarks).
package meshsim

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/wire"
)

// Config sizes a run.
type Config struct {
	Peers  int // default 100
	Docs   int // documents; every peer joins every one (default 3)
	Writes int // writes, each by a random peer to a random document (default 100)
	// Dials is how many random earlier peers each peer connects to
	// (default 8: a sparse graph where every peer has about 16 links).
	Dials int
	// Latency of every link, one way (default 5 ms).
	Latency time.Duration
	// Interval between writes. Default Peers/5 ms (20 ms for 100 peers):
	// the whole swarm runs on this machine's cores, so the writes are
	// spaced for the process to keep up, and the figures measure the
	// protocol rather than a saturated scheduler.
	Interval time.Duration
	// MeshDegree is GossipSub's D (default 6).
	MeshDegree int
	// NoFloodPublish turns flood publishing off (see net.GossipConfig).
	NoFloodPublish bool
	// IDontWant is GossipSub's IDONTWANT threshold in bytes (see
	// net.GossipConfig; 0: the library's 1 KiB).
	IDontWant int
	Seed      uint64
	// Progress, if set, gets a line now and then.
	Progress io.Writer
}

func (c *Config) defaults() {
	if c.Peers <= 0 {
		c.Peers = 100
	}
	if c.Docs <= 0 {
		c.Docs = 3
	}
	if c.Writes <= 0 {
		c.Writes = 100
	}
	if c.Dials <= 0 {
		c.Dials = 8
	}
	if c.Latency <= 0 {
		c.Latency = 5 * time.Millisecond
	}
	if c.Interval <= 0 {
		c.Interval = time.Duration(c.Peers) * time.Millisecond / 5
	}
}

// Result is what a run measured.
type Result struct {
	Config Config
	// ConvergedAfterLastWrite: from the last publish until every peer of
	// the swarm held every write.
	ConvergedAfterLastWrite time.Duration
	// P50 and P99 of each write's spread: publish → the last peer holding it.
	P50, P99 time.Duration
	// Deliveries of writes to peers, of Peers-1 per write.
	Deliveries, Expected int
	// MessagesPerPeerPerWrite: GossipSub messages (each carrying writes)
	// sent, duplicates included, per peer and write.
	MessagesPerPeerPerWrite float64
	// BytesPerPeerPerWrite: every RPC byte sent (messages and control:
	// IHAVE, IWANT, GRAFT, PRUNE, IDONTWANT, heartbeats' gossip), per peer
	// and write, while the writes spread.
	BytesPerPeerPerWrite float64
	// Setup is how long the swarm took to start and form its meshes.
	Setup time.Duration
}

// counter counts what one peer's GossipSub sends, and its mesh peers.
type counter struct {
	msgs, bytes atomic.Int64
	mu          sync.Mutex
	mesh        map[string]int // topic → mesh peers
}

func (c *counter) meshSize(topic string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mesh[topic]
}

func (c *counter) Graft(_ peer.ID, topic string) {
	c.mu.Lock()
	c.mesh[topic]++
	c.mu.Unlock()
}

func (c *counter) Prune(_ peer.ID, topic string) {
	c.mu.Lock()
	c.mesh[topic]--
	c.mu.Unlock()
}

var _ pubsub.RawTracer = (*counter)(nil)

func (c *counter) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	c.msgs.Add(int64(len(rpc.GetPublish())))
	c.bytes.Add(int64(proto.Size(&rpc.RPC)))
}
func (*counter) AddPeer(peer.ID, protocol.ID)                         {}
func (*counter) RemovePeer(peer.ID)                                   {}
func (*counter) Join(string)                                          {}
func (*counter) Leave(string)                                         {}
func (*counter) ValidateMessage(*pubsub.Message)                      {}
func (*counter) DeliverMessage(*pubsub.Message)                       {}
func (*counter) RejectMessage(*pubsub.Message, string)                {}
func (*counter) DuplicateMessage(*pubsub.Message)                     {}
func (*counter) ThrottlePeer(peer.ID)                                 {}
func (*counter) RecvRPC(*pubsub.RPC)                                  {}
func (*counter) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*counter) UndeliverableMessage(*pubsub.Message)                 {}
func (*counter) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*counter) OnClosedOutboundStream(peer.ID)                       {}
func (*counter) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}

// swarm is the writes' book: when each was published, and by how many
// peers, and when last, it was delivered.
type swarm struct {
	mu      sync.Mutex
	sent    map[wkey]time.Time
	got     map[wkey]int
	last    map[wkey]time.Time
	total   int
	lastAny time.Time
}

type wkey struct {
	doc    string
	origin crdt.ReplicaID
	seq    uint64
}

// handler is one peer's Handler for one document.
type handler struct {
	sw   *swarm
	doc  string
	mu   sync.Mutex
	seen map[wkey]bool
}

func (h *handler) Validate(_ peer.ID, e *wire.Envelope) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := wkey{h.doc, e.Origin, e.Seq}
	if h.seen[k] {
		return wire.ErrDuplicate
	}
	return nil
}

func (h *handler) Deliver(_ peer.ID, envs []*wire.Envelope) {
	now := time.Now()
	for _, e := range envs {
		k := wkey{h.doc, e.Origin, e.Seq}
		h.mu.Lock()
		dup := h.seen[k]
		h.seen[k] = true
		h.mu.Unlock()
		if dup {
			continue
		}
		h.sw.mu.Lock()
		h.sw.got[k]++
		h.sw.last[k] = now
		h.sw.total++
		h.sw.lastAny = now
		h.sw.mu.Unlock()
	}
}

func (h *handler) Summary(peer.ID, *wire.Summary) {}

// Run starts the swarm, publishes the writes, waits until every peer holds
// every write (within a deadline) and reports.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.defaults()
	res := Result{Config: cfg}
	rng := mrand.New(mrand.NewPCG(cfg.Seed, uint64(cfg.Peers)))
	start := time.Now()
	mn := mocknet.New()
	defer mn.Close()
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: cfg.Latency})
	hosts := make([]host.Host, cfg.Peers)
	for i := range hosts {
		h, err := mn.GenPeer()
		if err != nil {
			return res, fmt.Errorf("meshsim: peer %d: %w", i, err)
		}
		hosts[i] = h
	}
	sw := &swarm{sent: map[wkey]time.Time{}, got: map[wkey]int{}, last: map[wkey]time.Time{}}
	counters := make([]*counter, cfg.Peers)
	gossips := make([]*cnet.Gossip, cfg.Peers)
	topics := make([][]*cnet.Topic, cfg.Peers)
	defer func() {
		for _, g := range gossips {
			if g != nil {
				_ = g.Close()
			}
		}
	}()
	docs := make([]string, cfg.Docs)
	for d := range docs {
		docs[d] = fmt.Sprintf("sim-%d", d)
	}
	for i, h := range hosts {
		gc := cnet.DefaultGossipConfig()
		gc.QueueSize = 256
		gc.MeshDegree = cfg.MeshDegree
		gc.NoFloodPublish = cfg.NoFloodPublish
		gc.IDontWantThreshold = cfg.IDontWant
		gc.Metrics = cnet.NewMetrics(prometheus.NewRegistry())
		counters[i] = &counter{mesh: map[string]int{}}
		gc.Tracers = []pubsub.RawTracer{counters[i]}
		g, err := cnet.NewGossip(h, gc)
		if err != nil {
			return res, fmt.Errorf("meshsim: gossip %d: %w", i, err)
		}
		gossips[i] = g
		for _, doc := range docs {
			t, err := g.Join(doc, &handler{sw: sw, doc: doc, seen: map[wkey]bool{}})
			if err != nil {
				return res, fmt.Errorf("meshsim: join %d: %w", i, err)
			}
			topics[i] = append(topics[i], t)
		}
	}
	for i := 1; i < cfg.Peers; i++ {
		for _, j := range rng.Perm(i)[:min(cfg.Dials, i)] {
			if _, err := mn.LinkPeers(hosts[i].ID(), hosts[j].ID()); err != nil {
				return res, fmt.Errorf("meshsim: link: %w", err)
			}
			if _, err := mn.ConnectPeers(hosts[i].ID(), hosts[j].ID()); err != nil {
				return res, fmt.Errorf("meshsim: connect: %w", err)
			}
		}
		if cfg.Progress != nil && (i+1)%250 == 0 {
			fmt.Fprintf(cfg.Progress, "meshsim: %d/%d peers connected\n", i+1, cfg.Peers)
		}
	}
	// Every peer's mesh of every topic is grafted (GossipSub's heartbeats
	// do it): at least Dlo peers, or all its topic peers when it has fewer.
	d := cfg.MeshDegree
	if d == 0 {
		d = 6
	}
	dlo := max(d-2, 1)
	if err := waitUntil(ctx, 2*time.Minute, func() bool {
		for i, ts := range topics {
			for k, t := range ts {
				n := len(t.Peers())
				if n == 0 || counters[i].meshSize(cnet.TopicName(docs[k])) < min(dlo, n) {
					return false
				}
			}
		}
		return true
	}); err != nil {
		return res, fmt.Errorf("meshsim: meshes: %w", err)
	}
	res.Setup = time.Since(start)
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "meshsim: %d peers up in %v; writing\n", cfg.Peers, res.Setup.Round(time.Millisecond))
	}
	var msgs0, bytes0 int64
	for _, c := range counters {
		msgs0 += c.msgs.Load()
		bytes0 += c.bytes.Load()
	}
	seqs := make([]uint64, cfg.Peers)
	payload := make([]byte, 48)
	sig := make([]byte, 64)
	_, _ = rand.Read(sig)
	next := time.Now()
	var lastWrite time.Time
	for w := range cfg.Writes {
		if d := time.Until(next); d > 0 {
			time.Sleep(d) // pacing the writes, not waiting for a result
		}
		next = next.Add(cfg.Interval)
		i, d := rng.IntN(cfg.Peers), rng.IntN(cfg.Docs)
		seqs[i]++
		e := &wire.Envelope{Doc: docs[d], Origin: wire.ReplicaFor(hosts[i].ID(), 1), Seq: seqs[i], HLC: uint64(w + 1), Payload: payload, Sig: sig}
		k := wkey{docs[d], e.Origin, e.Seq}
		sw.mu.Lock()
		lastWrite = time.Now()
		sw.sent[k] = lastWrite
		sw.mu.Unlock()
		topics[i][d].Publish(e)
	}
	res.Expected = cfg.Writes * (cfg.Peers - 1)
	err := waitUntil(ctx, time.Minute, func() bool {
		sw.mu.Lock()
		defer sw.mu.Unlock()
		return sw.total >= res.Expected
	})
	sw.mu.Lock()
	defer sw.mu.Unlock()
	res.Deliveries = sw.total
	if !sw.lastAny.IsZero() {
		res.ConvergedAfterLastWrite = sw.lastAny.Sub(lastWrite)
	}
	var spreads []time.Duration
	for k, t := range sw.sent {
		if sw.got[k] == cfg.Peers-1 {
			spreads = append(spreads, sw.last[k].Sub(t))
		}
	}
	sort.Slice(spreads, func(a, b int) bool { return spreads[a] < spreads[b] })
	if n := len(spreads); n > 0 {
		res.P50, res.P99 = spreads[n/2], spreads[(n-1)*99/100]
	}
	var msgs, bytes int64
	for _, c := range counters {
		msgs += c.msgs.Load()
		bytes += c.bytes.Load()
	}
	per := float64(cfg.Peers) * float64(cfg.Writes)
	res.MessagesPerPeerPerWrite = float64(msgs-msgs0) / per
	res.BytesPerPeerPerWrite = float64(bytes-bytes0) / per
	if err != nil {
		return res, fmt.Errorf("meshsim: %d of %d deliveries: %w", res.Deliveries, res.Expected, err)
	}
	return res, nil
}

func waitUntil(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
