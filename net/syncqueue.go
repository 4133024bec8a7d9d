package net

import (
	"container/list"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Triggered exchanges: a bounded queue of (peer, document) keys, run by at
// most maxOutbound runner goroutines, at most maxOutboundPerPeer with one
// peer at once.

const (
	// maxOutbound bounds the goroutines running triggered exchanges, so the
	// triggered exchanges under way at once, per node.
	maxOutbound = 64
	// maxPendingOutbound bounds the triggered exchanges waiting for a
	// runner. Overflow policy: a trigger past it is dropped and counted
	// (queue="sync_outbound", reason="full"); a later summary, gap or
	// connection triggers the exchange again. The re-run of an exchange
	// triggered while it ran is queued past the bound (there are at most
	// as many as exchanges under way).
	maxPendingOutbound = 4096
)

// Trigger queues an exchange with p for r, to run in the background over
// an open connection (it never dials; Sync does). When one between them
// for r.Doc() is running, in either direction, the request is coalesced:
// one more exchange runs after it (it may find nothing to do); when one is
// already queued, Trigger does nothing. Past maxPendingOutbound queued
// exchanges the trigger is dropped and counted. Queued exchanges with a
// peer are dropped (and counted) when its last connection closes.
func (s *Syncer) Trigger(p peer.ID, r SyncDoc) {
	k := syncKey{p, r.Doc()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if slot := s.inflight[k]; slot != nil {
		if slot.queued == nil {
			slot.dirty = true
		}
		return
	}
	if s.queue.n >= maxPendingOutbound {
		s.cfg.Metrics.Drop("sync_outbound", "full")
		return
	}
	s.queueLocked(k, &syncSlot{outbound: true, doc: r})
}

// queueLocked queues slot, the exchange for k, and starts a runner if one
// is free and the exchange may run.
func (s *Syncer) queueLocked(k syncKey, slot *syncSlot) {
	slot.queued = s.queue.push(k)
	s.inflight[k] = slot
	s.spawnLocked()
}

// unqueueLocked takes slot (nil, or not queued: nothing happens) off the
// queue; its caller takes over its key.
func (s *Syncer) unqueueLocked(slot *syncSlot) {
	if slot == nil || slot.queued == nil {
		return
	}
	s.queue.remove(slot.queued)
	slot.queued = nil
}

// spawnLocked starts runners, up to maxOutbound, while queued exchanges may
// run.
func (s *Syncer) spawnLocked() {
	for s.runners < maxOutbound {
		k, r, ok := s.popLocked()
		if !ok {
			return
		}
		s.runners++
		s.wg.Add(1)
		go s.runOutbound(k, r)
	}
}

// popLocked takes the next queued exchange whose peer has a free outbound
// slot (not awaited by a call of Sync) and counts it against that peer.
func (s *Syncer) popLocked() (syncKey, SyncDoc, bool) {
	if s.closed {
		return syncKey{}, nil, false
	}
	k, ok := s.queue.pop(func(p peer.ID) bool { return s.outPeer[p]+s.outWait[p] < maxOutboundPerPeer })
	if !ok {
		return syncKey{}, nil, false
	}
	slot := s.inflight[k]
	slot.queued = nil
	s.outPeer[k.p]++
	return k, slot.doc, true
}

// runOutbound is a runner: it runs the exchange for k with r, then the next
// queued one that may run, until there is none.
func (s *Syncer) runOutbound(k syncKey, r SyncDoc) {
	defer s.wg.Done()
	// Triggered exchanges use open connections only: dialing (with backoff)
	// is the supervisor's job, and an exchange re-run after its connection
	// dropped must not redial a peer that is going away.
	ctx := network.WithNoDial(s.ctx, "sync trigger: the supervisor dials")
	for {
		if _, err := s.exchange(ctx, k.p, r, time.Now()); err != nil {
			s.cfg.Logger.Debug("sync failed", "peer", k.p, "doc", k.doc, "err", err)
		}
		s.mu.Lock()
		if slot := s.inflight[k]; slot.dirty && !s.closed {
			slot.dirty = false // triggered meanwhile: once more, in turn
			slot.queued = s.queue.push(k)
		} else {
			delete(s.inflight, k)
		}
		s.releaseOutboundLocked(k.p)
		var ok bool
		if k, r, ok = s.popLocked(); !ok {
			s.runners--
			s.mu.Unlock()
			return
		}
		s.spawnLocked() // the slot freed may let another peer's run
		s.mu.Unlock()
	}
}

// disconnected drops the exchanges queued with p once it has no
// connection left (queue="sync_outbound", reason="disconnected"): they
// would fail without dialing. The next connection triggers them again.
func (s *Syncer) disconnected(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under s.mu: a trigger for a new connection queues after us.
	if s.closed || s.h.Network().Connectedness(p) == network.Connected {
		return
	}
	keys := s.queue.takePeer(p)
	for _, k := range keys {
		delete(s.inflight, k)
	}
	if len(keys) > 0 {
		s.signalFreedLocked()
		s.cfg.Metrics.DropN("sync_outbound", "disconnected", len(keys))
	}
}

// outQueue holds the keys of queued exchanges: one FIFO per peer, the
// peers served in turn. Its zero value is empty.
type outQueue struct {
	byPeer map[peer.ID]*list.List // of syncKey
	turn   []peer.ID              // the peers with keys queued, next served first
	n      int                    // keys queued
}

// push queues k last among its peer's.
func (q *outQueue) push(k syncKey) *list.Element {
	if q.byPeer == nil {
		q.byPeer = map[peer.ID]*list.List{}
	}
	l := q.byPeer[k.p]
	if l == nil {
		l = list.New()
		q.byPeer[k.p] = l
		q.turn = append(q.turn, k.p)
	}
	q.n++
	return l.PushBack(k)
}

// remove takes e, returned by push, off the queue.
func (q *outQueue) remove(e *list.Element) {
	p := e.Value.(syncKey).p
	l := q.byPeer[p]
	l.Remove(e)
	q.n--
	if l.Len() == 0 {
		delete(q.byPeer, p)
		q.turn = slices.DeleteFunc(q.turn, func(x peer.ID) bool { return x == p })
	}
}

// pop takes the first key of the first peer in turn for which ok holds;
// that peer's turn comes last.
func (q *outQueue) pop(ok func(peer.ID) bool) (syncKey, bool) {
	for i, p := range q.turn {
		if !ok(p) {
			continue
		}
		l := q.byPeer[p]
		k := l.Remove(l.Front()).(syncKey)
		q.n--
		q.turn = slices.Delete(q.turn, i, i+1)
		if l.Len() == 0 {
			delete(q.byPeer, p)
		} else {
			q.turn = append(q.turn, p)
		}
		return k, true
	}
	return syncKey{}, false
}

// takePeer takes p's keys off the queue and returns them.
func (q *outQueue) takePeer(p peer.ID) []syncKey {
	l := q.byPeer[p]
	if l == nil {
		return nil
	}
	keys := make([]syncKey, 0, l.Len())
	for e := l.Front(); e != nil; e = e.Next() {
		keys = append(keys, e.Value.(syncKey))
	}
	q.n -= len(keys)
	delete(q.byPeer, p)
	q.turn = slices.DeleteFunc(q.turn, func(x peer.ID) bool { return x == p })
	return keys
}

// clear empties the queue and returns the keys it held.
func (q *outQueue) clear() []syncKey {
	var keys []syncKey
	for _, p := range slices.Clone(q.turn) {
		keys = append(keys, q.takePeer(p)...)
	}
	return keys
}
