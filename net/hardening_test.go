package net

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestAggregateRunCapped(t *testing.T) {
	priv, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(priv)
	e := &Envelope{Doc: "d", Origin: ReplicaFor(id, 1), Seq: 1, Last: 1 << 40, Payload: []byte{0xa0}}
	if err := SignEnvelope(priv, e); err != nil {
		t.Fatal(err)
	}
	b, _ := EncodeEnvelope(e)
	if _, err := DecodeEnvelope(b, DefaultLimits()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("aggregate of 2^40 deltas: %v", err)
	}
}

// A frame announcing 60 MiB that is not a snapshot is refused before any
// of it is read, and a snapshot frame's memory follows the bytes received.
func TestSyncFrameBounds(t *testing.T) {
	s := &Syncer{cfg: SyncerConfig{Limits: DefaultSyncLimits()}}
	frame := func(n uint64, flag byte, body []byte) *bufio.Reader {
		var hdr [binary.MaxVarintLen64]byte
		k := binary.PutUvarint(hdr[:], n)
		return bufio.NewReader(bytes.NewReader(append(append(hdr[:k], flag), body...)))
	}
	if _, _, err := s.readFrame(frame(60<<20, frameRaw, nil)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized non-snapshot frame: %v", err)
	}
	if _, _, err := s.readFrame(frame(60<<20, frameSnapshot, []byte{1, 2, 3})); err == nil || errors.Is(err, ErrTooLarge) {
		t.Fatalf("truncated snapshot frame: %v (want an EOF, nothing reserved)", err)
	}
	hello, _ := EncodeSyncMsg(&SyncMsg{Type: TypeSyncHello, Doc: "d"})
	if _, _, err := s.readFrame(frame(uint64(len(hello)+1), frameSnapshot, hello)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("hello flagged as snapshot: %v", err)
	}
	if _, _, err := s.readFrame(frame(uint64(len(hello)+1), 0x80, hello)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown flag: %v", err)
	}
	m, _, err := s.readFrame(frame(uint64(len(hello)+1), frameRaw, hello))
	if err != nil || m.Type != TypeSyncHello {
		t.Fatalf("good frame: %v", err)
	}
}

// Only a crossing exchange (ours outbound, theirs inbound, theirs started by
// the lower ID) may share a slot, and every answered exchange counts
// against the inbound cap.
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
	if held, ok := s.acquireInbound(k); !held || !ok {
		t.Fatal("first inbound exchange refused")
	}
	for i := 0; i < 10; i++ {
		if _, ok := s.acquireInbound(k); ok {
			t.Fatal("a second inbound exchange for the same peer and document was accepted")
		}
	}
	s.releaseInbound(k, true, nil)
	s.mu.Lock()
	s.inflight[k] = &syncSlot{outbound: true} // we are syncing with them
	s.mu.Unlock()
	if held, ok := s.acquireInbound(k); held || !ok {
		t.Fatal("crossing exchange from the lower ID refused")
	}
	s.mu.Lock()
	n := s.inbound
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("crossing exchange not counted: inbound=%d", n)
	}
	s.releaseInbound(k, false, nil)
	for i := 0; i < maxInbound; i++ {
		if _, ok := s.acquireInbound(syncKey{low, fmt.Sprint(i)}); !ok {
			t.Fatalf("exchange %d refused under the cap", i)
		}
	}
	if _, ok := s.acquireInbound(syncKey{low, "over"}); ok {
		t.Fatal("cap not enforced")
	}
}
