package concord

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// TestAggregateRelay: an author sends its run as one aggregate; a third peer
// stores it (with markers), relays it to a fourth that verifies the author's
// signature, and replays it after a restart.
func TestAggregateRelay(t *testing.T) {
	ctx := context.Background()
	var log exchangeLog
	author := testNode(t, "")
	cdir := t.TempDir()
	relay := testNode(t, cdir, func(c *Config) { c.Events.SyncFinished = log.add })
	da := openDoc(t, author, "agg")
	for i := 0; i < 100; i++ {
		if err := da.Update(ctx, func(tx *Txn) { tx.Set([]string{"k", fmt.Sprint(i % 10)}, i).Inc([]string{"n"}, 1) }); err != nil {
			t.Fatal(err)
		}
	}
	dr := openDoc(t, relay, "agg")
	connect(t, relay, author)
	waitConverged(t, 10*time.Second, da, dr)
	if v := dr.Status().Version[author.Replica()]; v != 100 {
		t.Fatalf("relay holds %d of the author's deltas", v)
	}
	// The relay received one aggregate and stored markers for the rest.
	markers := 0
	if err := relay.st.Entries(ctx, "agg", func(e store.Entry) error {
		if _, ok := wire.DecodeMarker(e.Data); ok {
			markers++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if markers != 99 {
		t.Fatalf("relay stored %d markers, want 99 (one aggregate for 100 deltas)", markers)
	}
	// Serving it reads the aggregate once, not once per marker.
	out, _, _, err := dr.r.missing(crdt.VersionVector{}, store.Cursor{})
	if err != nil || len(out) != 1 {
		t.Fatalf("relay serves %d envelopes for one aggregate (%v)", len(out), err)
	}
	view := string(da.JSON())
	_ = author.Close()

	// A fourth peer catches up from the relay alone.
	late := testNode(t, "")
	dl := openDoc(t, late, "agg")
	connect(t, late, relay)
	waitConverged(t, 10*time.Second, dr, dl)
	if got := string(dl.JSON()); got != view {
		t.Fatalf("late peer view %s, want %s", got, view)
	}
	if v := counterValue(t, late, "concord_messages_rejected_total", nil); v != 0 {
		t.Fatalf("%v envelopes rejected relaying an aggregate", v)
	}
	// The relay replays the aggregate after a restart.
	_ = relay.Close()
	relay2 := testNode(t, cdir)
	dr2 := openDoc(t, relay2, "agg")
	if got := string(dr2.JSON()); got != view {
		t.Fatalf("relay after restart %s, want %s", got, view)
	}
	if v := dr2.Status().Version[author.Replica()]; v != 100 {
		t.Fatalf("relay after restart holds %d", v)
	}
}

// TestGossipAggregates: an author's deltas queued for gossip together go
// out as aggregates; a neighbour accepts them from gossip (no sync
// involved), stores them with markers, and serves them to a peer that
// connects only to it. Fails if aggregates are refused on gossip or not
// formed.
func TestGossipAggregates(t *testing.T) {
	ctx := context.Background()
	var log exchangeLog
	quiet := func(c *Config) { c.SummaryInterval = time.Hour } // no summary-driven pulls
	author := testNode(t, "", quiet, func(c *Config) { c.GossipFlushInterval = time.Second })
	relay := testNode(t, "", quiet, func(c *Config) { c.Events.SyncFinished = log.add })
	da, dr := openDoc(t, author, "ga"), openDoc(t, relay, "ga")
	connect(t, relay, author)
	waitFor(t, 10*time.Second, "gossip mesh", func() bool {
		return len(da.topic.Peers()) == 1 && len(dr.topic.Peers()) == 1
	})
	waitFor(t, 10*time.Second, "the connect exchange", func() bool { return len(log.snapshot()) > 0 })
	const n = 20
	for i := 0; i < n; i++ {
		if err := da.Set(ctx, []string{"k", fmt.Sprint(i)}, i); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, 10*time.Second, da, dr)
	for _, e := range log.snapshot() {
		if e.Stats.DeltasIn+e.Stats.DeltasOut > 0 {
			t.Fatalf("an exchange carried deltas (%+v): the test wants gossip only", e.Stats)
		}
	}
	markers := 0
	if err := relay.st.Entries(ctx, "ga", func(e store.Entry) error {
		if _, ok := wire.DecodeMarker(e.Data); ok {
			markers++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if markers == 0 {
		t.Fatalf("relay stored no markers: %d deltas arrived as single envelopes", n)
	}
	if v := counterValue(t, relay, "concord_messages_rejected_total", nil); v != 0 {
		t.Fatalf("%v envelopes rejected", v)
	}
	// A late peer reaches the author's deltas through the relay alone.
	late := testNode(t, "")
	dl := openDoc(t, late, "ga")
	connect(t, late, relay)
	waitConverged(t, 10*time.Second, dr, dl)
	if v := counterValue(t, late, "concord_messages_rejected_total", nil); v != 0 {
		t.Fatalf("late peer rejected %v envelopes", v)
	}
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

// TestBulkLoadLateJoiner: the late joiner's path end to end — an author's
// bulk load (transactions of fresh top-level keys) is served as
// aggregates joined raw, which the joiner decodes with the hand-written
// decoder and merges in dot order; it ends with the author's view, none
// refused, and replays its log to the same view after a restart.
func TestBulkLoadLateJoiner(t *testing.T) {
	author := testNode(t, "")
	da := bulkLoad(t, author, 6)
	dir := t.TempDir()
	late := testNode(t, dir)
	dl := openDoc(t, late, "bulk")
	connect(t, late, author)
	waitConverged(t, 20*time.Second, da, dl)
	view := string(da.JSON())
	if got := string(dl.JSON()); got != view {
		t.Fatalf("late joiner's view differs from the author's")
	}
	if v := dl.Status().Version[author.Replica()]; v != 6 {
		t.Fatalf("late joiner holds %d of the author's 6 deltas", v)
	}
	if v := counterValue(t, late, "concord_messages_rejected_total", nil); v != 0 {
		t.Fatalf("%v envelopes rejected", v)
	}
	if v := counterValue(t, late, "concord_sync_frames_total", map[string]string{"direction": "in", "form": "columns"}); v == 0 {
		t.Fatal("the log reached the late joiner in no frame of the column form")
	}
	_ = late.Close()
	again := testNode(t, dir)
	if got := string(openDoc(t, again, "bulk").JSON()); got != view {
		t.Fatalf("late joiner after a restart: view differs from the author's")
	}
}

// TestOlderPeerSyncsWithoutColumns: a node of an earlier version, which
// neither announces nor reads the column form of sync frames, catches up
// with a bulk load from a node of today: every frame it gets is in a form
// it reads (its reader refuses the column form, which would fail the
// exchange), and it ends with the author's view.
func TestOlderPeerSyncsWithoutColumns(t *testing.T) {
	author := testNode(t, "")
	da := bulkLoad(t, author, 4)
	older := testNode(t, "", func(c *Config) { c.features = wire.PayloadFeatures })
	do := openDoc(t, older, "bulk")
	connect(t, older, author)
	waitConverged(t, 20*time.Second, da, do)
	if got, want := string(do.JSON()), string(da.JSON()); got != want {
		t.Fatal("the older node's view differs from the author's")
	}
	for _, c := range []struct {
		n   *Node
		dir string
	}{{author, "out"}, {older, "in"}} {
		if v := counterValue(t, c.n, "concord_sync_frames_total", map[string]string{"direction": c.dir, "form": "columns"}); v != 0 {
			t.Fatalf("%v frames of the column form (%s)", v, c.dir)
		}
	}
	if v := counterValue(t, older, "concord_sync_frames_total", map[string]string{"direction": "in", "form": "zstd"}); v == 0 {
		t.Fatal("the older node got no compressed frame: the load was too small to test the form")
	}
}

// bulkLoad opens document "bulk" on n and writes txns transactions of 500
// sets of fresh top-level keys into it.
func bulkLoad(t *testing.T, n *Node, txns int) *Doc {
	t.Helper()
	d := openDoc(t, n, "bulk")
	for txn := range txns {
		if err := d.Update(context.Background(), func(tx *Txn) {
			for k := range 500 {
				tx.Set([]string{fmt.Sprint("k", txn*500+k)}, txn*500+k)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	return d
}
