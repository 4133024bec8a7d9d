package net

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// byReason reads the non-zero counters of a vector with one label into a
// map.
func byReason(t testing.TB, v *prometheus.CounterVec) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() { v.Collect(ch); close(ch) }()
	out := map[string]float64{}
	for c := range ch {
		var m dto.Metric
		if err := c.Write(&m); err != nil {
			t.Fatal(err)
		}
		if v := m.GetCounter().GetValue(); v != 0 {
			out[m.GetLabel()[0].GetValue()] = v
		}
	}
	return out
}

func sum(m map[string]float64) float64 {
	var n float64
	for _, v := range m {
		n += v
	}
	return n
}

// recHandler accepts every envelope and records summaries; with vv set it
// is a VersionHolder holding vv.
type recHandler struct {
	mu        sync.Mutex
	summaries []*wire.Summary
	vv        crdt.VersionVector
}

func (h *recHandler) Validate(peer.ID, *wire.Envelope) error { return nil }
func (h *recHandler) Deliver(peer.ID, []*wire.Envelope)      {}
func (h *recHandler) Summary(_ peer.ID, s *wire.Summary) {
	h.mu.Lock()
	h.summaries = append(h.summaries, s)
	h.mu.Unlock()
}

func (h *recHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.summaries)
}

type versionHandler struct{ *recHandler }

func (h versionHandler) Version() crdt.VersionVector { return h.vv.Clone() }

func tcpHost(t *testing.T) host.Host {
	t.Helper()
	cfg := LoopbackHostConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	return newTestHost(t, cfg)
}

// gossipNode is a Concord Gossip on its own host, joined to doc.
type gossipNode struct {
	h  host.Host
	g  *Gossip
	m  *Metrics
	hd *recHandler
}

func newGossipNode(t *testing.T, doc string, hd Handler, rh *recHandler, mods ...func(*GossipConfig)) *gossipNode {
	t.Helper()
	h := tcpHost(t)
	m := NewMetrics(nil)
	cfg := DefaultGossipConfig()
	cfg.FastHeartbeat = true
	cfg.Metrics = m
	for _, mod := range mods {
		mod(&cfg)
	}
	g, err := NewGossip(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	if _, err := g.Join(doc, hd); err != nil {
		t.Fatal(err)
	}
	return &gossipNode{h: h, g: g, m: m, hd: rh}
}

// rawPeer is a plain GossipSub instance (no Concord validator) that joins
// doc's topic without subscribing, so it never receives what it sends back.
type rawPeer struct {
	h     host.Host
	topic *pubsub.Topic
}

func contentID(m *pb.Message) string {
	h := sha256.Sum256(m.Data)
	return string(h[:20])
}

// noSign are the options that pass Concord's signing policy.
func noSign() []pubsub.Option {
	return []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(contentID),
	}
}

func newRawPeer(t *testing.T, to host.Host, doc string, opts ...pubsub.Option) *rawPeer {
	t.Helper()
	h := tcpHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, append(opts, pubsub.WithFloodPublish(true))...)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(TopicName(doc))
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if err := h.Connect(cctx, peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "receiver in the topic", func() bool { return slices.Contains(topic.ListPeers(), to.ID()) })
	return &rawPeer{h: h, topic: topic}
}

func (p *rawPeer) publish(t *testing.T, data []byte) {
	t.Helper()
	if err := p.topic.Publish(context.Background(), data); err != nil {
		t.Fatal(err)
	}
}

