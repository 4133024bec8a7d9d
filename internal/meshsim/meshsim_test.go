package meshsim

import (
	"context"
	"testing"
	"time"
)

// A small swarm over mocknet: every write reaches every peer, with flood
// publishing and without, and the figures are filled in.
func TestRunDelivers(t *testing.T) {
	for _, flood := range []bool{true, false} {
		r, err := Run(context.Background(), Config{Peers: 24, Docs: 2, Writes: 20, Dials: 4, Latency: time.Millisecond, Interval: time.Millisecond, NoFloodPublish: !flood})
		if err != nil {
			t.Fatalf("flood %v: %v", flood, err)
		}
		if r.Deliveries != r.Expected || r.Expected != 20*23 {
			t.Fatalf("flood %v: %d of %d deliveries", flood, r.Deliveries, r.Expected)
		}
		if r.MessagesPerPeerPerWrite < 1 || r.BytesPerPeerPerWrite <= 0 || r.P99 <= 0 {
			t.Fatalf("flood %v: figures %+v", flood, r)
		}
	}
}
