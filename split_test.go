package concord

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// ownPayloads returns the payload sizes of n's own stored envelopes of doc
// from seq first on.
func ownPayloads(t *testing.T, n *Node, doc string, first uint64) []int {
	t.Helper()
	var out []int
	for seq := first; n.st.Has(doc, n.Replica(), seq); seq++ {
		e, err := n.st.Get(context.Background(), doc, n.Replica(), seq)
		if err != nil {
			t.Fatal(err)
		}
		env, err := wire.DecodeEnvelope(e.Data, storedLimits)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, len(env.Payload))
	}
	return out
}

// TestScatteredDeleteReplicates: two peers write the values of one map in
// turn, each value followed by an overwrite of another key, so the values'
// dots are scattered; then one peer deletes the whole map. The delete is
// accepted, leaves as several deltas that each fit a gossip envelope, reaches
// the other peer over libp2p, and both peers show the same state after a
// restart from disk; a newcomer accepts a snapshot of the result. With CONCORD_BIG_DELETE_VALUES=500000 the delete
// covers 500k values (a 4.4 MiB delta, over what the sync stream carries
// in one frame); the default 60k (a 0.5 MiB delta) keeps the run short.
func TestScatteredDeleteReplicates(t *testing.T) {
	n := 60_000
	if v := os.Getenv("CONCORD_BIG_DELETE_VALUES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	if testing.Short() {
		t.Skip("tens of thousands of values")
	}
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()
	a, b := testNode(t, dirA), testNode(t, dirB)
	da, db := openDoc(t, a, "sd"), openDoc(t, b, "sd")
	connect(t, b, a)
	waitFor(t, 10*time.Second, "gossip mesh", func() bool {
		return len(da.topic.Peers()) == 1 && len(db.topic.Peers()) == 1
	})
	const perTxn = 1000
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w, d := range []*Doc{da, db} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * perTxn; i < n; i += 2 * perTxn {
				if err := d.Update(ctx, func(tx *Txn) {
					for j := i; j < min(i+perTxn, n); j++ {
						tx.Set([]string{"m", strconv.Itoa(j)}, 1).Set([]string{"o"}, j)
					}
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, 120*time.Second, "the values on both peers", func() bool {
		return fmt.Sprint(da.Status().Version) == fmt.Sprint(db.Status().Version)
	})
	t.Logf("%d values written and replicated in %v", n, time.Since(start).Round(time.Millisecond))
	if got := len(mapKeys(t, da, "m")); got != n {
		t.Fatalf("a holds %d values before the delete, want %d", got, n)
	}

	first := da.Status().Version[a.Replica()] + 1
	start = time.Now()
	if err := da.Delete(ctx, "m"); err != nil {
		t.Fatalf("the delete was refused: %v", err)
	}
	pieces := ownPayloads(t, a, "sd", first)
	t.Logf("delete accepted in %v as %d deltas of %v bytes", time.Since(start).Round(time.Millisecond), len(pieces), pieces)
	if len(pieces) < 2 {
		t.Fatalf("the delete of %d scattered values left as %d delta(s)", n, len(pieces))
	}
	for i, p := range pieces {
		if p > wire.DefaultLimits().MaxPayloadBytes {
			t.Fatalf("piece %d has a %d-byte payload: it cannot travel on gossip", i, p)
		}
	}
	// Versions first: the view of a map of n values is costly to poll.
	waitFor(t, 120*time.Second, "the delete on b", func() bool {
		return fmt.Sprint(da.Status().Version) == fmt.Sprint(db.Status().Version)
	})
	waitConverged(t, 10*time.Second, da, db)
	t.Logf("delete replicated %v after it was accepted", time.Since(start).Round(time.Millisecond))
	if got := string(db.JSON()); strings.Contains(got, `"m"`) || !strings.HasPrefix(got, `{"o":`) {
		t.Fatalf("b after the delete: %.80s", got)
	}
	if v := counterValue(t, a, "concord_dropped_total", map[string]string{"queue": "gossip_out"}); v != 0 {
		t.Fatalf("%v deltas too big for gossip", v)
	}
	if v := counterValue(t, b, "concord_messages_rejected_total", nil); v != 0 {
		t.Fatalf("b rejected %v messages", v)
	}
	view, vv := string(da.JSON()), fmt.Sprint(da.Status().Version)

	// Both restart from disk and show the same state; they still agree.
	_ = a.Close()
	_ = b.Close()
	a2, b2 := testNode(t, dirA), testNode(t, dirB, func(c *Config) { c.SnapshotAfter = 10 })
	da2, db2 := openDoc(t, a2, "sd"), openDoc(t, b2, "sd")
	for _, d := range []*Doc{da2, db2} {
		if got, gv := string(d.JSON()), fmt.Sprint(d.Status().Version); got != view || gv != vv {
			t.Fatalf("after a restart: %.80s %s, want %s %s", got, gv, view, vv)
		}
	}
	connect(t, b2, a2)
	if err := da2.Set(ctx, []string{"after"}, true); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 10*time.Second, da2, db2)
	// A newcomer is served a snapshot by b, with the heads that prove it
	// (signed pieces among them), and accepts it.
	c := testNode(t, "")
	dc := openDoc(t, c, "sd")
	snap, ok, err := db2.r.snapshotFor(ctx, c.ID(), crdt.VersionVector{})
	if err != nil || !ok {
		t.Fatalf("no snapshot for a newcomer: %v", err)
	}
	if err := dc.r.IngestSnapshot(ctx, b2.ID(), snap); err != nil {
		t.Fatalf("the newcomer refused the snapshot: %v", err)
	}
	connect(t, c, b2)
	waitConverged(t, 30*time.Second, db2, dc)
	if v := counterValue(t, c, "concord_messages_rejected_total", nil); v != 0 {
		t.Fatalf("the newcomer rejected %v messages", v)
	}
}

func mapKeys(t *testing.T, d *Doc, key string) map[string]json.RawMessage {
	t.Helper()
	raw, ok := d.Get(key)
	if !ok {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLargeValuesReplicate: a value as large as a transaction may be
// (MaxTxnBytes) is accepted and replicates — by the sync stream, since it
// does not fit a gossip envelope — and several such writes committed
// together (one delta of several MiB) leave as one delta per value, which
// replicate too and survive a restart.
func TestLargeValuesReplicate(t *testing.T) {
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()
	a, b := testNode(t, dirA), testNode(t, dirB)
	da, db := openDoc(t, a, "lv"), openDoc(t, b, "lv")
	connect(t, b, a)
	// The biggest value one write may carry: its JSON string plus path
	// and per-op overhead are exactly MaxTxnBytes.
	big := func(c byte) string { return strings.Repeat(string(c), MaxTxnBytes-16-len("big")-2) }
	if err := da.Set(ctx, []string{"big"}, big('x')); err != nil {
		t.Fatalf("a value of MaxTxnBytes refused: %v", err)
	}
	if err := da.Set(ctx, []string{"big"}, big('x')+"x"); err == nil {
		t.Fatal("a value over MaxTxnBytes accepted")
	}
	waitConverged(t, 30*time.Second, da, db)
	if v := counterValue(t, a, "concord_dropped_total", map[string]string{"queue": "gossip_out", "reason": "too_large"}); v != 1 {
		t.Fatalf("%v deltas too large for gossip, want the one big value", v)
	}

	// Hold the flusher (the next delta's publish blocks) while six more
	// big writes gather into one pending delta of ~6 MiB.
	held, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	publish := da.r.d.publish
	da.r.d.publish = func(e *wire.Envelope) { // read by the flusher only after the next write kicks it
		once.Do(func() { close(held); <-gate })
		publish(e)
	}
	first := da.Status().Version[a.Replica()] + 1
	var wg sync.WaitGroup
	errs := make(chan error, 7)
	write := func(key string, v any) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := da.Set(ctx, []string{key}, v); err != nil {
				errs <- err
			}
		}()
	}
	write("small", 1)
	<-held
	for i := range 6 {
		write("v"+strconv.Itoa(i), big(byte('a' + i))[:MaxTxnBytes-64])
	}
	waitFor(t, 10*time.Second, "six writes pending", func() bool {
		n := 0
		da.r.withEngine(func(e *engine.Doc) { n = e.Pending() })
		return n == 6
	})
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	pieces := ownPayloads(t, a, "lv", first)
	if len(pieces) != 7 {
		t.Fatalf("own deltas after the held flush: %v, want the small one and one per big value", pieces)
	}
	for i, p := range pieces[1:] {
		if p > MaxTxnBytes+256 {
			t.Fatalf("piece %d has a %d-byte payload", i, p)
		}
	}
	waitConverged(t, 60*time.Second, da, db)
	view, vv := string(da.JSON()), fmt.Sprint(da.Status().Version)
	_ = a.Close()
	_ = b.Close()
	a2, b2 := testNode(t, dirA), testNode(t, dirB)
	for _, d := range []*Doc{openDoc(t, a2, "lv"), openDoc(t, b2, "lv")} {
		if got, gv := string(d.JSON()), fmt.Sprint(d.Status().Version); got != view || gv != vv {
			t.Fatalf("after a restart: %.60s %s, want %.60s %s", got, gv, view, vv)
		}
	}
}

// TestCoalesceStopsAtTheLimit: a run of own deltas whose join would exceed
// what one envelope may carry is not aggregated (gossip publishes the run
// as it is; the sync stream sends its deltas one by one).
func TestCoalesceStopsAtTheLimit(t *testing.T) {
	ctx := context.Background()
	a := testNode(t, "")
	da := openDoc(t, a, "co")
	val := strings.Repeat("z", maxPayload/3)
	for i := range 4 {
		if err := da.Set(ctx, []string{"k" + strconv.Itoa(i)}, val); err != nil {
			t.Fatal(err)
		}
	}
	var envs []*wire.Envelope
	for _, e := range ownRun(t, a, "co", 1, 4) {
		env, err := wire.DecodeEnvelope(e.Data, storedLimits)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	if agg, err := da.r.coalesce(envs[:2]); err != nil || agg == nil || len(agg.Payload) > maxPayload {
		t.Fatalf("two deltas: %v", err)
	}
	if agg, err := da.r.coalesce(envs); err != nil || agg != nil {
		t.Fatalf("four deltas of a third of the limit each: aggregate %v, %v", agg != nil, err)
	}
	out, _, _, err := da.r.missing(crdt.VersionVector{}, store.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range out {
		env, err := wire.DecodeEnvelope(e.Data, storedLimits)
		if err != nil {
			t.Fatal(err)
		}
		if len(env.Payload) > maxPayload {
			t.Fatalf("sync serves a %d-byte payload", len(env.Payload))
		}
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
