package net

import (
	"context"
	"log/slog"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
)

// What GossipSub (v0.19) drops on its own, and where Concord counts it:
//
//   - through pubsub.RawTracer (pubsubTracer): messages refused by the
//     signing policy or the blacklist (RejectMessage), seen-cache duplicates
//     (DuplicateMessage), validation queue overflow and throttling
//     (RejectMessage), full or oversized outbound RPCs (DropRPC), full
//     subscription buffers (UndeliverableMessage), RPCs of a throttled peer
//     (ThrottlePeer);
//   - not through the tracer: an inbound RPC longer than the maximum
//     message size. The stream reader refuses its length prefix, resets the
//     stream and logs at debug level only; frameWatch reads the same length
//     prefixes as they pass and counts it (once: what the sender had
//     queued behind it on that stream is lost unseen). An RPC that does not parse, or
//     whose control part is too large, also resets the stream, logged at
//     warn level: rpcLogCounter counts those records.
//
// Not counted, because they cannot happen with Concord's options: RPCs of a
// graylisted peer (needs peer scoring) and application RPC inspection or
// subscription filters (not set). Messages for topics we have not joined
// are not ours to count.

// Reasons of messages_rejected_total for GossipSub's own rejections; the
// "pubsub_" prefix keeps them apart from Concord's validator reasons.
const (
	reasonPubsubSignature       = "pubsub_signature"         // signed, or a bad signature, under StrictNoSign
	reasonPubsubAuthor          = "pubsub_author"            // seqno, from or key set under StrictNoSign
	reasonPubsubSelfOrigin      = "pubsub_self_origin"       // claims to come from us but was relayed
	reasonPubsubBlacklisted     = "pubsub_blacklisted"       // from or relayed by a blacklisted peer
	reasonPubsubTooLarge        = "pubsub_too_large"         // RPC over the maximum message size
	reasonPubsubMalformed       = "pubsub_malformed"         // RPC that does not parse
	reasonPubsubControlTooLarge = "pubsub_control_too_large" // control part over its limit
	reasonPubsubOther           = "pubsub_other"             // a reason this code does not know
)

// pubsubTracer counts what GossipSub drops before or instead of Concord's
// validator. Rejections by the validator itself (RejectValidationFailed,
// RejectValidationIgnored) are counted by the validator with their own
// reasons, so they are skipped here.
type pubsubTracer struct {
	m       *Metrics
	maxSize int                // GossipSub's maximum message size
	dup     prometheus.Counter // ignored{pubsub_duplicate}, nil without m
}

func newPubsubTracer(m *Metrics, maxSize int) pubsubTracer {
	t := pubsubTracer{m: m, maxSize: maxSize}
	if m != nil {
		t.dup = m.MessagesIgnored.WithLabelValues("pubsub_duplicate")
	}
	return t
}

var _ pubsub.RawTracer = pubsubTracer{}

func (pubsubTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (pubsubTracer) OnClosedOutboundStream(peer.ID)                       {}
func (pubsubTracer) Join(string)                                          {}
func (pubsubTracer) Leave(string)                                         {}
func (pubsubTracer) Graft(peer.ID, string)                                {}
func (pubsubTracer) Prune(peer.ID, string)                                {}
func (pubsubTracer) ValidateMessage(*pubsub.Message)                      {}
func (pubsubTracer) DeliverMessage(*pubsub.Message)                       {}
func (pubsubTracer) RecvRPC(*pubsub.RPC)                                  {}
func (pubsubTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (pubsubTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}

// DuplicateMessage: a message already in the seen cache. Normal traffic
// (each message arrives from up to D peers): ignored, not rejected.
func (t pubsubTracer) DuplicateMessage(*pubsub.Message) {
	if t.dup != nil {
		t.dup.Inc()
	}
}

// ThrottlePeer: the peer gater dropped the messages of an RPC (one count
// per RPC; the gater is not enabled by NewGossip).
func (t pubsubTracer) ThrottlePeer(peer.ID) { t.m.Drop("gossipsub_in", "peer_throttled") }

// DropRPC: an outbound RPC was not queued for a peer: its queue was full
// (or gone with the peer), or the RPC exceeds the maximum message size
// even once split.
func (t pubsubTracer) DropRPC(rpc *pubsub.RPC, _ peer.ID) {
	if rpc != nil && proto.Size(&rpc.RPC) > t.maxSize {
		t.m.Drop("gossipsub_peer", "too_large")
		return
	}
	t.m.Drop("gossipsub_peer", "full")
}

// UndeliverableMessage: a subscription's buffer was full.
func (t pubsubTracer) UndeliverableMessage(*pubsub.Message) {
	t.m.Drop("gossipsub_subscription", "full")
}

// RejectMessage counts GossipSub's own rejections and its validation
// queue drops.
func (t pubsubTracer) RejectMessage(_ *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationFailed, pubsub.RejectValidationIgnored:
		// Concord's validator decided and counted it.
	case pubsub.RejectValidationQueueFull:
		t.m.Drop("gossipsub_validate", "full")
	case pubsub.RejectValidationThrottled:
		t.m.Drop("gossipsub_validate", "throttled")
	case pubsub.RejectMissingSignature, pubsub.RejectUnexpectedSignature, pubsub.RejectInvalidSignature:
		t.m.Reject(reasonPubsubSignature)
	case pubsub.RejectUnexpectedAuthInfo:
		t.m.Reject(reasonPubsubAuthor)
	case pubsub.RejectSelfOrigin:
		t.m.Reject(reasonPubsubSelfOrigin)
	case pubsub.RejectBlacklstedPeer, pubsub.RejectBlacklistedSource:
		t.m.Reject(reasonPubsubBlacklisted)
	default:
		t.m.Reject(reasonPubsubOther)
	}
}

// frameHost is the host GossipSub is started on: it wraps the stream
// handlers GossipSub registers so that each inbound stream passes through a
// frameWatch.
type frameHost struct {
	host.Host
	maxSize int
	m       *Metrics
}

func (h frameHost) wrap(handler network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		handler(&frameWatch{Stream: s, max: h.maxSize, m: h.m})
	}
}

