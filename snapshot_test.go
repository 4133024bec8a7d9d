package concord

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/wire"
)

// TestSnapshotClaimingOurSeqsRejected: a snapshot whose vector says it
// holds more of our deltas than we wrote is refused (it would make us skip
// our next writes).
func TestSnapshotClaimingOurSeqsRejected(t *testing.T) {
	ctx := context.Background()
	n := testNode(t, "")
	d := openDoc(t, n, "snap")
	if err := d.Set(ctx, []string{"a"}, 1); err != nil {
		t.Fatal(err)
	}
	forged := crdt.Encode(crdt.New())
	err := d.r.IngestSnapshot(ctx, n.ID(), wire.Snapshot{State: forged, VV: crdt.VersionVector{n.Replica(): 1000}})
	var rej *engine.RejectError
	if !errors.As(err, &rej) || rej.Reason() != "bad_snapshot" {
		t.Fatalf("forged snapshot: %v", err)
	}
	if err := d.Set(ctx, []string{"b"}, 2); err != nil {
		t.Fatal(err)
	}
	if v := d.Status().Version[n.Replica()]; v != 2 {
		t.Fatalf("own version %d after a refused snapshot", v)
	}
}

// TestSnapshotClaimingOurDotsRejected: a snapshot whose causal context
// claims dots of ours that we never minted (which would swallow our next
// writes) is refused.
func TestSnapshotClaimingOurDotsRejected(t *testing.T) {
	ctx := context.Background()
	n := testNode(t, "")
	d := openDoc(t, n, "snapdots")
	if err := d.Set(ctx, []string{"a"}, 1); err != nil {
		t.Fatal(err)
	}
	forged := crdt.New()
	forged.Context().AddRange(n.Replica(), 1, 1000)
	err := d.r.IngestSnapshot(ctx, n.ID(), wire.Snapshot{State: crdt.Encode(forged)})
	var rej *engine.RejectError
	if !errors.As(err, &rej) || rej.Reason() != "bad_snapshot" {
		t.Fatalf("forged snapshot: %v", err)
	}
	if err := d.Set(ctx, []string{"b"}, 2); err != nil {
		t.Fatal(err)
	}
	if got := string(d.JSON()); got != `{"a":1,"b":2}` {
		t.Fatalf("view after a refused snapshot: %s", got)
	}
}

