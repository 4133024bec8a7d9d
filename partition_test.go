package concord

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// missedBytes returns the stored envelope bytes and payload bytes that a
// holder of have lacks from r.
func missedBytes(t testing.TB, r *driver, have crdt.VersionVector) (envBytes, payloadBytes, n int) {
	t.Helper()
	var cur store.Cursor
	for {
		batch, next, done, err := r.d.store.Missing(context.Background(), r.doc, have, cur)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range batch {
			env, err := wire.DecodeEnvelope(e.Data, storedLimits)
			if err != nil {
				t.Fatal(err)
			}
			envBytes += len(e.Data)
			payloadBytes += len(env.Payload)
			n++
		}
		cur = next
		if done {
			return
		}
	}
}

// TestPartitionHeal: two peers are partitioned (connection gater + closed
// connections), both sides write, and after the heal one anti-entropy
// exchange repairs both sides, in one round trip, moving little more than
// the missed deltas.
func TestPartitionHeal(t *testing.T) {
	const writes = 300
	ga, gb := cnet.NewGater(), cnet.NewGater()
	var log exchangeLog
	mod := func(g *cnet.Gater) func(*Config) {
		return func(c *Config) { c.Gater = g; c.Events.SyncFinished = log.add }
	}
	a, b := testNode(t, "", mod(ga)), testNode(t, "", mod(gb))
	connect(t, a, b)
	da, db := openDoc(t, a, "p"), openDoc(t, b, "p")
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if err := da.Set(ctx, []string{"shared", fmt.Sprint(i)}, i); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, 10*time.Second, da, db)

	if err := cnet.Partition(a.Host(), ga, b.ID()); err != nil {
		t.Fatal(err)
	}
	if err := cnet.Partition(b.Host(), gb, a.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "partition", func() bool {
		return a.Host().Network().Connectedness(b.ID()) != network.Connected
	})
	for i := 0; i < writes; i++ {
		if err := da.Update(ctx, func(tx *Txn) { tx.Set([]string{"a", fmt.Sprint(i)}, i).Inc([]string{"count"}, 1) }); err != nil {
			t.Fatal(err)
		}
		if err := db.Update(ctx, func(tx *Txn) { tx.Set([]string{"b", fmt.Sprint(i)}, i).Inc([]string{"count"}, 1) }); err != nil {
			t.Fatal(err)
		}
	}
	envA, payA, nA := missedBytes(t, da.r, db.r.Version())
	envB, payB, nB := missedBytes(t, db.r, da.r.Version())
	if nA != writes || nB != writes {
		t.Fatalf("missed deltas %d and %d, want %d each", nA, nB, writes)
	}
	log.reset()

	ga.Unblock(b.ID())
	gb.Unblock(a.ID())
	connect(t, a, b)
	waitConverged(t, 15*time.Second, da, db)
	waitFor(t, 5*time.Second, "exchanges to end", func() bool {
		return !a.syncer.Busy(b.ID(), "p") && !b.syncer.Busy(a.ID(), "p")
	})
	if got := string(da.JSON()); !json200(got, writes) {
		t.Fatalf("unexpected view after heal")
	}

	var data, total int
	var bytesTotal int
	for _, e := range log.snapshot() {
		if !e.Initiator {
			continue
		}
		total++
		bytesTotal += e.Stats.BytesIn + e.Stats.BytesOut
		if e.Stats.DeltasIn+e.Stats.DeltasOut > 0 {
			data++
			// Each side is the author of what the other lacks: it sends one
			// aggregate (the join of its run, signed once).
			if e.Stats.DeltasIn != 1 || e.Stats.DeltasOut != 1 {
				t.Errorf("exchange moved %d in / %d out envelopes, want one aggregate each way", e.Stats.DeltasIn, e.Stats.DeltasOut)
			}
			// One round trip: the hellos cross, then each side streams.
			// Each side sent hello + delta batches + done.
			if e.Stats.MsgsOut < 3 || e.Stats.MsgsIn < 3 {
				t.Errorf("exchange messages out %d in %d", e.Stats.MsgsOut, e.Stats.MsgsIn)
			}
		}
	}
	if data != 1 {
		t.Fatalf("%d exchanges carried deltas after the heal (of %d), want exactly 1", data, total)
	}
	missed := envA + envB
	ratio := float64(bytesTotal) / float64(missed)
	t.Logf("heal: %d exchanges, %d bytes on the sync stream for %d bytes of missed envelopes (ratio %.3f; payload-only ratio %.2f)",
		total, bytesTotal, missed, ratio, float64(bytesTotal)/float64(payA+payB))
	if ratio > 1.2 {
		t.Fatalf("sync moved %.2f× the missed envelope bytes, budget 1.2", ratio)
	}
}

// json200 checks the healed view holds both sides' writes.
func json200(view string, writes int) bool {
	return len(view) > 0 && containsAll(view, fmt.Sprintf(`"count":%d`, 2*writes), `"a":{`, `"b":{`)
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		found := false
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