// SetStreamHandler implements host.Host.
func (h frameHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.wrap(handler))
}

// SetStreamHandlerMatch implements host.Host.
func (h frameHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, h.wrap(handler))
}

// frameWatch follows the varint length prefixes of the RPCs read from an
// inbound GossipSub stream, decoding them exactly as the stream reader
// (go-msgio over go-varint) does, and counts an RPC whose length exceeds
// the maximum: the reader refuses it and resets the stream without telling
// the tracer. It only counts bytes of the body, so it costs nothing per
// byte. It is read by one goroutine (the stream's reader).
type frameWatch struct {
	network.Stream
	max    int
	m      *Metrics
	remain int    // body bytes of the current RPC not read yet
	length uint64 // length prefix being decoded
	shift  uint
	done   bool // the stream is about to be reset; stop following it
}

// Read implements network.Stream.
func (w *frameWatch) Read(p []byte) (int, error) {
	n, err := w.Stream.Read(p)
	if n > 0 && !w.done {
		w.scan(p[:n])
	}
	return n, err
}

func (w *frameWatch) scan(b []byte) {
	for len(b) > 0 && !w.done {
		if w.remain > 0 {
			k := min(w.remain, len(b))
			w.remain -= k
			b = b[k:]
			continue
		}
		c := b[0]
		b = b[1:]
		if w.shift == 56 && c >= 0x80 {
			w.done = true // varint overflow: a read error, not a size one
			return
		}
		if c >= 0x80 {
			w.length |= uint64(c&0x7f) << w.shift
			w.shift += 7
			continue
		}
		if c == 0 && w.shift > 0 {
			w.done = true // non-minimal varint: a read error
			return
		}
		n := w.length | uint64(c)<<w.shift
		w.length, w.shift = 0, 0
		if n > uint64(w.max) {
			w.done = true
			w.m.Reject(reasonPubsubTooLarge)
			return
		}
		w.remain = int(n)
	}
}

// rpcLogCounter is the handler of GossipSub's RPC logger: it counts the
// warnings GossipSub logs when it drops an inbound RPC that does not parse
// or whose control part is too large (it then resets the stream; no tracer
// event exists for either), and passes records on to the node's logger.
// The messages and error texts are those of go-libp2p-pubsub v0.19
// (comm.go, pb/validator.go); TestPubsubRejectionsCounted pins them.
type rpcLogCounter struct {
	next slog.Handler
	m    *Metrics
}

func (h rpcLogCounter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h rpcLogCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		switch {
		case r.Message == "bogus rpc from":
			h.m.Reject(reasonPubsubMalformed)
		case strings.HasPrefix(r.Message, "RPC's control message is too large"):
			// Logged too when the size check cannot parse the RPC's
			// fields; its error then is a parse error.
			reason := reasonPubsubMalformed
			r.Attrs(func(a slog.Attr) bool {
				if err, ok := a.Value.Any().(error); ok && a.Key == "err" &&
					strings.Contains(err.Error(), "exceeds max control message size") {
					reason = reasonPubsubControlTooLarge
				}
				return true
			})
			h.m.Reject(reason)
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h rpcLogCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return rpcLogCounter{next: h.next.WithAttrs(as), m: h.m}
}

func (h rpcLogCounter) WithGroup(name string) slog.Handler {
	return rpcLogCounter{next: h.next.WithGroup(name), m: h.m}
}
