package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/concord-p2p/concord"
)

// Presence measures presence between two peers: updates set on the first
// (cycling over clients, each client's updates interval×clients apart, so
// that none waits for the 50 ms coalescing) → the event on the second, and
// the bytes one update costs on the wire (the encoded, signed message,
// without GossipSub's framing).
func Presence(ctx context.Context, o Options, updates, clients int, interval time.Duration) (Result, error) {
	c, err := newCluster(ctx, o, 2, "presence", true, nil)
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	a, da, db := c.nodes[0], c.docs[0], c.docs[1]
	sub := db.SubscribePresence(updates + 64)
	defer sub.Close()
	state := func(i int) map[string]any {
		return map[string]any{"i": i, "name": "ann", "color": "#e91e63", "cursor": map[string]any{"anchor": "12D3KooW.1f:4711", "head": "12D3KooW.1f:4711"}}
	}
	// Warm up: the presence topic's peers know each other once a state
	// gets through.
	if err := waitUntil(ctx, 10*time.Second, func() bool {
		if err := da.SetClientPresence("warm", state(-1), 0); err != nil {
			return false
		}
		for {
			select {
			case ev := <-sub.C:
				if ev.Client == "warm" {
					return true
				}
			case <-time.After(100 * time.Millisecond):
				return false
			}
		}
	}); err != nil {
		return Result{}, fmt.Errorf("presence topic: %w", err)
	}
	if err := da.ClearClientPresence("warm"); err != nil {
		return Result{}, err
	}
	if err := waitUntil(ctx, 10*time.Second, func() bool {
		select {
		case ev := <-sub.C:
			return ev.Client == "warm" && ev.State == nil
		default:
			return false
		}
	}); err != nil {
		return Result{}, fmt.Errorf("the warm-up's goodbye: %w", err)
	}
	outBefore := counterSum(c.nodes[:1], "concord_presence_updates_total", "out")
	bytesBefore := counterValue(a, "concord_presence_sent_bytes_total")
	sent := make([]time.Time, updates)
	var mu sync.Mutex
	var lats []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range sub.C {
			now := time.Now()
			if ev.State == nil || len(ev.Client) < 2 || ev.Client[0] != 'c' {
				continue
			}
			var st struct{ I int }
			if err := json.Unmarshal(ev.State, &st); err != nil || st.I < 0 || st.I >= updates {
				continue
			}
			mu.Lock()
			lats = append(lats, now.Sub(sent[st.I]))
			n := len(lats)
			mu.Unlock()
			if n == updates {
				return
			}
		}
	}()
	next := time.Now()
	for i := range updates {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if err := da.SetClientPresence("c"+strconv.Itoa(i%clients), state(i), 0); err != nil {
			return Result{}, err
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		sub.Close()
		<-done
	}
	msgs := counterSum(c.nodes[:1], "concord_presence_updates_total", "out") - outBefore
	msgBytes := counterValue(a, "concord_presence_sent_bytes_total") - bytesBefore
	mu.Lock()
	defer mu.Unlock()
	p50, p99 := percentile(lats, 0.50), percentile(lats, 0.99)
	perUpdate := 0.0
	if msgs > 0 {
		perUpdate = msgBytes / msgs
	}
	return Result{
		Scenario: "presence update → remote event", Name: "presence",
		Params:   fmt.Sprintf("2 peers, %d updates over %d clients, one every %v (each client every %v)", updates, clients, interval, interval*time.Duration(clients)),
		ParamMap: map[string]any{"peers": 2, "updates": updates, "clients": clients, "interval_ms": interval.Seconds() * 1000},
		Metrics: []Metric{
			{Key: "deliveries", Name: "events observed", Value: float64(len(lats)), Unit: fmt.Sprintf("of %d", updates)},
			{Key: "p50_ms", Name: "p50 set → remote event", Value: float64(p50.Microseconds()) / 1000, Unit: "ms"},
			{Key: "p99_ms", Name: "p99 set → remote event", Value: float64(p99.Microseconds()) / 1000, Unit: "ms", Target: "< 50", Met: met(p99 < 50*time.Millisecond && len(lats) == updates)},
			{Key: "max_ms", Name: "max", Value: float64(percentile(lats, 1).Microseconds()) / 1000, Unit: "ms"},
			{Key: "update_bytes", Name: "one update on the wire (signed message)", Value: perUpdate, Unit: "bytes"},
		},
	}, nil
}

// counterValue sums the samples of counter name on node n.
func counterValue(n *concord.Node, name string) float64 {
	mfs, err := n.Registry().Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
