package net

import (
	"errors"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// The read side of a topic: the validator GossipSub runs on every message
// (decode, bounds, the handler's checks), which hands what it accepted to
// the handler.

type decoded struct {
	envs    []*wire.Envelope
	summary *wire.Summary
}

// validate decodes and checks one message; it returns the decoded content,
// a reject reason and the verdict.
func (g *Gossip) validate(doc string, hd Handler, msg *pubsub.Message) (*decoded, string, pubsub.ValidationResult) {
	data := msg.GetData()
	typ, err := wire.MessageType(data, g.cfg.Limits)
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) || len(data) > g.cfg.Limits.MaxMessageBytes {
			return nil, "too_large", pubsub.ValidationReject
		}
		return nil, "malformed", pubsub.ValidationReject
	}
	switch typ {
	case wire.TypeSummary:
		s, err := wire.DecodeSummary(data, g.cfg.Limits)
		if err != nil {
			return nil, reasonOf(err), pubsub.ValidationReject
		}
		if s.Doc != doc {
			return nil, "wrong_doc", pubsub.ValidationReject
		}
		op, err := wire.PeerOf(s.Origin)
		if err != nil {
			return nil, "summary_origin", pubsub.ValidationReject
		}
		if op == g.h.ID() {
			// A summary in our name that this run did not publish (our own
			// publishes are accepted above and their echoes are duplicates).
			// Neither delivered nor relayed. When all it claims is held
			// here, it is most likely a beacon of an earlier run (before a
			// restart) coming back, and it says nothing false about us:
			// stale. A claim beyond what we hold was never ours: forged.
			if vh, ok := hd.(VersionHolder); ok && vh.Version().Covers(s.VV) {
				return nil, "summary_stale", pubsub.ValidationIgnore
			}
			return nil, "summary_forged", pubsub.ValidationReject
		}
		return &decoded{summary: s}, "", pubsub.ValidationAccept
	case wire.TypeBatch:
		b, err := wire.DecodeBatch(data, g.cfg.Limits)
		if err != nil {
			return nil, reasonOf(err), pubsub.ValidationReject
		}
		// Bound the sequence numbers one message may make a receiver store
		// (an aggregate stores a marker for each it covers), before any
		// envelope is checked.
		var covered uint64
		for i := range b.Envelopes {
			e := &b.Envelopes[i]
			if e.Doc != doc {
				return nil, "wrong_doc", pubsub.ValidationReject
			}
			n := e.LastSeq() - e.Seq + 1
			if n > wire.MaxGossipRun {
				return nil, "aggregate_too_long", pubsub.ValidationReject
			}
			if covered += n; covered > wire.MaxGossipSeqs {
				return nil, "too_many_deltas", pubsub.ValidationReject
			}
		}
		d := &decoded{}
		for i := range b.Envelopes {
			e := &b.Envelopes[i]
			switch err := hd.Validate(msg.ReceivedFrom, e); {
			case err == nil:
				d.envs = append(d.envs, e)
			case errors.Is(err, wire.ErrDuplicate):
			default:
				return nil, reasonOf(err), pubsub.ValidationReject
			}
		}
		if len(d.envs) == 0 {
			return nil, "duplicate", pubsub.ValidationIgnore
		}
		return d, "", pubsub.ValidationAccept
	default:
		return nil, "unknown_type", pubsub.ValidationReject
	}
}

// RejectReason is implemented by errors that name their metrics reason.
type RejectReason interface{ Reason() string }

func reasonOf(err error) string {
	var rr RejectReason
	switch {
	case errors.As(err, &rr):
		return rr.Reason()
	case errors.Is(err, wire.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, wire.ErrTooLarge):
		return "too_large"
	case errors.Is(err, wire.ErrVersion):
		return "version"
	case errors.Is(err, wire.ErrBadReplica):
		return "bad_replica"
	}
	return "malformed"
}

// deliver hands a validated message to the handler.
func (t *Topic) deliver(from peer.ID, d *decoded) {
	m := t.g.cfg.Metrics
	if m != nil {
		m.GossipMessages.WithLabelValues("in").Inc()
	}
	if d.summary != nil {
		t.hd.Summary(from, d.summary)
		return
	}
	if m != nil {
		m.Deltas.WithLabelValues("in").Add(float64(len(d.envs)))
	}
	t.hd.Deliver(from, d.envs)
}
