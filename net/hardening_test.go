package net

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// A frame announcing 60 MiB that is not a snapshot is refused before any
// of it is read, and a snapshot frame's memory follows the bytes received.
func TestSyncFrameBounds(t *testing.T) {
	s := &Syncer{cfg: SyncerConfig{Limits: wire.DefaultSyncLimits()}}
	frame := func(n uint64, flag byte, body []byte) *frameReader {
		var hdr [binary.MaxVarintLen64]byte
		k := binary.PutUvarint(hdr[:], n)
		br := bufio.NewReader(bytes.NewReader(append(append(hdr[:k], flag), body...)))
		return &frameReader{s: s, br: br, scope: &network.NullScope{}}
	}
	any := func(snapshot bool) (int, error) {
		if snapshot {
			return s.cfg.Limits.MaxSnapshotBytes, nil
		}
		return s.cfg.Limits.MaxFrameBytes, nil
	}
	next := func(fr *frameReader) (*wire.SyncMsg, int, error) { return fr.next(any) }
	if _, _, err := next(frame(60<<20, frameRaw, nil)); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("oversized non-snapshot frame: %v", err)
	}
	if _, _, err := next(frame(60<<20, frameSnapshot, []byte{1, 2, 3})); err == nil || errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("truncated snapshot frame: %v (want an EOF, nothing reserved)", err)
	}
	hello, _ := wire.EncodeSyncMsg(&wire.SyncMsg{Type: wire.TypeSyncHello, Doc: "d"})
	if _, _, err := next(frame(uint64(len(hello)+1), frameSnapshot, hello)); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("hello flagged as snapshot: %v", err)
	}
	if _, _, err := next(frame(uint64(len(hello)+1), 0x80, hello)); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("unknown flag: %v", err)
	}
	m, _, err := next(frame(uint64(len(hello)+1), frameRaw, hello))
	if err != nil || m.Type != wire.TypeSyncHello {
		t.Fatalf("good frame: %v", err)
	}
}

// Inbound streams are capped per node and per peer before anything is read;
// only a crossing exchange (ours outbound, theirs inbound, theirs started
// by the lower ID) may share a document's slot.
func TestInboundExchangeAccounting(t *testing.T) {
	h, err := NewHost(LoopbackHostConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	s := NewSyncer(h, SyncerConfig{})
	defer s.Close()
	low := peer.ID("") // sorts below any real peer ID
	k := syncKey{low, "d"}
	if held, ok := s.acquireInbound(context.Background(), k); !held || !ok {
		t.Fatal("first inbound exchange refused")
	}
	for i := 0; i < 10; i++ {
		if _, ok := s.acquireInbound(context.Background(), k); ok {
			t.Fatal("a second inbound exchange for the same peer and document was accepted")
		}
	}
	s.releaseInbound(k, true, nil)
	s.mu.Lock()
	s.inflight[k] = &syncSlot{outbound: true} // we are syncing with them
	s.mu.Unlock()
	if held, ok := s.acquireInbound(context.Background(), k); held || !ok {
		t.Fatal("crossing exchange from the lower ID refused")
	}
	s.releaseInbound(k, false, nil)
	for i := 0; i < maxInboundPerPeer; i++ {
		if !s.acquireStream(low) {
			t.Fatalf("stream %d of one peer refused under the cap", i)
		}
	}
	if s.acquireStream(low) {
		t.Fatal("per-peer cap not enforced")
	}
	s.releaseStream(low)
	if !s.acquireStream(low) {
		t.Fatal("released slot not reusable")
	}
	for i := maxInboundPerPeer; i < maxInbound; i++ {
		if !s.acquireStream(peer.ID(fmt.Sprint(i))) {
			t.Fatalf("stream %d refused under the node cap", i)
		}
	}
	if s.acquireStream(peer.ID("over")) {
		t.Fatal("node cap not enforced")
	}
}
