package concord

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// The inbox: what gossip hands a document. Gossip delivers from
// GossipSub's validators, which must never wait, so a message joins the
// document's inbox (bounded; past the bound it is dropped and counted,
// and anti-entropy fetches it later) and the node's worker pool steps the
// engine with it, in arrival order. No goroutine is held per document.

// Inbox bounds, per document and per node. Gossip messages are at most
// wire.DefaultLimits().MaxMessageBytes; a document's inbox holds a few
// hundred of them, and all documents together at most maxNodeInboxBytes.
const (
	maxInbox          = 512
	maxInboxBytes     = 8 << 20
	maxNodeInboxBytes = 64 << 20
)

// inbound is one gossip message waiting in a document's inbox.
type inbound struct {
	from      peer.ID
	envs      []*wire.Envelope
	summary   *wire.Summary
	connected bool  // the summary's origin is connected to us
	cost      int64 // inboxCost
}

// inboxCost estimates what a message holds while it waits: its payloads
// and signatures (received envelopes are decoded later, by the engine).
func inboxCost(envs []*wire.Envelope) int64 {
	n := int64(256)
	for _, e := range envs {
		n += int64(len(e.Payload) + len(e.Sig) + 96)
	}
	return n
}

// Deliver takes validated envelopes from gossip. It never waits.
func (r *driver) Deliver(from peer.ID, envs []*wire.Envelope) {
	r.receive(inbound{from: from, envs: envs, cost: inboxCost(envs)})
}

// Summary takes a summary from gossip. It never waits.
func (r *driver) Summary(from peer.ID, s *wire.Summary) {
	connected := true
	if p, err := wire.PeerOf(s.Origin); err == nil && r.d.connected != nil {
		connected = r.d.connected(p)
	}
	r.receive(inbound{from: from, summary: s, connected: connected, cost: int64(256 + 48*len(s.VV))})
}

// receive queues in, or drops and counts it when the inbox is full.
func (r *driver) receive(in inbound) {
	node := r.d.inboxBytes
	r.qmu.Lock()
	defer r.qmu.Unlock()
	if r.inboxClosed {
		r.d.metrics.Drop("gossip_in", "closed")
		return
	}
	if in.summary != nil && r.supersedeLocked(in) {
		return
	}
	if len(r.inbox) >= maxInbox || r.inboxBytes+in.cost > maxInboxBytes {
		r.d.metrics.Drop("gossip_in", "full")
		return
	}
	if node != nil && node.Add(in.cost) > maxNodeInboxBytes {
		node.Add(-in.cost)
		r.d.metrics.Drop("gossip_in", "node_full")
		return
	}
	r.inboxBytes += in.cost
	r.inbox = append(r.inbox, in)
	r.scheduleLocked()
}

// supersedeLocked settles a summary when one from the same origin and
// sender still waits (only a peer's latest summary matters): the newer
// beacon of the two stays, in the waiting one's place, and the other is
// dropped as superseded. It reports whether in was settled so (even in a
// full inbox). Beacons count up per origin, but validators run
// concurrently, so the older may come second. Caller holds r.qmu.
func (r *driver) supersedeLocked(in inbound) bool {
	for i := range r.inbox {
		w := &r.inbox[i]
		if w.summary == nil || w.from != in.from || w.summary.Origin != in.summary.Origin {
			continue
		}
		if in.summary.Beacon > w.summary.Beacon {
			d := in.cost - w.cost
			r.inboxBytes += d
			if node := r.d.inboxBytes; node != nil {
				node.Add(d)
			}
			*w = in
		}
		r.d.metrics.Drop("gossip_in", "superseded")
		return true
	}
	return false
}

// takeInboxLocked takes the inbox's first message. Caller holds r.qmu.
func (r *driver) takeInboxLocked() inbound {
	in := r.inbox[0]
	r.inbox[0] = inbound{}
	r.inbox = r.inbox[1:]
	r.inboxBytes -= in.cost
	if node := r.d.inboxBytes; node != nil {
		node.Add(-in.cost)
	}
	return in
}

// closeInboxLocked refuses what arrives from now on and drops what waits.
// Caller holds r.qmu.
func (r *driver) closeInboxLocked() {
	r.inboxClosed = true
	for len(r.inbox) > 0 {
		r.takeInboxLocked()
		r.d.metrics.Drop("gossip_in", "closed")
	}
	r.inbox = nil
}

// stepInbound steps the engine with a message from the inbox (the worker
// calls it). A closed document ignores it.
func (r *driver) stepInbound(in inbound) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.d.metrics.Drop("gossip_in", "closed")
		return
	}
	if in.summary != nil {
		r.eng.Summary(r.d.now(), in.from, in.summary, in.connected)
	} else {
		r.eng.Receive(r.d.now(), in.from, in.envs, true)
	}
	r.queueLocked(r.takeLocked(true))
}
