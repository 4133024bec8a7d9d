package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/concord-p2p/concord"
)

// Convergence: replicas nodes (full mesh), writers of them write total
// registers between them concurrently; the time from the first write until
// every replica shows the same document.
func Convergence(ctx context.Context, o Options, replicas, writers, total int) (Result, error) {
	c, err := newCluster(ctx, o, replicas, "converge", true, nil)
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	per := total / writers
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := c.docs[w%replicas]
			for i := 0; i < per; i++ {
				if err := d.Set(ctx, []string{"w" + strconv.Itoa(w), strconv.Itoa(i)}, i); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	written := time.Since(start)
	select {
	case err := <-errc:
		return Result{}, err
	default:
	}
	if err := waitUntil(ctx, 60*time.Second, func() bool { return converged(c.docs) }); err != nil {
		return Result{}, fmt.Errorf("convergence: %w", err)
	}
	took := time.Since(start)
	return Result{
		Scenario: "convergence", Name: "converge",
		Params:   fmt.Sprintf("%d replicas, %d writers, %d writes, full mesh, store=%s", replicas, writers, per*writers, storeName(o)),
		ParamMap: map[string]any{"replicas": replicas, "writers": writers, "writes": per * writers, "store": storeName(o), "mesh_degree": degreeN(o)},
		Metrics: []Metric{
			{Key: "durable_local_s", Name: "all writes durable locally", Value: written.Seconds(), Unit: "s"},
			{Key: "converged_s", Name: "all replicas converged", Value: took.Seconds(), Unit: "s", Target: "< 0.4 (Yjs)", Met: met(took < 400*time.Millisecond)},
			// Envelopes published on gossip (an aggregate counts once); the
			// messages include the summary beacons.
			{Key: "delta_envelopes", Name: "delta envelopes published", Value: counterSum(c.nodes, "concord_deltas_total", "out"), Unit: "envelopes"},
			{Key: "gossip_messages", Name: "gossip messages published", Value: counterSum(c.nodes, "concord_gossip_messages_total", "out"), Unit: "messages"},
		},
	}, nil
}

func storeName(o Options) string {
	if o.Dir != "" {
		return "pebble (synced)"
	}
	return "memory"
}

// Throughput: two peers, writers concurrent writers on the first; writes/s
// until the second holds (durably) every write.
func Throughput(ctx context.Context, o Options, writers, total int) (Result, error) {
	c, err := newCluster(ctx, o, 2, "tput", true, nil)
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	a, b := c.docs[0], c.docs[1]
	per := total / writers
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := a.Set(ctx, []string{"k" + strconv.Itoa(w*per+i)}, i); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return Result{}, err
	}
	local := time.Since(start)
	target := a.Status().Version
	if err := waitUntil(ctx, 120*time.Second, func() bool { return b.Status().Version.Covers(target) }); err != nil {
		return Result{}, fmt.Errorf("throughput: %w", err)
	}
	took := time.Since(start)
	writes := float64(per * writers)
	deltas := float64(target[c.nodes[0].Replica()])
	rate := writes / took.Seconds()
	return Result{
		Scenario: "throughput", Name: "tput",
		Params:   fmt.Sprintf("2 peers, %d concurrent writers, %d writes, store=%s", writers, per*writers, storeName(o)),
		ParamMap: map[string]any{"peers": 2, "writers": writers, "writes": per * writers, "store": storeName(o), "mesh_degree": degreeN(o), "group_wait_ms": float64(o.GroupCommitWait) / 1e6},
		Metrics: []Metric{
			{Key: "writes_durable_both_per_s", Name: "writes durable on both peers", Value: rate, Unit: "writes/s", Target: "≥ 50000", Met: met(rate >= 50000)},
			{Key: "writes_durable_local_per_s", Name: "writes durable locally", Value: writes / local.Seconds(), Unit: "writes/s"},
			{Key: "signed_deltas", Name: "signed deltas (group commits)", Value: deltas, Unit: "deltas"},
			{Key: "signed_deltas_per_s", Name: "signed deltas per second", Value: deltas / took.Seconds(), Unit: "deltas/s"},
		},
	}, nil
}

