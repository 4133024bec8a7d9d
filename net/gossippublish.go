package net

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/concord-p2p/concord/wire"
)

// The publish side of a topic: the bounded queue, the loop that batches
// and coalesces what it takes from it, and summary beacons.

// Publish queues e for gossip. It never blocks: when the queue is full the
// envelope is dropped and counted; anti-entropy delivers it later.
func (t *Topic) Publish(e *wire.Envelope) {
	select {
	case <-t.ctx.Done():
		t.g.cfg.Metrics.Drop("gossip_out", "closed")
		return
	default:
	}
	c := queueCost(e)
	if t.queued.Add(c) > t.g.cfg.QueueBytes {
		t.queued.Add(-c)
		t.g.cfg.Metrics.Drop("gossip_out", "full")
		return
	}
	select {
	case t.queue <- e:
	default:
		t.queued.Add(-c)
		t.g.cfg.Metrics.Drop("gossip_out", "full")
	}
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

// take receives from the queue and releases the envelope's cost.
func (t *Topic) take(e *wire.Envelope) *wire.Envelope {
	t.queued.Add(-queueCost(e))
	return e
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

func (t *Topic) publishLoop() {
	defer t.wg.Done()
	bb := wire.NewBatchBuilder(t.g.cfg.Limits.MaxMessageBytes)
	m := t.g.cfg.Metrics
	taken := make([]*wire.Envelope, 0, 64)
	defer func() {
		// Closing: what is still taken, batched or queued is not published
		// (the outbox and anti-entropy carry it); count it.
		m.DropN("gossip_out", "closed", len(taken)+bb.Len()+len(t.queue))
	}()
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
			m.DropN("gossip_out", "publish", n)
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
	co, _ := t.hd.(Coalescer)
	for {
		select {
		case <-t.ctx.Done():
			return
		case e := <-t.queue:
			// Natural batching: take whatever is queued now (at most
			// maxTake), publish it, repeat. Under load batches grow while
			// Publish runs; an idle writer's delta goes out at once.
			// FlushInterval, if set, waits that long for more.
			taken = append(taken[:0], t.take(e))
			var timer <-chan time.Time
			if t.g.cfg.FlushInterval > 0 {
				timer = time.After(t.g.cfg.FlushInterval)
			}
		collect:
			for len(taken) < maxTake {
				select {
				case e := <-t.queue:
					taken = append(taken, t.take(e))
					continue
				default:
				}
				if timer == nil {
					break collect
				}
				select {
				case e := <-t.queue:
					taken = append(taken, t.take(e))
				case <-timer:
					break collect
				case <-t.ctx.Done():
					return
				}
			}
			c := co
			speaks := t.topicFeatures()
			if c != nil && !speaks.Has(wire.FeatureAggregates) {
				// A topic peer that did not announce aggregates would refuse
				// them: the run goes as it is.
				c = nil
			}
			for _, e := range coalesceRuns(c, taken, t.g.cfg.Limits, t.g.cfg.Logger) {
				if !speaks.Has(e.Features) {
					// A topic peer would refuse it (a delta holding
					// sequences, a peer without them): the peers that speak
					// it pull it by sync, after the next summary.
					m.Drop("gossip_out", "needs_feature")
					continue
				}
				add(e)
			}
			clear(taken)
			taken = taken[:0]
			flush()
		}
	}
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
