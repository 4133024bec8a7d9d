package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/concord-p2p/concord/crdt"
)

func TestReplicaRoundTrip(t *testing.T) {
	_, id := testKey(t, 1)
	for _, inc := range []uint64{0, 1, 0x1f, 1<<64 - 1} {
		r := ReplicaFor(id, inc)
		if !strings.HasPrefix(string(r), id.String()+".") {
			t.Fatalf("ReplicaFor = %q", r)
		}
		got, gotInc, err := ParseReplica(r)
		if err != nil || got != id || gotInc != inc {
			t.Fatalf("ParseReplica(%q) = %v, %d, %v", r, got, gotInc, err)
		}
		p, err := PeerOf(r)
		if err != nil || p != id {
			t.Fatalf("PeerOf(%q) = %v, %v", r, p, err)
		}
	}
	if r := ReplicaFor(id, 0x1f); !strings.HasSuffix(string(r), ".1f") {
		t.Fatalf("incarnation not lowercase hex: %q", r)
	}
}

func TestPeerOfRejects(t *testing.T) {
	_, id := testKey(t, 1)
	s := id.String()
	for _, r := range []string{
		"", ".", s, s + ".", "." + "1", s + ".1F", s + ".01", s + ".-1", s + ".x",
		s + ".10000000000000000", "notapeer.1", s[:len(s)-1] + ".1",
		strings.Repeat("a", 300) + ".1", s + ". 1",
	} {
		if _, err := PeerOf(crdt.ReplicaID(r)); !errors.Is(err, ErrBadReplica) {
			t.Errorf("PeerOf(%q) err = %v, want ErrBadReplica", r, err)
		}
	}
}
