package net

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/concord-p2p/concord/wire"
)

// The publish side of a topic: the bounded queue, Run (on the Gossip's
// shared publish workers), which batches and coalesces what it takes from
// it, and summary beacons.

// Publish queues e for gossip. It never blocks: when the queue is full the
// envelope is dropped and counted; anti-entropy delivers it later.
func (t *Topic) Publish(e *wire.Envelope) {
	m := t.g.cfg.Metrics
	c := queueCost(e)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed.Load():
		m.Drop("gossip_out", "closed")
		return
	case len(t.queue) >= t.g.cfg.QueueSize || t.queued+c > t.g.cfg.QueueBytes:
		m.Drop("gossip_out", "full")
		return
	}
	if t.g.queued.Add(c) > t.g.cfg.NodeQueueBytes {
		t.g.queued.Add(-c)
		m.Drop("gossip_out", "node_full")
		return
	}
	t.queue = append(t.queue, e)
	t.queued += c
	if t.scheduled {
		return
	}
	t.scheduled = true
	if d := t.g.cfg.FlushInterval; d > 0 {
		// Wait that long for more to share the message.
		t.timer = time.AfterFunc(d, func() { t.g.pool.Schedule(t) })
		return
	}
	t.g.pool.Schedule(t)
}

// queueCost estimates the memory an envelope holds while queued: a decoded
// delta takes several times its encoding.
func queueCost(e *wire.Envelope) int64 {
	n := int64(len(e.Payload) + len(e.Sig) + 64)
	if e.Delta != nil {
		n *= 8
	}
	return n
}

// PublishSummary publishes a summary beacon now.
func (t *Topic) PublishSummary(ctx context.Context, s *wire.Summary) error {
	b, err := wire.EncodeSummary(s)
	if err != nil {
		return err
	}
	if err := t.topic.Publish(ctx, b); err != nil {
		return fmt.Errorf("net: publish summary: %w", err)
	}
	if m := t.g.cfg.Metrics; m != nil {
		m.GossipMessages.WithLabelValues("out").Inc()
	}
	return nil
}

// Run publishes what is queued: a publish worker calls it, for one
// topic at a time. Natural batching: it takes whatever is queued now (at
// most maxTake), publishes it and goes back in line if more came
// meanwhile. Under load batches grow while Publish runs; an idle writer's
// delta goes out at once.
func (t *Topic) Run() {
	t.mu.Lock()
	if t.closed.Load() || len(t.queue) == 0 {
		t.scheduled = false
		t.mu.Unlock()
		return
	}
	taken := t.takeLocked(maxTake)
	t.running = true
	t.mu.Unlock()

	t.publish(taken)

	t.mu.Lock()
	t.running = false
	t.idle.Broadcast()
	if len(t.queue) > 0 && !t.closed.Load() {
		t.g.pool.Schedule(t) // still scheduled: back in line
	} else {
		t.scheduled = false
	}
	t.mu.Unlock()
}

// takeLocked takes up to n envelopes off the queue and releases their
// cost. Caller holds t.mu.
func (t *Topic) takeLocked(n int) []*wire.Envelope {
	n = min(len(t.queue), n)
	taken := make([]*wire.Envelope, n)
	copy(taken, t.queue)
	clear(t.queue[:n])
	t.queue = t.queue[n:]
	if len(t.queue) == 0 {
		t.queue = nil // the drained backing array goes
	}
	var c int64
	for _, e := range taken {
		c += queueCost(e)
	}
	t.queued -= c
	t.g.queued.Add(-c)
	return taken
}

// publish coalesces the runs of taken and publishes them in as few
// messages as fit.
func (t *Topic) publish(taken []*wire.Envelope) {
	m := t.g.cfg.Metrics
	bb := wire.NewBatchBuilder(t.g.cfg.Limits.MaxMessageBytes)
	flush := func() {
		if bb.Len() == 0 {
			return
		}
		n := bb.Len()
		b, err := bb.Encode()
		if err != nil {
			m.DropN("gossip_out", "encode", n)
			return
		}
		if err := t.topic.Publish(t.ctx, b); err != nil {
			reason := "publish"
			if t.ctx.Err() != nil {
				reason = "closed"
			}
			m.DropN("gossip_out", reason, n)
			return
		}
		if m != nil {
			m.GossipMessages.WithLabelValues("out").Inc()
			m.Deltas.WithLabelValues("out").Add(float64(n))
		}
	}
	add := func(e *wire.Envelope) {
		ok, err := bb.Add(*e)
		if err != nil {
			// Too big for one message: the sync stream carries it.
			m.Drop("gossip_out", "too_large")
			return
		}
		if !ok {
			flush()
			if ok, _ = bb.Add(*e); !ok {
				m.Drop("gossip_out", "too_large")
			}
		}
	}
	c := t.co
	speaks := t.topicFeatures()
	if c != nil && !speaks.Has(wire.FeatureAggregates) {
		// A topic peer that did not announce aggregates would refuse
		// them: the run goes as it is.
		c = nil
	}
	for _, e := range coalesceRuns(c, taken, t.g.cfg.Limits, t.g.cfg.Logger) {
		if !speaks.Has(e.Features) {
			// A topic peer would refuse it (a delta holding sequences, a
			// peer without them): the peers that speak it pull it by sync,
			// after the next summary.
			m.Drop("gossip_out", "needs_feature")
			continue
		}
		add(e)
	}
	flush()
}

// maxTake bounds the envelopes the publisher takes from its queue at once
// (and so the deltas of one aggregate).
const maxTake = wire.MaxGossipRun

// coalesceRuns replaces each run of two or more envelopes with one origin
// and consecutive sequence numbers by co's aggregate. A run is cut where
// its payloads would exceed half a payload budget, so that the aggregate
// (at most their sum) always fits in one message.
func coalesceRuns(co Coalescer, envs []*wire.Envelope, lim wire.Limits, log *slog.Logger) []*wire.Envelope {
	if co == nil || len(envs) < 2 {
		return envs
	}
	budget := min(lim.MaxPayloadBytes, lim.MaxMessageBytes) / 2
	out := envs[:0:0]
	emit := func(run []*wire.Envelope) {
		if len(run) < 2 {
			out = append(out, run...)
			return
		}
		agg, err := co.Coalesce(run)
		if err != nil || agg == nil {
			if err != nil {
				log.Warn("coalesce failed; publishing the run", "doc", run[0].Doc, "err", err)
			}
			out = append(out, run...)
			return
		}
		out = append(out, agg)
	}
	start, bytes := 0, 0
	for i, e := range envs {
		if i > start {
			prev := envs[i-1]
			if e.Origin != prev.Origin || e.Last != 0 || prev.Last != 0 || e.Seq != prev.Seq+1 ||
				i-start >= wire.MaxAggregateRun || bytes+len(e.Payload) > budget {
				emit(envs[start:i])
				start, bytes = i, 0
			}
		}
		bytes += len(e.Payload)
	}
	emit(envs[start:])
	return out
}
