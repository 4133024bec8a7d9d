package engine

import (
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// The pull rules: when to start an anti-entropy exchange, and with whom.
// Exchanges are asked for in Ready.Pulls; the caller runs them (coalescing
// a request for a peer while one with it runs).

type seenSummary struct {
	vv crdt.VersionVector
	at time.Time
}

// maxSummaryOrigins bounds the remembered summaries per document. Past it,
// origins not heard from for summaryStale are forgotten first, so a flood
// of made-up origins does not push out the peers that keep beaconing.
const (
	maxSummaryOrigins = 4096
	summaryStale      = 30 * time.Second
)

// GapGrace is how long a gap in a replica's deltas may last before an
// exchange is started to fill it: concurrent validation reorders gossip
// slightly, and the predecessor is usually a moment behind.
const GapGrace = 150 * time.Millisecond

// maxGaps bounds the gaps remembered until the next check; more are
// dropped (and counted): the summary beacons repair them too.
const maxGaps = 256

// Summary handles a summary received from peer from (which relayed it, or
// is its origin). originConnected tells whether the origin's peer is
// connected to us directly. Straight from its origin over an authenticated
// connection, a summary is an acknowledgment. It pulls what the previous
// summary of the same origin announced and we still lack: deltas announced
// a moment ago are usually still in flight on gossip, and pulling them
// would send them twice.
func (d *Doc) Summary(now time.Time, from peer.ID, s *wire.Summary, originConnected bool) {
	p, err := wire.PeerOf(s.Origin)
	if err != nil {
		return
	}
	if p == from {
		d.Observe(now, p, s.VV)
	}
	prev := d.swapSummary(now, s.Origin, s.VV)
	if prev == nil {
		return
	}
	mine := d.st.Contiguous()
	weLack, theyLack := false, false
	for rep, v := range prev {
		if v > mine[rep] {
			weLack = true
		}
	}
	for rep, v := range mine {
		if v > s.VV[rep] {
			theyLack = true
		}
	}
	// When both sides lack something, both see it in each other's
	// summaries: only the lower ID starts the exchange. Held-back inserts
	// for collected elements ask for one too (tombstones.go).
	target := p
	if !originConnected {
		target = from
	}
	if (!weLack || theyLack && d.cfg.SelfPeer > p) && !d.wantsRepair(now, target) {
		return
	}
	d.rd.Pulls = append(d.rd.Pulls, target)
}

// swapSummary stores vv as origin's latest summary and returns the one
// before it (nil for the first).
func (d *Doc) swapSummary(now time.Time, origin crdt.ReplicaID, vv crdt.VersionVector) crdt.VersionVector {
	if _, ok := d.summaries[origin]; !ok && len(d.summaries) >= maxSummaryOrigins {
		for o, s := range d.summaries {
			if now.Sub(s.at) > summaryStale {
				delete(d.summaries, o)
			}
		}
		if len(d.summaries) >= maxSummaryOrigins {
			d.drop("summaries", "full")
			return nil // remembered origins are all live: ignore a new one
		}
	}
	prev := d.summaries[origin]
	d.summaries[origin] = seenSummary{vv: vv, at: now}
	return prev.vv
}

// Connected tells the engine peer p connected: one exchange repairs both
// sides, so only the lower peer ID starts it.
func (d *Doc) Connected(p peer.ID) {
	if d.cfg.SelfPeer < p {
		d.rd.Pulls = append(d.rd.Pulls, p)
	}
}

// Pull asks for an exchange with p (a document just opened catches up with
// everyone connected).
func (d *Doc) Pull(p peer.ID) { d.rd.Pulls = append(d.rd.Pulls, p) }

// noteGap notes that seq of origin arrived from peer from before seq-1;
// after GapGrace, Tick pulls from the sender of every noted gap still open.
func (d *Doc) noteGap(now time.Time, from peer.ID, origin crdt.ReplicaID, seq uint64) {
	if d.gaps == nil {
		d.gaps = map[crdt.Dot]peer.ID{}
	}
	if len(d.gaps) >= maxGaps {
		d.drop("gap_checks", "full")
		return
	}
	d.gaps[crdt.Dot{Replica: origin, Counter: seq}] = from
	if d.gapAt.IsZero() {
		d.gapAt = now.Add(GapGrace)
	}
}

// Deadline returns when Tick next has something to do; false: nothing
// scheduled.
func (d *Doc) Deadline() (time.Time, bool) {
	if d.hold.want > 0 && (d.gapAt.IsZero() || d.hold.until.Before(d.gapAt)) {
		return d.hold.until, true
	}
	return d.gapAt, !d.gapAt.IsZero()
}

// Tick advances the engine's timers to now: the pending own writes are
// cut once their wait for more (group.go) is over, and gaps noted
// GapGrace ago that are still open are pulled from their senders.
func (d *Doc) Tick(now time.Time) {
	d.now = now
	d.tickHold(now)
	if d.gapAt.IsZero() || now.Before(d.gapAt) {
		return
	}
	gaps := d.gaps
	d.gaps, d.gapAt = nil, time.Time{}
	senders := map[peer.ID]bool{}
	for g, from := range gaps {
		if !d.holds(crdt.Dot{Replica: g.Replica, Counter: g.Counter - 1}) {
			senders[from] = true
		}
	}
	d.rd.Pulls = append(d.rd.Pulls, slices.Sorted(maps.Keys(senders))...)
}
