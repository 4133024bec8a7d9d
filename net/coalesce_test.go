package net

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// recCoalescer records the runs it is given and returns a stand-in
// aggregate covering each (or fails on a run starting at failAt).
type recCoalescer struct {
	runs   []string
	failAt uint64
}

func (c *recCoalescer) Coalesce(run []*wire.Envelope) (*wire.Envelope, error) {
	c.runs = append(c.runs, fmt.Sprintf("%s:%d-%d", run[0].Origin, run[0].Seq, run[len(run)-1].Seq))
	if run[0].Seq == c.failAt {
		return nil, errors.New("refused")
	}
	return &wire.Envelope{Origin: run[0].Origin, Seq: run[0].Seq, Last: run[len(run)-1].Seq}, nil
}

func spans(envs []*wire.Envelope) string {
	s := ""
	for _, e := range envs {
		s += fmt.Sprintf("[%s %d-%d]", e.Origin, e.Seq, e.LastSeq())
	}
	return s
}

// TestCoalesceRuns: only runs of two or more envelopes with one origin and
// consecutive seqs become aggregates; aggregates, gaps, origin changes, the
// byte budget and a refused run all cut or keep runs as they should.
func TestCoalesceRuns(t *testing.T) {
	lim := wire.DefaultLimits()
	log := slog.New(slog.DiscardHandler)
	env := func(o crdt.ReplicaID, seq, last uint64, size int) *wire.Envelope {
		return &wire.Envelope{Origin: o, Seq: seq, Last: last, Payload: make([]byte, size)}
	}
	cases := []struct {
		name   string
		envs   []*wire.Envelope
		failAt uint64
		want   string
		runs   int
	}{
		{"single", []*wire.Envelope{env("a", 1, 0, 1)}, 0, "[a 1-1]", 0},
		{"run", []*wire.Envelope{env("a", 1, 0, 1), env("a", 2, 0, 1), env("a", 3, 0, 1)}, 0, "[a 1-3]", 1},
		{"gap", []*wire.Envelope{env("a", 1, 0, 1), env("a", 2, 0, 1), env("a", 4, 0, 1), env("a", 5, 0, 1)}, 0, "[a 1-2][a 4-5]", 2},
		{"origins", []*wire.Envelope{env("a", 1, 0, 1), env("b", 2, 0, 1), env("b", 3, 0, 1)}, 0, "[a 1-1][b 2-3]", 1},
		{"aggregate inside", []*wire.Envelope{env("a", 1, 0, 1), env("a", 2, 4, 1), env("a", 5, 0, 1), env("a", 6, 0, 1)}, 0, "[a 1-1][a 2-4][a 5-6]", 1},
		{"budget", []*wire.Envelope{env("a", 1, 0, lim.MaxPayloadBytes/4), env("a", 2, 0, lim.MaxPayloadBytes/4), env("a", 3, 0, lim.MaxPayloadBytes/4)}, 0, "[a 1-2][a 3-3]", 1},
		{"refused", []*wire.Envelope{env("a", 1, 0, 1), env("a", 2, 0, 1), env("a", 4, 0, 1), env("a", 5, 0, 1)}, 1, "[a 1-1][a 2-2][a 4-5]", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			co := &recCoalescer{failAt: tc.failAt}
			got := coalesceRuns(co, tc.envs, lim, log)
			if spans(got) != tc.want || len(co.runs) != tc.runs {
				t.Fatalf("got %s after runs %v, want %s after %d runs", spans(got), co.runs, tc.want, tc.runs)
			}
		})
	}
	// A run never exceeds MaxAggregateRun deltas.
	long := make([]*wire.Envelope, wire.MaxAggregateRun+10)
	for i := range long {
		long[i] = env("a", uint64(i+1), 0, 0)
	}
	got := coalesceRuns(&recCoalescer{}, long, lim, log)
	if want := fmt.Sprintf("[a 1-%d][a %d-%d]", wire.MaxAggregateRun, wire.MaxAggregateRun+1, wire.MaxAggregateRun+10); spans(got) != want {
		t.Fatalf("long run: %s, want %s", spans(got), want)
	}
	// Without a Coalescer nothing changes.
	if got := coalesceRuns(nil, long[:3], lim, log); spans(got) != "[a 1-1][a 2-2][a 3-3]" {
		t.Fatalf("no coalescer: %s", spans(got))
	}
}

// acceptAll is a Handler whose Validate accepts everything.
type acceptAll struct{ validated int }

func (h *acceptAll) Validate(peer.ID, *wire.Envelope) error { h.validated++; return nil }
func (h *acceptAll) Deliver(peer.ID, []*wire.Envelope)      {}
func (h *acceptAll) Summary(peer.ID, *wire.Summary)         {}

