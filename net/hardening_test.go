package net

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
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
