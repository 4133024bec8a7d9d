package concord

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// ownRun returns the author's stored envelopes first..last.
func ownRun(t *testing.T, n *Node, doc string, first, last uint64) []store.Entry {
	t.Helper()
	var out []store.Entry
	for seq := first; seq <= last; seq++ {
		e, err := n.st.Get(context.Background(), doc, n.Replica(), seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestOverlappingAggregates: two valid aggregates of one author that
// overlap, in one batch, are stored without corrupting the log, and the
// receiver replays them after a restart.
func TestOverlappingAggregates(t *testing.T) {
	ctx := context.Background()
	author := testNode(t, "")
	da := openDoc(t, author, "ov")
	for i := 1; i <= 20; i++ {
		if err := da.Set(ctx, []string{fmt.Sprintf("k%d", i)}, i); err != nil {
			t.Fatal(err)
		}
	}
	agg := func(first, last uint64) *wire.Envelope {
		e, err := da.r.aggregate(ownRun(t, author, "ov", first, last))
		if err != nil {
			t.Fatal(err)
		}
		env, err := wire.DecodeEnvelope(e.Data, storedLimits)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	dir := t.TempDir()
	rcv := testNode(t, dir)
	dr := openDoc(t, rcv, "ov")
	if err := dr.r.Ingest(ctx, author.ID(), []*wire.Envelope{agg(5, 20), agg(1, 10)}); err != nil {
		t.Fatal(err)
	}
	want := string(da.JSON())
	if got := string(dr.JSON()); got != want {
		t.Fatalf("after ingest %s, want %s", got, want)
	}
	_ = rcv.Close()
	rcv2 := testNode(t, dir)
	dr2 := openDoc(t, rcv2, "ov")
	if got := string(dr2.JSON()); got != want {
		t.Fatalf("after restart %s, want %s", got, want)
	}
	if v := dr2.Status().Version[author.Replica()]; v != 20 {
		t.Fatalf("version after restart %d", v)
	}
	// And it serves them on: a third peer catches up from it alone.
	late := testNode(t, "")
	dl := openDoc(t, late, "ov")
	connect(t, late, rcv2)
	waitConverged(t, 10*time.Second, dr2, dl)
}

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

// TestBigDeleteReplicates: deleting a map of 70k keys makes a delta with
// more covered dots than one gossip message holds; it still decodes on
// receivers and on the author's restart.
func TestBigDeleteReplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("70k keys")
	}
	ctx := context.Background()
	dir := t.TempDir()
	a := testNode(t, dir)
	da := openDoc(t, a, "big")
	for i := 0; i < 70; i++ {
		if err := da.Update(ctx, func(tx *Txn) {
			for j := 0; j < 1000; j++ {
				tx.Set([]string{"m", fmt.Sprint(i*1000 + j)}, j)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := da.Delete(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if err := da.Set(ctx, []string{"after"}, true); err != nil {
		t.Fatal(err)
	}
	b := testNode(t, "")
	db := openDoc(t, b, "big")
	connect(t, b, a)
	waitConverged(t, 30*time.Second, da, db)
	if got := string(db.JSON()); got != `{"after":true}` {
		t.Fatalf("receiver view %.80s", got)
	}
	_ = a.Close()
	a2 := testNode(t, dir)
	if got := string(openDoc(t, a2, "big").JSON()); got != `{"after":true}` {
		t.Fatalf("author after restart %.80s", got)
	}
}

// TestForgedAckNotRelayed: a summary claiming to come from B, published by
// C, is rejected by B (it never published it), so A never takes it for B's
// acknowledgment.
func TestForgedAckNotRelayed(t *testing.T) {
	ctx := context.Background()
	a, b, c := testNode(t, ""), testNode(t, ""), testNode(t, "")
	da := openDoc(t, a, "ack")
	_ = openDoc(t, b, "ack", WithWriters(b.ID())) // b refuses a's deltas
	dc := openDoc(t, c, "ack")
	connect(t, b, a)
	connect(t, c, b)
	if err := da.Set(ctx, []string{"x"}, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "topic peers", func() bool { return len(dc.Status().Peers) > 0 })
	forged := &wire.Summary{Doc: "ack", Origin: b.Replica(), VV: crdt.VersionVector{a.Replica(): 1}}
	waitFor(t, 10*time.Second, "b to reject the forged summary", func() bool {
		forged.Beacon++
		_ = dc.topic.PublishSummary(ctx, forged)
		return counterValue(t, b, "concord_messages_rejected_total", map[string]string{"reason": "summary_forged"}) > 0
	})
	if n := da.Status().Outbox; n != 1 {
		t.Fatalf("a's outbox is %d: a forged summary acknowledged its delta", n)
	}
}

func TestOpenBadBootstrap(t *testing.T) {
	_, err := Open(context.Background(), Config{Bootstrap: []string{"/ip4/127.0.0.1/tcp/1"}})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("bootstrap address without /p2p/: %v", err)
	}
}

func TestMaxDocs(t *testing.T) {
	n := testNode(t, "", func(c *Config) { c.MaxDocs = 2 })
	_ = openDoc(t, n, "a")
	_ = openDoc(t, n, "b")
	if _, err := n.Doc(context.Background(), "c"); !errors.Is(err, ErrTooManyDocs) {
		t.Fatalf("third document: %v", err)
	}
	if _, err := n.Doc(context.Background(), "a"); err != nil {
		t.Fatalf("reopening an open document: %v", err)
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
