package concord

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// logEnvelopes returns the envelopes d's log holds (markers left out).
func logEnvelopes(t *testing.T, d *Doc) []*wire.Envelope {
	t.Helper()
	var out []*wire.Envelope
	var cur store.Cursor
	for {
		batch, next, done, err := d.n.st.Missing(context.Background(), d.name, crdt.VersionVector{}, cur)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range batch {
			if _, ok := wire.DecodeMarker(e.Data); ok {
				continue
			}
			env, err := wire.DecodeEnvelope(e.Data, storedLimits)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, env)
		}
		if cur = next; done {
			return out
		}
	}
}

// compactFrom counts the envelopes of d's log authored by origin whose
// payload is in the compact splice form, checking that each says so.
func compactFrom(t *testing.T, d *Doc, origin crdt.ReplicaID) int {
	t.Helper()
	n := 0
	for _, e := range logEnvelopes(t, d) {
		if c := crdt.IsCompactDelta(e.Payload); c != e.Features.Has(wire.FeatureCompactSplice) {
			t.Fatalf("envelope %s/%d: compact %v, f %d", e.Origin, e.Seq, c, e.Features)
		} else if c && e.Origin == origin {
			n++
		}
	}
	return n
}

// compactWhereShorter checks that each single delta origin wrote into
// d's log is in the compact form exactly when that form is the shorter
// (crdt.EncodeDeltaCompact says so for the delta it decodes to), and
// returns how many are compact. Which keystrokes are depends on how the
// peers' typing interleaved (one next to the other's characters names
// them), so a count alone would depend on timing.
func compactWhereShorter(t *testing.T, d *Doc, origin crdt.ReplicaID) int {
	t.Helper()
	n := 0
	for _, e := range logEnvelopes(t, d) {
		if e.Origin != origin || e.Last != 0 {
			continue
		}
		delta, err := crdt.DecodeDelta(e.Payload, origin, crdt.DefaultLimits())
		if err != nil {
			t.Fatalf("envelope %s/%d: %v", e.Origin, e.Seq, err)
		}
		_, shorter := crdt.EncodeDeltaCompact(delta, origin)
		if c := crdt.IsCompactDelta(e.Payload); c != shorter {
			t.Fatalf("envelope %s/%d: compact %v, but the compact form is shorter: %v", e.Origin, e.Seq, c, shorter)
		} else if c {
			n++
		}
	}
	return n
}

// typeInto has d type n characters, each its own transaction, at the
// text's end.
func typeInto(t *testing.T, d *Doc, path []string, base rune, n int) {
	t.Helper()
	for k := range n {
		s, _ := d.Text(path...)
		if err := d.Splice(context.Background(), path, len([]rune(s)), 0, string(base+rune(k))); err != nil {
			t.Error(err)
			return
		}
	}
}

// A node of an earlier version — one that does not announce the compact
// splice form, nor read it — typing with a node of today into one text,
// over real libp2p: they converge. The older node never stores a compact
// envelope: it gets the other's keystrokes as aggregates in the classic
// form (its own gossip coalescing, or its sync serving its own runs),
// while the newer node still writes compact deltas.
func TestOlderPeerConvergesWithoutCompactSplice(t *testing.T) {
	a := testNode(t, "")
	b := testNode(t, "", func(c *Config) { c.features = wire.FeatureAggregates | wire.FeatureSequences })
	connect(t, a, b)
	da, db := openDoc(t, a, "notes"), openDoc(t, b, "notes")
	path := []string{"body"}
	if err := da.Splice(context.Background(), path, 0, 0, "start "); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 20*time.Second, da, db)
	var wg sync.WaitGroup
	for i, d := range []*Doc{da, db} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			typeInto(t, d, path, rune(0x4e00+0x1000*i), 60)
		}()
	}
	wg.Wait()
	waitConverged(t, 30*time.Second, da, db)
	if text, _ := da.Text(path...); len([]rune(text)) != 6+120 {
		t.Fatalf("text %q: %d code points, want %d", text, len([]rune(text)), 6+120)
	}
	if n := compactFrom(t, da, a.self); n == 0 {
		t.Fatal("the newer node wrote no compact delta")
	}
	aggs := 0
	for _, e := range logEnvelopes(t, db) {
		if e.Features.Has(wire.FeatureCompactSplice) {
			t.Fatalf("the older node stored a compact envelope: %s/%d", e.Origin, e.Seq)
		}
		if e.Origin == a.self && e.Last != 0 {
			aggs++
		}
	}
	if aggs == 0 {
		t.Fatal("the newer node's keystrokes reached the older one in no aggregate")
	}
	t.Logf("the older node holds %d aggregates of the newer one's; the newer left out %v compact publishes (needs_feature) and %v sync sends (needs_compact_splice)", aggs,
		counterValue(t, a, "concord_dropped_total", map[string]string{"queue": "gossip_out", "reason": "needs_feature"}),
		counterValue(t, a, "concord_dropped_total", map[string]string{"queue": "sync_out", "reason": "needs_compact_splice"}))
	if n := compactFrom(t, db, b.self) + compactFrom(t, da, b.self); n != 0 {
		t.Fatalf("the older node wrote %d compact deltas", n)
	}
}
