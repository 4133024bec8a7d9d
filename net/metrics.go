package net

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the Prometheus collectors of the network layer. All names
// are prefixed "concord_". Nothing is registered globally: NewMetrics
// registers on the Registerer it is given (or nowhere). A nil *Metrics is
// valid everywhere this package takes one and records nothing.
type Metrics struct {
	// ConnectionDuration: seconds a supervised connection stayed up,
	// observed when it closes.
	ConnectionDuration prometheus.Histogram
	// ReconnectAttempts: supervisor dials of a peer after its first dial.
	ReconnectAttempts prometheus.Counter
	// ReconnectSuccesses: those of ReconnectAttempts that connected.
	ReconnectSuccesses prometheus.Counter
	// Peers: supervised peers per state (label state: connecting,
	// connected, backoff, gone).
	Peers *prometheus.GaugeVec
	// DeltaPropagation: now − the delta's HLC physical time when a remote
	// delta is applied, in seconds (buckets 100 µs … 10 s).
	DeltaPropagation prometheus.Histogram
	// OutboxDepth: own deltas not yet acknowledged, per document (label doc).
	OutboxDepth *prometheus.GaugeVec
	// SyncExchanges: anti-entropy exchanges by result (label result: ok,
	// error, unknown_doc).
	SyncExchanges *prometheus.CounterVec
	// SyncErrors: the exchanges counted with result "error", by reason
	// (label reason, see SyncErrorReason).
	SyncErrors *prometheus.CounterVec
	// SyncBytes: bytes moved by the sync protocol (label direction: in, out).
	SyncBytes *prometheus.CounterVec
	// SyncFrames: sync frames by direction and form (label form: raw,
	// zstd, columns — the column form, under zstd).
	SyncFrames *prometheus.CounterVec
	// SyncDuration: seconds one sync exchange took.
	SyncDuration prometheus.Histogram
	// MessagesRejected: received messages rejected, by reason (label
	// reason, e.g. malformed, too_large, version, bad_signature,
	// not_allowed). Reasons starting "pubsub_" are rejections by
	// GossipSub itself, before Concord's validator sees the message (see
	// README, Observability).
	MessagesRejected *prometheus.CounterVec
	// Equivocations: fork proofs found — a delta validly signed by its
	// author for a sequence number whose delta we hold with other content.
	Equivocations prometheus.Counter
	// MessagesIgnored: received messages dropped as normal traffic, not as
	// a sign of attack, by reason (label reason: pubsub_duplicate,
	// duplicate, summary_stale).
	MessagesIgnored *prometheus.CounterVec
	// GossipMessages: GossipSub messages (label direction: in, out).
	GossipMessages *prometheus.CounterVec
	// Deltas: delta envelopes carried by gossip or sync (label direction:
	// in, out).
	Deltas *prometheus.CounterVec
	// Dropped: items dropped from a bounded queue (labels queue, reason).
	Dropped *prometheus.CounterVec
}

// Label values used by this package.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

