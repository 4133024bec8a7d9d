package concord

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// TestRestartCatchUp: a peer stops, the others keep writing, and it restarts
// from its Pebble directory with its state and identity, then catches up.
func TestRestartCatchUp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := testNode(t, ""), testNode(t, "")
	connect(t, b, a)
	da, db := openDoc(t, a, "r"), openDoc(t, b, "r")

	c := testNode(t, dir)
	connect(t, c, a)
	dc := openDoc(t, c, "r")
	for i := 0; i < 20; i++ {
		if err := dc.Add(ctx, []string{"from-c"}, i); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, 10*time.Second, da, db, dc)
	id, rep := c.ID(), c.Replica()
	before := dc.JSON()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := da.Inc(ctx, []string{"n"}, 1); err != nil {
			t.Fatal(err)
		}
		if err := db.Set(ctx, []string{"b", fmt.Sprint(i)}, i); err != nil {
			t.Fatal(err)
		}
	}

	c2 := testNode(t, dir)
	if c2.ID() != id || c2.Replica() != rep {
		t.Fatalf("identity changed across restart: %s/%s → %s/%s", id, rep, c2.ID(), c2.Replica())
	}
	dc2 := openDoc(t, c2, "r")
	if got := dc2.JSON(); !bytes.Equal(got, before) {
		t.Fatalf("state after restart %s, before %s", got, before)
	}
	connect(t, c2, a)
	waitConverged(t, 15*time.Second, da, db, dc2)
	// The restarted peer keeps writing with fresh sequence numbers.
	if err := dc2.Add(ctx, []string{"from-c"}, "after"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 10*time.Second, da, db, dc2)
}

// TestLostStoreNewIncarnation: a node whose store is lost but whose key is
// kept writes under a new replica ID, so it never reuses a sequence number.
func TestLostStoreNewIncarnation(t *testing.T) {
	ctx := context.Background()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	a := testNode(t, "")
	da := openDoc(t, a, "inc")
	b1 := testNode(t, t.TempDir(), func(c *Config) { c.PrivateKey = key })
	connect(t, b1, a)
	db1 := openDoc(t, b1, "inc")
	if err := db1.Set(ctx, []string{"k"}, "old"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 10*time.Second, da, db1)
	rep1 := b1.Replica()
	_ = b1.Close()

	b2 := testNode(t, t.TempDir(), func(c *Config) { c.PrivateKey = key }) // store lost
	if b2.ID() != b1.ID() {
		t.Fatal("same key, different peer ID")
	}
	if b2.Replica() == rep1 {
		t.Fatal("a fresh store reused the replica ID: sequence numbers would repeat")
	}
	db2 := openDoc(t, b2, "inc")
	if err := db2.Set(ctx, []string{"k2"}, "new"); err != nil {
		t.Fatal(err)
	}
	connect(t, b2, a)
	waitConverged(t, 10*time.Second, da, db2)
	if got := string(db2.JSON()); got != `{"k":"old","k2":"new"}` {
		t.Fatalf("view %s", got)
	}
}

// TestOutboxSurvivesRestart: writes made while alone stay in the durable
// outbox across a restart and leave it once a peer holds them; with
// WithAckPeers(2) one peer is not enough.
func TestOutboxSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := testNode(t, dir)
	da := openDoc(t, a, "ob", WithAckPeers(2))
	for i := 0; i < 3; i++ {
		if err := da.Inc(ctx, []string{"n"}, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := da.Status().Outbox; n != 3 {
		t.Fatalf("outbox %d while alone", n)
	}
	_ = a.Close()
	a2 := testNode(t, dir)
	da2 := openDoc(t, a2, "ob", WithAckPeers(2))
	if n := da2.Status().Outbox; n != 3 {
		t.Fatalf("outbox %d after restart", n)
	}
	b := testNode(t, "")
	db := openDoc(t, b, "ob")
	connect(t, b, a2)
	waitConverged(t, 10*time.Second, da2, db)
	// One peer holds them, but two acknowledgments are required.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := da2.WaitAcked(short)
	cancel()
	if err == nil || da2.Status().Outbox != 3 {
		t.Fatalf("acknowledged by one peer with WithAckPeers(2): err=%v outbox=%d", err, da2.Status().Outbox)
	}
	c := testNode(t, "")
	dc := openDoc(t, c, "ob")
	connect(t, c, a2)
	waitConverged(t, 10*time.Second, da2, db, dc)
	wctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	if err := da2.WaitAcked(wctx); err != nil {
		t.Fatal(err)
	}
	if n := da2.Status().Outbox; n != 0 {
		t.Fatalf("outbox %d after two peers acknowledged", n)
	}
}
