package wire

import (
	"fmt"
	"strings"
	"testing"

	"github.com/concord-p2p/concord/crdt"
)

// The largest legal Hello fits MaxHelloBytes.
func TestMaxHelloBytes(t *testing.T) {
	lim := DefaultSyncLimits()
	vv := crdt.VersionVector{}
	for i := 0; i < lim.Envelope.MaxVVEntries; i++ {
		id := fmt.Sprintf("%0*d", maxReplicaLen, i)
		vv[crdt.ReplicaID(id)] = crdt.MaxCounter
	}
	m := &SyncMsg{Type: TypeSyncHello, Doc: strings.Repeat("d", maxDocBytes), VV: vv, NoSnapshot: true}
	b, err := EncodeSyncMsg(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > lim.MaxHelloBytes() {
		t.Fatalf("largest hello is %d bytes, bound %d", len(b), lim.MaxHelloBytes())
	}
	if _, err := DecodeSyncMsg(b, lim); err != nil {
		t.Fatalf("largest hello refused: %v", err)
	}
	t.Logf("largest hello %d bytes, bound %d", len(b), lim.MaxHelloBytes())
}