// TestSnapshotOnlyFromWriters: with a writer allowlist, a snapshot — which
// carries no author signatures — is accepted only from an allowed writer,
// and a peer that is not one is asked (in Hello) for the log instead:
// relays with or without the allowlist serve the log, and a relay whose log
// was compacted serves what is left without failing the exchange.
func TestSnapshotOnlyFromWriters(t *testing.T) {
	ctx := context.Background()
	small := func(c *Config) { c.SnapshotAfter = 10 }
	a := testNode(t, "", small)
	only := WithWriters(a.ID())
	da := openDoc(t, a, "w", only)
	for i := 0; i < 30; i++ {
		if err := da.Set(ctx, []string{"k", fmt.Sprint(i)}, i); err != nil {
			t.Fatal(err)
		}
	}
	// A relay sharing the allowlist serves the log: c catches up, no snapshot.
	var log exchangeLog
	relay := testNode(t, "", small)
	dr := openDoc(t, relay, "w", only)
	connect(t, relay, a)
	defer func() {
		if t.Failed() {
			t.Logf("a %s %v\nrelay %s %v rejects %v", da.JSON(), da.Status().Version, dr.JSON(), dr.Status().Version, counterValue(t, relay, "concord_messages_rejected_total", nil))
		}
	}()
	waitConverged(t, 10*time.Second, da, dr)
	c := testNode(t, "", func(cfg *Config) { cfg.Events.SyncFinished = log.add })
	dc := openDoc(t, c, "w", only)
	connect(t, c, relay)
	waitConverged(t, 10*time.Second, dr, dc)
	for _, e := range log.snapshot() {
		if e.Stats.Snapshot {
			t.Fatal("c received a snapshot from a relay that is not a writer")
		}
	}
	// A relay without the allowlist is told (in Hello) that its snapshot
	// would be refused, and sends the log, whose deltas the writer signed.
	var elog exchangeLog
	open := testNode(t, "", small)
	do := openDoc(t, open, "w")
	connect(t, open, a)
	waitConverged(t, 10*time.Second, da, do)
	e := testNode(t, "", func(cfg *Config) { cfg.Events.SyncFinished = elog.add })
	de := openDoc(t, e, "w", only)
	connect(t, e, open)
	waitConverged(t, 10*time.Second, do, de)
	for _, ev := range elog.snapshot() {
		if ev.Stats.Snapshot || ev.Err != nil {
			t.Fatalf("exchange with the open relay: %+v", ev)
		}
	}

	// A relay that compacted its log serves what is left of it and no
	// snapshot; the newcomer completes from the writer (whose snapshot it
	// accepts).
	compacting := testNode(t, "", small, func(cfg *Config) { cfg.CompactAfter = 10 })
	dcp := openDoc(t, compacting, "w", only)
	connect(t, compacting, a)
	waitConverged(t, 10*time.Second, da, dcp)
	waitFor(t, 10*time.Second, "the relay to compact", func() bool {
		snap, ok, err := compacting.st.Snapshot(ctx, "w")
		return err == nil && ok && snap.VV[a.Replica()] == 30
	})
	var flog exchangeLog
	f := testNode(t, "", func(cfg *Config) { cfg.Events.SyncFinished = flog.add })
	df := openDoc(t, f, "w", only)
	connect(t, f, compacting)
	waitFor(t, 10*time.Second, "an exchange with the compacted relay", func() bool { return len(flog.snapshot()) > 0 })
	for _, ev := range flog.snapshot() {
		if ev.Stats.Snapshot || ev.Err != nil {
			t.Fatalf("exchange with the compacted relay: %+v", ev)
		}
	}
	if v := counterValue(t, f, "concord_messages_rejected_total", nil); v != 0 {
		t.Fatalf("%v messages rejected", v)
	}
	connect(t, f, a)
	waitConverged(t, 10*time.Second, da, df)

	// A peer that sends a snapshot anyway is refused.
	err := df.r.IngestSnapshot(ctx, open.ID(), wire.Snapshot{State: crdt.Encode(crdt.New())})
	var rej *engine.RejectError
	if !errors.As(err, &rej) || rej.Reason() != "snapshot_not_writer" {
		t.Fatalf("snapshot from a non-writer: %v", err)
	}
}

// TestLateJoinerSnapshot: a peer joining a 10k-key document after the log
// was compacted is brought up by a snapshot.
func TestLateJoinerSnapshot(t *testing.T) {
	ctx := context.Background()
	var log exchangeLog
	a := testNode(t, "", func(c *Config) { c.Events.SyncFinished = log.add })
	b := testNode(t, "")
	connect(t, b, a)
	da, db := openDoc(t, a, "big"), openDoc(t, b, "big")
	for i := 0; i < 100; i++ {
		if err := da.Update(ctx, func(tx *Txn) {
			for j := 0; j < 100; j++ {
				tx.Set([]string{fmt.Sprintf("k%05d", i*100+j)}, i*100+j)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, 20*time.Second, da, db)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := da.WaitAcked(wctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b's summary", func() bool {
		var held uint64
		da.r.withEngine(func(e *engine.Doc) { held = e.PeerHolds(b.ID())[a.Replica()] })
		return held == 100
	})
	if err := da.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.st.NeedsSnapshot("big", crdt.VersionVector{}) {
		t.Fatal("log not compacted")
	}
	log.reset()
	c := testNode(t, "")
	dc := openDoc(t, c, "big")
	connect(t, c, a)
	waitConverged(t, 20*time.Second, da, db, dc)
	// a's side of the exchange sent the snapshot and no delta: the log was
	// folded into it. (Its event is recorded once a's side has finished.)
	waitFor(t, 10*time.Second, "a's exchange with the late joiner", func() bool {
		for _, e := range log.snapshot() {
			if e.Peer == c.ID() && e.Err == nil && e.Stats.SnapshotOut && e.Stats.DeltasOut == 0 {
				return true
			}
		}
		return false
	})
	if n := len(dc.JSON()); n < 10000*8 {
		t.Fatalf("late joiner view only %d bytes", n)
	}
}
