package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
)

// Acknowledgments: what peers are known to hold, which empties the outbox
// and sets the compaction floor.

type ackWaiter struct {
	id       uint64 // WaitAcked ticket
	prop     uint64 // proposals up to this one must be cut first
	target   uint64 // own seq to be acknowledged, once resolved
	resolved bool
}

// maxPeersPerDoc bounds the peers whose holdings a document remembers
// (for acknowledgments and the compaction floor); past it the peer heard
// from least recently is forgotten.
const maxPeersPerDoc = 1024

// Observe records that peer p holds vv (a summary straight from it, or the
// end of an exchange): own deltas it holds are acknowledged (Ready.AckUpTo)
// and compaction may start.
func (d *Doc) Observe(now time.Time, p peer.ID, vv crdt.VersionVector) {
	if p == d.cfg.SelfPeer {
		return
	}
	pv := d.peerVV[p]
	if pv == nil {
		if len(d.peerVV) >= maxPeersPerDoc {
			d.evictOldestPeer()
		}
		pv = crdt.VersionVector{}
		d.peerVV[p] = pv
	}
	pv.Merge(vv)
	d.peerSeen[p] = now
	held := make([]uint64, 0, len(d.peerVV))
	for _, v := range d.peerVV {
		held = append(held, v[d.cfg.Self])
	}
	slices.Sort(held)
	slices.Reverse(held)
	var upTo uint64
	if len(held) >= d.cfg.AckPeers {
		upTo = min(held[d.cfg.AckPeers-1], d.nextSeq-1)
	}
	if upTo > d.acked && upTo > d.ackAsked {
		d.ackAsked = upTo
		d.rd.AckUpTo = upTo
	}
	d.maybeCompact(now)
}

// Acknowledged reports the outcome of Ready.AckUpTo.
func (d *Doc) Acknowledged(upTo uint64, err error) {
	if err != nil {
		d.rd.Warnings = append(d.rd.Warnings, fmt.Errorf("ack: %w", err))
		if d.ackAsked == upTo {
			d.ackAsked = d.acked // ask again on the next observation
		}
		return
	}
	if upTo > d.acked {
		d.acked = upTo
	}
	d.checkWaiters()
}

// Acked returns the highest own sequence number acknowledged.
func (d *Doc) Acked() uint64 { return d.acked }

func (d *Doc) evictOldestPeer() {
	var oldest peer.ID
	var at time.Time
	for p, t := range d.peerSeen {
		if oldest == "" || t.Before(at) {
			oldest, at = p, t
		}
	}
	delete(d.peerVV, oldest)
	delete(d.peerSeen, oldest)
}

// CompactionFloor returns what every peer known to hold the document (and
// we) hold: the log below it may be folded. Peers silent for longer than
// the retention are left out.
func (d *Doc) CompactionFloor(now time.Time) crdt.VersionVector {
	return d.floorOf(now, d.st.Contiguous())
}

// floorOf lowers held (a fresh vector of what is held here, modified) to
// the compaction floor.
func (d *Doc) floorOf(now time.Time, held crdt.VersionVector) crdt.VersionVector {
	floor := held
	for p, v := range d.peerVV {
		if d.cfg.Retention > 0 && now.Sub(d.peerSeen[p]) > d.cfg.Retention {
			continue // gone too long: it will catch up by snapshot
		}
		for rep, n := range floor {
			floor[rep] = min(n, v[rep])
		}
	}
	return floor
}
