package net

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Admission: how many exchanges run at once, per node and per peer, and
// which of two crossing exchanges goes first.

// acquireStream counts an inbound stream from p against maxInbound and
// maxInboundPerPeer, before anything is read from it; ok is false when a
// cap is reached.
func (s *Syncer) acquireStream(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.inbound >= maxInbound || s.inPeer[p] >= maxInboundPerPeer {
		return false
	}
	s.inbound++
	s.inPeer[p]++
	return true
}

// releaseStream ends what acquireStream counted.
func (s *Syncer) releaseStream(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inbound--
	if s.inPeer[p]--; s.inPeer[p] <= 0 {
		delete(s.inPeer, p)
	}
}

// acquireOutbound waits until fewer than maxOutboundPerPeer exchanges we
// run with p are under way, and counts one more. While it waits, runners
// leave p's slots to it (popLocked).
func (s *Syncer) acquireOutbound(ctx context.Context, p peer.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.outPeer[p] >= maxOutboundPerPeer {
		s.outWait[p]++
		free := s.freed
		s.mu.Unlock()
		var err error
		select {
		case <-free:
		case <-ctx.Done():
			err = ctx.Err()
		}
		s.mu.Lock()
		if s.outWait[p]--; s.outWait[p] <= 0 {
			delete(s.outWait, p)
		}
		if err != nil {
			s.spawnLocked() // p's slots are the runners' again
			return err
		}
	}
	s.outPeer[p]++
	return nil
}

// releaseOutbound ends what acquireOutbound counted.
func (s *Syncer) releaseOutbound(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseOutboundLocked(p)
	s.spawnLocked()
}

func (s *Syncer) releaseOutboundLocked(p peer.ID) {
	if s.outPeer[p]--; s.outPeer[p] <= 0 {
		delete(s.outPeer, p)
	}
	s.signalFreedLocked()
}

// acquireInbound registers an exchange answered for k. It refuses (ok
// false) one for k from a peer already answered for k. One of ours for k
// still queued is served by this one instead (it starts after the
// trigger). When ours for k runs (the two crossed, or the peer started its
// own meanwhile): one started by a lower peer ID than ours runs alongside;
// one started by a higher ID waits for ours to end (the peer, holding the
// higher ID, answers ours without waiting, so neither waits for the
// other). held reports whether this exchange owns k's slot.
func (s *Syncer) acquireInbound(ctx context.Context, k syncKey) (held, ok bool) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return false, false
		}
		slot := s.inflight[k]
		switch {
		case slot == nil || slot.queued != nil:
			s.unqueueLocked(slot)
			s.inflight[k] = &syncSlot{}
			s.mu.Unlock()
			return true, true
		case !slot.outbound:
			s.mu.Unlock()
			return false, false
		case k.p < s.h.ID():
			s.mu.Unlock()
			return false, true
		}
		free := s.freed
		s.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return false, false
		}
	}
}

// releaseInbound ends an answered exchange; a trigger that arrived
// meanwhile starts one exchange of our own.
func (s *Syncer) releaseInbound(k syncKey, held bool, r SyncDoc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !held {
		return
	}
	slot := s.inflight[k]
	delete(s.inflight, k)
	s.signalFreedLocked()
	if slot != nil && slot.dirty && !s.closed {
		s.queueLocked(k, &syncSlot{outbound: true, doc: r})
	}
}

// takeSlot waits until no exchange for k runs and takes its slot for r (a
// queued one's included: this exchange serves its trigger).
func (s *Syncer) takeSlot(ctx context.Context, k syncKey, r SyncDoc) (*syncSlot, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if old := s.inflight[k]; old == nil || old.queued != nil {
			s.unqueueLocked(old)
			slot := &syncSlot{outbound: true, doc: r}
			s.inflight[k] = slot
			s.mu.Unlock()
			return slot, nil
		}
		free := s.freed
		s.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// signalFreedLocked wakes the waiters of acquireOutbound, acquireInbound
// and takeSlot.
func (s *Syncer) signalFreedLocked() {
	close(s.freed)
	s.freed = make(chan struct{})
}
