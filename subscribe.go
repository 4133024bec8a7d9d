package concord

import (
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
)

// Change describes one applied change of a document: a local transaction
// once durable, or deltas received from a peer once merged and stored.
type Change struct {
	Doc string
	// N is the change's number on this node: one more than the change
	// before it, in the order changes are applied, from a start taken
	// from the node's boot time (so numbers only grow, across restarts
	// too). A view read with Doc.JSONAt names the change it follows; a
	// splice made on it can name that change as its base (Txn.SpliceAt).
	N uint64
	// Local is true for this node's own writes.
	Local bool
	// Origin is the author replica (of the first delta, for a batch).
	Origin crdt.ReplicaID
	// Peer is the peer that delivered a remote change.
	Peer peer.ID
	// Paths are the paths whose content changed, sorted.
	Paths [][]string
	// Patches are the edits of texts and lists in the change, in order:
	// applied one after the other to the views the previous change left,
	// they give the new ones. Changes arrive in the order they were
	// applied, so a subscriber that missed none can keep a text current
	// from patches alone. A key that switches kinds in the change (or
	// disappears) has no patches, only its path in Paths: read it again.
	Patches []crdt.SeqPatch
}

// Subscription delivers a document's changes on C. Its buffer is bounded:
// when it is full a change is dropped and counted in Missed (and in the
// dropped-items metric); the subscriber should then re-read the document.
// C is closed when the subscription or the document is closed.
type Subscription struct {
	C      <-chan Change
	c      chan Change
	r      *driver
	missed atomic.Uint64
}

// Missed returns how many changes were dropped because C was full.
func (s *Subscription) Missed() uint64 { return s.missed.Load() }

// Close ends the subscription.
func (s *Subscription) Close() {
	r := s.r
	r.subMu.Lock()
	defer r.subMu.Unlock()
	if _, ok := r.subs[s]; ok {
		delete(r.subs, s)
		close(s.c)
	}
	r.track(len(r.subs))
}

func (r *driver) subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = 64
	}
	c := make(chan Change, buffer)
	s := &Subscription{C: c, c: c, r: r}
	r.subMu.Lock()
	defer r.subMu.Unlock()
	if r.subClosed {
		close(c)
		return s
	}
	r.subs[s] = struct{}{}
	r.track(len(r.subs))
	return s
}

// track tells the engine whether changes need their paths (n
// subscribers). Caller holds r.subMu (the lock order is subMu, then mu).
func (r *driver) track(n int) {
	r.mu.Lock()
	r.eng.Track(n > 0)
	r.mu.Unlock()
}

func (r *driver) notify(ch Change) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	for s := range r.subs {
		select {
		case s.c <- ch:
		default:
			s.missed.Add(1)
			r.d.metrics.Drop("subscription", "full")
		}
	}
}
