package net

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	// Touch every vector so it is gathered.
	m.OutboxDepth.WithLabelValues("todo").Set(3)
	m.SyncExchanges.WithLabelValues("ok").Inc()
	m.SyncErrors.WithLabelValues("timeout").Inc()
	m.SyncBytes.WithLabelValues(DirectionIn).Add(10)
	m.syncFrame(DirectionOut, frameZstd|frameColumns)
	m.GossipMessages.WithLabelValues(DirectionOut).Inc()
	m.Deltas.WithLabelValues(DirectionIn).Inc()
	m.Reject("malformed")
	m.Ignore("duplicate")
	m.Drop("outbox", "full")
	m.peerState(0, StateConnecting)
	m.DeltaPropagation.Observe(0.001)
	m.SyncDuration.Observe(0.5)
	m.connectionClosed(time.Second)
	m.reconnectAttempt()
	m.reconnectSuccess()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != len(m.collectors()) {
		t.Fatalf("gathered %d families, want %d", len(mfs), len(m.collectors()))
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "concord_") {
			t.Errorf("metric %s lacks the concord_ prefix", mf.GetName())
		}
	}
	// Unregistered and nil metrics work too.
	NewMetrics(nil).Reject("x")
	var nilM *Metrics
	nilM.Reject("x")
	nilM.Drop("q", "r")
	nilM.Ignore("x")
	nilM.syncFrame(DirectionIn, frameRaw)
	nilM.connectionClosed(time.Second)
	nilM.peerState(StateConnecting, StateConnected)
}