// waitReasons waits until v holds exactly want (reasons absent from want
// must stay at zero).
func waitReasons(t *testing.T, what string, v *prometheus.CounterVec, want map[string]float64) {
	t.Helper()
	var got map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = byReason(t, v)
		if maps.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func summaryBytes(t *testing.T, s *wire.Summary) []byte {
	t.Helper()
	b, err := wire.EncodeSummary(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPubsubRejectionsCounted: what GossipSub drops before Concord's
// validator sees it is counted under a pubsub_ reason, once, and what the
// validator rejects is counted once under its own reason.
func TestPubsubRejectionsCounted(t *testing.T) {
	const doc = "d"
	t.Run("too large", func(t *testing.T) {
		// A peer whose own limit is larger sends an RPC over our 1 MiB:
		// the stream reader refuses it and resets the stream.
		r := newGossipNode(t, doc, &recHandler{}, nil)
		s := newRawPeer(t, r.h, doc, append(noSign(), pubsub.WithMaxMessageSize(4<<20))...)
		s.publish(t, bytes.Repeat([]byte{0xa0}, 1536<<10))
		waitReasons(t, "rejections", r.m.MessagesRejected, map[string]float64{"pubsub_too_large": 1})
	})
	t.Run("signed under StrictNoSign", func(t *testing.T) {
		r := newGossipNode(t, doc, &recHandler{}, nil)
		s := newRawPeer(t, r.h, doc) // GossipSub's default: StrictSign
		s.publish(t, summaryBytes(t, &wire.Summary{Doc: doc, Origin: wire.ReplicaFor(s.h.ID(), 1), Beacon: 1}))
		waitReasons(t, "rejections", r.m.MessagesRejected, map[string]float64{"pubsub_signature": 1})
	})
	t.Run("author info under StrictNoSign", func(t *testing.T) {
		// Unsigned but with a sequence number and author: LaxNoSign.
		r := newGossipNode(t, doc, &recHandler{}, nil)
		s := newRawPeer(t, r.h, doc, pubsub.WithMessageSignaturePolicy(pubsub.LaxNoSign))
		s.publish(t, summaryBytes(t, &wire.Summary{Doc: doc, Origin: wire.ReplicaFor(s.h.ID(), 1), Beacon: 1}))
		waitReasons(t, "rejections", r.m.MessagesRejected, map[string]float64{"pubsub_author": 1})
	})
	t.Run("malformed by the validator", func(t *testing.T) {
		// Concord's validator rejects it; the tracer's "validation failed"
		// event for the same message is not counted again.
		r := newGossipNode(t, doc, &recHandler{}, nil)
		s := newRawPeer(t, r.h, doc, noSign()...)
		s.publish(t, []byte{0xff, 0x00})
		waitReasons(t, "rejections", r.m.MessagesRejected, map[string]float64{"malformed": 1})
	})
	// RPCs written straight on a GossipSub stream: GossipSub resets the
	// stream and only logs them.
	field := func(num byte, body []byte) []byte { // a length-delimited field
		return append(binary.AppendUvarint([]byte{num<<3 | 2}, uint64(len(body))), body...)
	}
	for _, tc := range []struct {
		name, reason string
		rpc          []byte
	}{
		{"unparsable RPC", "pubsub_malformed", []byte{0xff, 0xff, 0xff}},
		{"unparsable subscription", "pubsub_malformed", field(1, []byte{0xff, 0xff, 0xff})},
		{"control too large", "pubsub_control_too_large", field(15, make([]byte, 600<<10))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newGossipNode(t, doc, &recHandler{}, nil)
			h := tcpHost(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := h.Connect(ctx, peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()}); err != nil {
				t.Fatal(err)
			}
			st, err := h.NewStream(ctx, r.h.ID(), pubsub.GossipSubID_v12)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Reset()
			if _, err := st.Write(append(binary.AppendUvarint(nil, uint64(len(tc.rpc))), tc.rpc...)); err != nil {
				t.Fatal(err)
			}
			waitReasons(t, "rejections", r.m.MessagesRejected, map[string]float64{tc.reason: 1})
		})
	}
}

// TestPubsubDuplicatesIgnored: a message GossipSub already saw is counted
// as an ignored duplicate, not as a rejection, and delivered once.
func TestPubsubDuplicatesIgnored(t *testing.T) {
	const doc = "d"
	rh := &recHandler{}
	r := newGossipNode(t, doc, rh, rh)
	s1 := newRawPeer(t, r.h, doc, noSign()...)
	s2 := newRawPeer(t, r.h, doc, noSign()...)
	msg := summaryBytes(t, &wire.Summary{Doc: doc, Origin: wire.ReplicaFor(s1.h.ID(), 1), Beacon: 7})
	s1.publish(t, msg)
	waitFor(t, 10*time.Second, "first copy delivered", func() bool { return rh.count() == 1 })
	s2.publish(t, msg)
	waitReasons(t, "ignored", r.m.MessagesIgnored, map[string]float64{"pubsub_duplicate": 1})
	if got := byReason(t, r.m.MessagesRejected); sum(got) != 0 {
		t.Fatalf("duplicates counted as rejections: %v", got)
	}
	if n := rh.count(); n != 1 {
		t.Fatalf("%d summaries delivered, want 1", n)
	}
}

// TestOwnSummaryStaleOrForged: a summary in our own name that this run did
// not publish is ignored as stale when we hold everything it claims, and
// rejected as forged when it claims more (or when the handler cannot tell).
// Neither reaches the handler.
func TestOwnSummaryStaleOrForged(t *testing.T) {
	const doc = "d"
	_, op := testKey(t, 9)
	other := wire.ReplicaFor(op, 1)
	t.Run("version holder", func(t *testing.T) {
		rh := &recHandler{}
		r := newGossipNode(t, doc, versionHandler{rh}, rh)
		self := wire.ReplicaFor(r.h.ID(), 3)
		rh.vv = crdt.VersionVector{self: 5, other: 2}
		s := newRawPeer(t, r.h, doc, noSign()...)
		for i, vv := range []crdt.VersionVector{{self: 5, other: 2}, {self: 3}, {}} {
			s.publish(t, summaryBytes(t, &wire.Summary{Doc: doc, Origin: self, VV: vv, Beacon: uint64(i + 1)}))
		}
		waitReasons(t, "ignored", r.m.MessagesIgnored, map[string]float64{"summary_stale": 3})
		// Claims we never made: a seq we did not write, a delta we do not
		// hold, a replica we never heard of.
		for i, vv := range []crdt.VersionVector{{self: 6}, {self: 5, other: 3}, {wire.ReplicaFor(op, 2): 1}} {
			s.publish(t, summaryBytes(t, &wire.Summary{Doc: doc, Origin: self, VV: vv, Beacon: uint64(i + 10)}))
		}
		waitReasons(t, "rejections", r.m.MessagesRejected, map[string]float64{"summary_forged": 3})
		// A summary of someone else is delivered; so was nothing before it.
		s.publish(t, summaryBytes(t, &wire.Summary{Doc: doc, Origin: other, VV: crdt.VersionVector{other: 9}, Beacon: 1}))
		waitFor(t, 10*time.Second, "other's summary", func() bool { return rh.count() == 1 })
		if got := rh.summaries[0].Origin; got != other {
			t.Fatalf("handler got a summary of %s", got)
		}
	})
	t.Run("no version holder", func(t *testing.T) {
		rh := &recHandler{}
		r := newGossipNode(t, doc, rh, rh)
		s := newRawPeer(t, r.h, doc, noSign()...)
		s.publish(t, summaryBytes(t, &wire.Summary{Doc: doc, Origin: wire.ReplicaFor(r.h.ID(), 3), Beacon: 1}))
		waitReasons(t, "rejections", r.m.MessagesRejected, map[string]float64{"summary_forged": 1})
		if got := byReason(t, r.m.MessagesIgnored); sum(got) != 0 {
			t.Fatalf("ignored %v", got)
		}
	})
}

// TestFrameWatch: the length prefixes are followed across any split of
// the stream into reads, and only a length over the maximum counts;
// malformed prefixes (which the reader refuses as read errors) do not.
func TestFrameWatch(t *testing.T) {
	frame := func(n int) []byte { return append(binary.AppendUvarint(nil, uint64(n)), make([]byte, n)...) }
	var ok []byte
	for _, n := range []int{0, 1, 127, 128, 300, 1000} {
		ok = append(ok, frame(n)...)
	}
	tooLarge := binary.AppendUvarint(nil, 1001)
	cases := []struct {
		name string
		in   []byte
		want float64
	}{
		{"within", ok, 0},
		{"at the limit then over", append(append(slices.Clone(ok), frame(1000)...), tooLarge...), 1},
		{"overflow", append(slices.Clone(ok), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), 0},
		{"not minimal", append(slices.Clone(ok), 0xe9, 0x87, 0x00), 0},
	}
	for _, tc := range cases {
		for _, step := range []int{1, 2, 3, 7, len(tc.in)} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, step), func(t *testing.T) {
				m := NewMetrics(nil)
				w := &frameWatch{max: 1000, m: m}
				for b := tc.in; len(b) > 0; {
					k := min(step, len(b))
					w.scan(b[:k])
					b = b[k:]
				}
				if got := counterValue(m.MessagesRejected.WithLabelValues("pubsub_too_large")); got != tc.want {
					t.Fatalf("counted %v, want %v", got, tc.want)
				}
			})
		}
	}
}

