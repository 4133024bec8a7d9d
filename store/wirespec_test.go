package store

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/ipfs/go-datastore"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/internal/specdoc"
	"github.com/concord-p2p/concord/wire"
)

// The parts of WIRE.md that store owns: log records, their keys and the
// store's constants. The data inside the records are WIRE.md's own
// vectors (checked by internal/wirespec); here they are wrapped and keyed
// by the real codec.

// TestWireSpecRecords checks every store-* vector of WIRE.md: hex blocks
// are records, text blocks keys.
func TestWireSpecRecords(t *testing.T) {
	spec, err := specdoc.Load()
	if err != nil {
		t.Fatal(err)
	}
	hexOf := func(id string) []byte {
		t.Helper()
		b, err := spec.Hex(id)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	textOf := func(id string) string {
		t.Helper()
		s, err := spec.Text(id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	snapMsg, err := wire.DecodeSyncMsg(hexOf("sync-snapshot"), wire.DefaultSyncLimits())
	if err != nil {
		t.Fatal(err)
	}
	alice := crdt.ReplicaID(textOf("replica-alice"))
	c := newCodec()
	clock, err := parseUint(textOf("hlc-b1"))
	if err != nil {
		t.Fatal(err)
	}
	snap := Snapshot{State: snapMsg.State, VV: snapMsg.VV, Clock: clock, Heads: snapMsg.Heads}
	records := map[string][]byte{
		"store-log-envelope": c.encodeLog(hexOf("envelope-a1")),
		"store-log-marker":   c.encodeLog(hexOf("marker")),
		"store-snap":         c.encodeSnap(snap),
		"store-outbox":       c.marshal(outboxRecord{Replica: string(alice)}),
		"store-acked":        c.marshal(ackRecord{UpTo: 3}),
		"store-schema":       c.marshal(uintRecord{V: schemaVersion}),
		"store-incarnation":  c.marshal(uintRecord{V: 1}),
	}
	keys := map[string]string{
		"store-key-log":         logKey("todo", alice, 1).String(),
		"store-key-log-escaped": logKey("a/b c", alice, 0x1234).String(),
		"store-key-snap":        snapKey("todo").String(),
		"store-key-outbox":      outboxKey("todo", 1).String(),
		"store-key-acked":       ackedKey("todo").String(),
		"store-key-fork":        forkKey("todo", Fork{Replica: alice, Seq: 1, ID: 0xfeedface}).String(),
	}
	for id, want := range records {
		if specdoc.Updating() {
			if err := spec.SetHex(id, want); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got := hexOf(id); !bytes.Equal(got, want) {
			t.Errorf("WIRE.md record %s differs from the codec's:\n spec %x\n code %x", id, got, want)
		}
	}
	for id, want := range keys {
		if specdoc.Updating() {
			if err := spec.SetBody(specdoc.KindText, id, want); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got := textOf(id); got != want {
			t.Errorf("WIRE.md key %s is %q, the store writes %q", id, got, want)
		}
		if _, err := parseDocKey(want); err != nil {
			t.Errorf("key %s does not parse: %v", id, err)
		}
	}
	if specdoc.Updating() {
		if err := spec.Save(); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, kind := range []string{specdoc.KindHex, specdoc.KindText} {
		for _, id := range spec.IDs(kind) {
			_, r := records[id]
			_, k := keys[id]
			if strings.HasPrefix(id, "store-") && !r && !k {
				t.Errorf("WIRE.md has a %s block %s that no test checks", kind, id)
			}
		}
	}
	// The recorded bytes decode back.
	k := datastore.NewKey("/x")
	if data, err := c.decodeLog(k, hexOf("store-log-envelope")); err != nil || !bytes.Equal(data, hexOf("envelope-a1")) {
		t.Errorf("store-log-envelope decodes to %x, %v", data, err)
	}
	got, err := c.decodeSnap(k, hexOf("store-snap"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.State, snap.State) || !got.VV.Equal(snap.VV) || got.Clock != snap.Clock || len(got.Heads) != len(snap.Heads) {
		t.Errorf("store-snap decodes to %+v", got)
	}
}

func parseUint(s string) (uint64, error) {
	var n uint64
	_, err := fmt.Sscan(s, &n)
	return n, err
}

// TestWireSpecStoreConstants checks the constants of WIRE.md named store.*.
func TestWireSpecStoreConstants(t *testing.T) {
	spec, err := specdoc.Load()
	if err != nil {
		t.Fatal(err)
	}
	actual := map[string]string{
		"store.schemaVersion":                  fmt.Sprint(schemaVersion),
		"store.MaxForks":                       fmt.Sprint(MaxForks),
		"store.DefaultOptions().MaxBatchBytes": fmt.Sprint(DefaultOptions().MaxBatchBytes),
	}
	for _, err := range spec.CompareConstants("store.", actual) {
		t.Error(err)
	}
}
