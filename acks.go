package concord

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
)

// Acknowledgments: what peers are known to hold, which empties the outbox
// and sets the compaction floor.

// Observed implements cnet.Replica: peer p holds vv. It acknowledges own
// deltas (outbox) and may trigger compaction.
func (r *replica) Observed(p peer.ID, vv crdt.VersionVector) {
	if p == r.d.selfPeer {
		return
	}
	r.mu.Lock()
	pv := r.peerVV[p]
	if pv == nil {
		if len(r.peerVV) >= maxPeersPerDoc {
			r.evictOldestPeerLocked()
		}
		pv = crdt.VersionVector{}
		r.peerVV[p] = pv
	}
	pv.Merge(vv)
	r.peerSeen[p] = r.d.now()
	var held []uint64
	for _, v := range r.peerVV {
		held = append(held, v[r.d.self])
	}
	slices.Sort(held)
	slices.Reverse(held)
	var upTo uint64
	if len(held) >= r.d.ackPeers {
		upTo = min(held[r.d.ackPeers-1], r.nextSeq-1)
	}
	advance := upTo > r.acked
	r.mu.Unlock()
	if advance {
		if err := r.d.store.Ack(context.Background(), r.doc, upTo); err != nil {
			r.d.log.Warn("ack failed", "doc", r.doc, "err", err)
			return
		}
		r.mu.Lock()
		if upTo > r.acked {
			r.acked = upTo
			close(r.ackCh)
			r.ackCh = make(chan struct{})
		}
		r.mu.Unlock()
		r.updateOutboxMetric()
	}
	r.maybeCompact()
}

// maxPeersPerDoc bounds the peers whose holdings a document remembers
// (for acknowledgments and the compaction floor); past it the peer heard
// from least recently is forgotten.
const maxPeersPerDoc = 1024

func (r *replica) evictOldestPeerLocked() {
	var oldest peer.ID
	var at time.Time
	for p, t := range r.peerSeen {
		if oldest == "" || t.Before(at) {
			oldest, at = p, t
		}
	}
	delete(r.peerVV, oldest)
	delete(r.peerSeen, oldest)
}

func (r *replica) updateOutboxMetric() {
	if m := r.d.metrics; m != nil {
		m.OutboxDepth.WithLabelValues(r.doc).Set(float64(r.d.store.OutboxDepth(r.doc)))
	}
}

// waitAcked blocks until every own delta written so far is acknowledged.
func (r *replica) waitAcked(ctx context.Context) error {
	r.mu.Lock()
	// Writes pending or being cut have no sequence numbers yet (a split
	// delta takes several): wait until they have, then aim past them.
	gen := r.cutGen
	if r.pending != nil {
		gen++
	}
	for r.seqGen < gen && r.failed == nil && !r.closed {
		r.cond.Wait()
	}
	target := r.nextSeq - 1
	for r.acked < target {
		if r.failed != nil || r.closed {
			err := r.failed
			if err == nil {
				err = ErrClosed
			}
			r.mu.Unlock()
			return err
		}
		ch := r.ackCh
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.mu.Lock()
	}
	r.mu.Unlock()
	return nil
}