// Latency: peers nodes in a full mesh; node 0 writes rate writes/s for dur;
// the time from the write call to the change event on every other node.
func Latency(ctx context.Context, o Options, peers, rate int, dur time.Duration) (Result, error) {
	c, err := newCluster(ctx, o, peers, "latency", true, nil)
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	n := int(dur.Seconds() * float64(rate))
	sent := make([]atomic.Int64, n)
	var mu sync.Mutex
	var lats []time.Duration
	var wg sync.WaitGroup
	subs := make([]*concord.Subscription, 0, peers-1)
	for _, d := range c.docs[1:] {
		s := d.Subscribe(n + 16)
		subs = append(subs, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := 0
			for ch := range s.C {
				now := time.Now().UnixNano()
				for _, p := range ch.Paths {
					if len(p) != 1 || len(p[0]) < 2 || p[0][0] != 'k' {
						continue
					}
					i, err := strconv.Atoi(p[0][1:])
					if err != nil || i >= n {
						continue
					}
					mu.Lock()
					lats = append(lats, time.Duration(now-sent[i].Load()))
					mu.Unlock()
					got++
				}
				if got >= n {
					return
				}
			}
		}()
	}
	interval := time.Second / time.Duration(rate)
	next := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		sent[i].Store(time.Now().UnixNano())
		if err := c.docs[0].Set(ctx, []string{"k" + strconv.Itoa(i)}, i); err != nil {
			return Result{}, err
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		for _, s := range subs {
			s.Close()
		}
		<-done
	}
	mu.Lock()
	defer mu.Unlock()
	want := n * (peers - 1)
	p50, p99 := percentile(lats, 0.50), percentile(lats, 0.99)
	return Result{
		Scenario: "propagation latency", Name: "latency",
		Params:   fmt.Sprintf("%d peers full mesh, mesh degree %s, 1 writer at %d writes/s for %v, store=%s", peers, degree(o), rate, dur, storeName(o)),
		ParamMap: map[string]any{"peers": peers, "writers": 1, "rate_per_s": rate, "duration_s": dur.Seconds(), "store": storeName(o), "mesh_degree": degreeN(o)},
		Metrics: []Metric{
			{Key: "deliveries", Name: "deliveries observed", Value: float64(len(lats)), Unit: fmt.Sprintf("of %d", want)},
			{Key: "p50_ms", Name: "p50 write→remote change event", Value: float64(p50.Microseconds()) / 1000, Unit: "ms"},
			{Key: "p99_ms", Name: "p99 write→remote change event", Value: float64(p99.Microseconds()) / 1000, Unit: "ms", Target: "< 10", Met: met(p99 < 10*time.Millisecond && len(lats) == want)},
			{Key: "max_ms", Name: "max", Value: float64(percentile(lats, 1).Microseconds()) / 1000, Unit: "ms"},
		},
	}, nil
}

// Catchup: two peers partitioned, writes writes (one register set and one
// counter increment each) on each side, then healed; bytes on the sync stream
// relative to the missed deltas, and round trips.
func Catchup(ctx context.Context, o Options, writes int) (Result, error) {
	c, err := newPair(ctx, o, "catchup")
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	da, db := c.docs[0], c.docs[1]
	if err := c.partition(ctx); err != nil {
		return Result{}, err
	}
	for i := 0; i < writes; i++ {
		for side, d := range []*concord.Doc{da, db} {
			key := fmt.Sprintf("%c%d", 'a'+side, i)
			if err := d.Update(ctx, func(tx *concord.Txn) { tx.Set([]string{key}, i).Inc([]string{"n"}, 1) }); err != nil {
				return Result{}, err
			}
		}
	}
	n, missedBytes, err := c.missed(ctx)
	if err != nil {
		return Result{}, err
	}
	took, err := c.heal(ctx, 60*time.Second)
	if err != nil {
		return Result{}, fmt.Errorf("catch-up: %w", err)
	}
	events, err := c.settled(ctx)
	if err != nil {
		return Result{}, err
	}
	var exchanges, carrying, out, in, rtts int
	for _, e := range events {
		if !e.Initiator {
			continue
		}
		exchanges++
		out += e.Stats.BytesOut
		in += e.Stats.BytesIn
		if e.Stats.DeltasIn+e.Stats.DeltasOut > 0 {
			carrying++
			rtts++ // hellos cross once; everything else streams
		}
	}
	ratio := float64(out+in) / float64(missedBytes)
	return Result{
		Scenario: "catch-up after partition", Name: "catchup",
		Params:   fmt.Sprintf("2 peers, %d writes per side (a set and an increment each), %d+%d deltas missed, store=%s", writes, n[0], n[1], storeName(o)),
		ParamMap: map[string]any{"peers": 2, "writes_per_side": writes, "missed_deltas": n[0] + n[1], "store": storeName(o), "mesh_degree": degreeN(o)},
		Metrics: []Metric{
			{Key: "sync_initiator_to_responder_bytes", Name: "sync bytes initiator→responder", Value: float64(out), Unit: "bytes"},
			{Key: "sync_responder_to_initiator_bytes", Name: "sync bytes responder→initiator", Value: float64(in), Unit: "bytes"},
			{Key: "sync_per_write_bytes", Name: "bytes per write carried", Value: float64(out+in) / float64(2*writes), Unit: "bytes"},
			{Key: "sync_to_missed_ratio", Name: "sync bytes ÷ missed envelope bytes", Value: ratio, Unit: "ratio", Target: "≤ 1.2", Met: met(ratio <= 1.2)},
			{Key: "exchanges_with_deltas", Name: "exchanges carrying deltas", Value: float64(carrying), Unit: "exchanges"},
			{Key: "round_trips", Name: "round trips", Value: float64(rtts), Unit: "RTT", Target: "≤ 2", Met: met(rtts <= 2)},
			{Key: "heal_to_converged_ms", Name: "heal → converged", Value: took.Seconds() * 1000, Unit: "ms"},
		},
	}, nil
}

// degreeN is the mesh degree in effect.
func degreeN(o Options) int {
	if o.MeshDegree == 0 {
		return 6
	}
	return o.MeshDegree
}

func degree(o Options) string {
	if o.MeshDegree == 0 {
		return "6 (default)"
	}
	return fmt.Sprint(o.MeshDegree)
}