// TestGossipAggregateBounds: on gossip one aggregate covers at most
// MaxGossipRun deltas and one message at most MaxGossipSeqs sequence
// numbers; past either the message is rejected before the handler sees it.
func TestGossipAggregateBounds(t *testing.T) {
	g := &Gossip{cfg: GossipConfig{Limits: wire.DefaultLimits()}}
	msg := func(envs ...wire.Envelope) *pubsub.Message {
		b, err := wire.EncodeBatch(&wire.DeltaBatch{Envelopes: envs})
		if err != nil {
			t.Fatal(err)
		}
		return &pubsub.Message{Message: &pb.Message{Data: b}}
	}
	agg := func(seq, last uint64) wire.Envelope {
		return wire.Envelope{Doc: "d", Origin: "a", Seq: seq, Last: last, Payload: []byte{0xa0}, Sig: []byte{1}}
	}
	for _, tc := range []struct {
		name   string
		m      *pubsub.Message
		reason string
	}{
		{"longest run", msg(agg(1, wire.MaxGossipRun)), ""},
		{"run too long", msg(agg(1, wire.MaxGossipRun+1)), "aggregate_too_long"},
		{"seqs at the bound", msg(agg(1, 1024), agg(1025, 2048), agg(2049, 3072), agg(3073, 4096)), ""},
		{"too many seqs", msg(agg(1, 1024), agg(1025, 2048), agg(2049, 3072), agg(3073, 4096), agg(4097, 4098)), "too_many_deltas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &acceptAll{}
			_, reason, res := g.validate("d", h, tc.m)
			if reason != tc.reason {
				t.Fatalf("reason %q (%v), want %q", reason, res, tc.reason)
			}
			if tc.reason != "" && (res != pubsub.ValidationReject || h.validated != 0) {
				t.Fatalf("result %v after %d handler checks", res, h.validated)
			}
		})
	}
}

// TestPublishQueueBytesBound: envelopes queued for gossip are bounded in
// bytes as well as in number; past the byte bound they are dropped and
// counted, and taking envelopes off the queue makes room again.
func TestPublishQueueBytesBound(t *testing.T) {
	m := NewMetrics(nil)
	cfg := DefaultGossipConfig()
	cfg.QueueBytes = 10 << 10
	cfg.Metrics = m
	// scheduled: the test takes from the queue itself, no worker does.
	tp := &Topic{g: &Gossip{cfg: cfg}, scheduled: true}
	e := &wire.Envelope{Payload: make([]byte, 1000)} // costs 1064 bytes
	for range 20 {
		tp.Publish(e)
	}
	if len(tp.queue) != 9 {
		t.Fatalf("%d envelopes queued, want 9 within 10 KiB", len(tp.queue))
	}
	if got := counterValue(m.Dropped.WithLabelValues("gossip_out", "full")); got != 11 {
		t.Fatalf("%v drops counted, want 11", got)
	}
	tp.takeLocked(1)
	tp.Publish(e)
	if len(tp.queue) != 9 {
		t.Fatalf("taking one did not make room: %d queued", len(tp.queue))
	}
	// The author's decoded delta counts eight times over.
	tp2 := &Topic{g: &Gossip{cfg: cfg}, scheduled: true}
	tp2.Publish(&wire.Envelope{Payload: make([]byte, 1000), Delta: crdt.New()})
	tp2.Publish(&wire.Envelope{Payload: make([]byte, 1000), Delta: crdt.New()})
	if len(tp2.queue) != 1 {
		t.Fatalf("%d envelopes with decoded deltas queued, want 1", len(tp2.queue))
	}
	// The node's bound holds across its topics, and taking gives it back.
	cfg.NodeQueueBytes = 5 << 10
	g := &Gossip{cfg: cfg}
	ta, tb := &Topic{g: g, scheduled: true}, &Topic{g: g, scheduled: true}
	for range 3 {
		ta.Publish(e)
		tb.Publish(e)
	}
	if len(ta.queue)+len(tb.queue) != 4 || counterValue(m.Dropped.WithLabelValues("gossip_out", "node_full")) != 2 {
		t.Fatalf("%d+%d queued within the node's 5 KiB", len(ta.queue), len(tb.queue))
	}
	ta.takeLocked(2)
	tb.Publish(e)
	if len(tb.queue) != 3 || g.queued.Load() != 3*queueCost(e) {
		t.Fatalf("taking did not give the node's room back: %d queued, %d bytes", len(tb.queue), g.queued.Load())
	}
}