// blockingHandler holds the topic's reader in Summary until release is
// closed, and counts what it was handed.
type blockingHandler struct {
	recHandler
	release chan struct{}
}

func (h *blockingHandler) Summary(from peer.ID, s *wire.Summary) {
	<-h.release
	h.recHandler.Summary(from, s)
}

// TestPubsubQueueDropsCounted: with GossipSub's queues small and the
// handler stalled (which a handler must not do: this one holds the
// validators), every message is either delivered or counted as dropped on
// the validation queue.
func TestPubsubQueueDropsCounted(t *testing.T) {
	const doc, sent = "d", 200
	bh := &blockingHandler{release: make(chan struct{})}
	h := tcpHost(t)
	m := NewMetrics(nil)
	cfg := DefaultGossipConfig()
	cfg.FastHeartbeat = true
	cfg.PeerQueueSize = 4
	cfg.Metrics = m
	g, err := NewGossip(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Join(doc, bh); err != nil {
		t.Fatal(err)
	}
	s := newRawPeer(t, h, doc, append(noSign(), pubsub.WithPeerOutboundQueueSize(1024))...)
	_, op := testKey(t, 9)
	for i := range sent {
		s.publish(t, summaryBytes(t, &wire.Summary{Doc: doc, Origin: wire.ReplicaFor(op, 1), Beacon: uint64(i + 1)}))
	}
	drops := func() float64 {
		return counterValue(m.Dropped.WithLabelValues("gossipsub_validate", "full")) +
			counterValue(m.Dropped.WithLabelValues("gossipsub_validate", "throttled")) +
			counterValue(m.Dropped.WithLabelValues("gossipsub_subscription", "full"))
	}
	waitFor(t, 10*time.Second, "drops while the reader is stalled", func() bool { return drops() > 0 })
	close(bh.release)
	waitFor(t, 10*time.Second, "every message delivered or counted", func() bool {
		return float64(bh.count())+drops() == sent
	})
	if r := byReason(t, m.MessagesRejected); len(r) != 0 {
		t.Fatalf("drops counted as rejections: %v", r)
	}
}

// TestPubsubTracerDropRPC: an outbound RPC dropped for its size is told
// apart from one dropped on a full queue; the tracer works without metrics.
func TestPubsubTracerDropRPC(t *testing.T) {
	m := NewMetrics(nil)
	tr := newPubsubTracer(m, 1000)
	big := &pubsub.RPC{RPC: pb.RPC{Publish: []*pb.Message{{Data: make([]byte, 1000)}}}}
	small := &pubsub.RPC{RPC: pb.RPC{Publish: []*pb.Message{{Data: make([]byte, 10)}}}}
	tr.DropRPC(big, "")
	tr.DropRPC(small, "")
	tr.DropRPC(small, "")
	if got := counterValue(m.Dropped.WithLabelValues("gossipsub_peer", "too_large")); got != 1 {
		t.Fatalf("too_large %v, want 1", got)
	}
	if got := counterValue(m.Dropped.WithLabelValues("gossipsub_peer", "full")); got != 2 {
		t.Fatalf("full %v, want 2", got)
	}
	nt := newPubsubTracer(nil, 1000)
	nt.DropRPC(big, "")
	nt.DuplicateMessage(nil)
	nt.RejectMessage(nil, pubsub.RejectInvalidSignature)
	nt.UndeliverableMessage(nil)
}