// NewMetrics creates the collectors and registers them on reg. A nil reg
// leaves them unregistered (useful in tests). Registering twice on the same
// registry panics, as prometheus.MustRegister does; give each node its own
// registry or wrap reg with prometheus.WrapRegistererWith.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConnectionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "concord_connection_duration_seconds",
			Help:    "How long supervised peer connections stayed up.",
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 12), // 0.1 s … ~5 days
		}),
		ReconnectAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "concord_reconnect_attempts_total",
			Help: "Supervisor dials of a peer after its first dial.",
		}),
		ReconnectSuccesses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "concord_reconnect_successes_total",
			Help: "Reconnect attempts that connected.",
		}),
		Peers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "concord_peers",
			Help: "Supervised peers by connection state.",
		}, []string{"state"}),
		DeltaPropagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "concord_delta_propagation_seconds",
			Help:    "Time from a delta's creation (HLC) to its application on this peer.",
			Buckets: prometheus.ExponentialBucketsRange(100e-6, 10, 16),
		}),
		OutboxDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "concord_outbox_depth",
			Help: "Own deltas not yet acknowledged by any peer.",
		}, []string{"doc"}),
		SyncExchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "concord_sync_exchanges_total",
			Help: "Anti-entropy sync exchanges by result.",
		}, []string{"result"}),
		SyncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "concord_sync_errors_total",
			Help: "Failed anti-entropy sync exchanges by reason.",
		}, []string{"reason"}),
		SyncBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "concord_sync_bytes_total",
			Help: "Bytes moved by the sync protocol.",
		}, []string{"direction"}),
		SyncFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "concord_sync_frames_total",
			Help: "Sync frames by direction and form (raw, zstd, columns).",
		}, []string{"direction", "form"}),
		SyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "concord_sync_duration_seconds",
			Help:    "Duration of one anti-entropy exchange.",
			Buckets: prometheus.ExponentialBucketsRange(1e-3, 60, 14),
		}),
		MessagesRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "concord_messages_rejected_total",
			Help: "Received messages rejected, by reason.",
		}, []string{"reason"}),
		Equivocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "concord_equivocations_total",
			Help: "Deltas signed by their author for a sequence number already used with other content.",
		}),
		MessagesIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "concord_messages_ignored_total",
			Help: "Received messages dropped as normal traffic (duplicates, stale summaries), by reason.",
		}, []string{"reason"}),
		GossipMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "concord_gossip_messages_total",
			Help: "GossipSub messages received (in) and published (out).",
		}, []string{"direction"}),
		Deltas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "concord_deltas_total",
			Help: "Delta envelopes received (in) and sent (out).",
		}, []string{"direction"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "concord_dropped_total",
			Help: "Items dropped from bounded queues, by queue and reason.",
		}, []string{"queue", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.collectors()...)
	}
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.ConnectionDuration, m.ReconnectAttempts, m.ReconnectSuccesses, m.Peers,
		m.DeltaPropagation, m.OutboxDepth, m.SyncExchanges, m.SyncErrors, m.SyncBytes,
		m.SyncFrames, m.SyncDuration, m.MessagesRejected, m.Equivocations, m.GossipMessages, m.Deltas, m.Dropped,
		m.MessagesIgnored,
	}
}

// Nil-safe helpers used by this package's components.

func (m *Metrics) connectionClosed(d time.Duration) {
	if m != nil {
		m.ConnectionDuration.Observe(d.Seconds())
	}
}

func (m *Metrics) reconnectAttempt() {
	if m != nil {
		m.ReconnectAttempts.Inc()
	}
}

func (m *Metrics) reconnectSuccess() {
	if m != nil {
		m.ReconnectSuccesses.Inc()
	}
}

func (m *Metrics) peerState(from, to State) {
	if m == nil || from == to {
		return
	}
	if from != 0 {
		m.Peers.WithLabelValues(from.String()).Dec()
	}
	if to != 0 && to != StateGone {
		m.Peers.WithLabelValues(to.String()).Inc()
	}
}

// Reject counts a rejected message (nil-safe).
func (m *Metrics) Reject(reason string) {
	if m != nil {
		m.MessagesRejected.WithLabelValues(reason).Inc()
	}
}

// Equivocation counts a fork proof (nil-safe).
func (m *Metrics) Equivocation() {
	if m != nil {
		m.Equivocations.Inc()
	}
}

// Ignore counts a received message dropped as normal traffic (nil-safe).
func (m *Metrics) Ignore(reason string) {
	if m != nil {
		m.MessagesIgnored.WithLabelValues(reason).Inc()
	}
}

// DropN counts n items dropped from queue for reason (nil-safe).
func (m *Metrics) DropN(queue, reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.Dropped.WithLabelValues(queue, reason).Add(float64(n))
}

// Drop counts an item dropped from queue for reason (nil-safe).
func (m *Metrics) Drop(queue, reason string) {
	if m != nil {
		m.Dropped.WithLabelValues(queue, reason).Inc()
	}
}

// syncFrame counts a sync frame with the given flag (nil-safe).
func (m *Metrics) syncFrame(direction string, flag byte) {
	if m == nil {
		return
	}
	form := "raw"
	switch {
	case flag&frameColumns != 0:
		form = "columns"
	case flag&frameZstd != 0:
		form = "zstd"
	}
	m.SyncFrames.WithLabelValues(direction, form).Inc()
}
