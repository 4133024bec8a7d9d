package concord

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/wire"
)

// forkPair returns two envelopes an equivocating author signed for one
// sequence number of doc: both made from an empty state, so they carry the
// same dots with different writes.
func forkPair(t *testing.T, doc string) (x, y *wire.Envelope, author peer.ID) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	author, err = peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	origin := wire.ReplicaFor(author, 1)
	mk := func(hlc crdt.HLC, ops ...crdt.Op) *wire.Envelope {
		d, err := crdt.New().Apply(origin, hlc, ops...)
		if err != nil {
			t.Fatal(err)
		}
		e := &wire.Envelope{Doc: doc, Origin: origin, Seq: 1, HLC: uint64(hlc), Dot: d.Context().Max(origin), Payload: crdt.EncodeDelta(d, origin)}
		if err := wire.SignEnvelope(key, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	now := crdt.MakeHLC(time.Now().UnixMilli(), 0)
	x = mk(now, crdt.Set([]string{"k"}, json.RawMessage(`"x"`)))
	y = mk(now+1, crdt.Set([]string{"k"}, json.RawMessage(`"y"`)), crdt.Add([]string{"only_y"}, json.RawMessage(`1`)))
	return x, y, author
}

// TestEquivocation: an author signs two deltas with one sequence number
// and gives one to each peer. The peer that receives both finds the fork
// (counted, reported), merges both and keeps both as proofs; peers that
// sync with it receive the proofs and end in the same state, whichever
// side they held first; the proofs survive a restart.
func TestEquivocation(t *testing.T) {
	ctx := context.Background()
	x, y, author := forkPair(t, "fork")
	var mu sync.Mutex
	var events []EquivocationEvent
	dirB := t.TempDir()
	onFork := func(c *Config) {
		c.Events.Equivocation = func(e EquivocationEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }
	}
	b := testNode(t, dirB, onFork)
	c := testNode(t, "")
	d := testNode(t, "")
	db, dc, dd := openDoc(t, b, "fork"), openDoc(t, c, "fork"), openDoc(t, d, "fork")

	if err := db.r.Ingest(ctx, author, []*wire.Envelope{x}); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, b, "concord_equivocations_total", nil); got != 0 {
		t.Fatalf("equivocations %v before the second side", got)
	}
	for range 2 { // the second time it is a known fork: nothing new
		if err := db.r.Ingest(ctx, author, []*wire.Envelope{y}); err != nil {
			t.Fatal(err)
		}
	}
	if got := counterValue(t, b, "concord_equivocations_total", nil); got != 1 {
		t.Fatalf("equivocations %v, want 1", got)
	}
	mu.Lock()
	if len(events) != 1 || events[0].Origin != x.Origin || events[0].Seq != 1 || events[0].Doc != "fork" {
		t.Fatalf("events %+v", events)
	}
	mu.Unlock()
	want := `{"k":"x","only_y":[1]}` // both merged; for the one dot both wrote, the smaller write
	if got := string(db.JSON()); got != want {
		t.Fatalf("after the fork: %s, want %s", got, want)
	}

	// D was given the other side first.
	if err := dd.r.Ingest(ctx, author, []*wire.Envelope{y}); err != nil {
		t.Fatal(err)
	}
	connect(t, c, b)
	connect(t, d, b)
	// Each connection starts one exchange, which carries the proofs.
	waitConverged(t, 10*time.Second, db, dc, dd)
	if got := string(dd.JSON()); got != want {
		t.Fatalf("peer that held the other side: %s, want %s", got, want)
	}
	waitFor(t, 10*time.Second, "the fork counted on the peer that held the other side", func() bool {
		return counterValue(t, d, "concord_equivocations_total", nil) == 1
	})

	// The fork's claims are proven by its proofs: B can fold its state
	// into a snapshot (which needs heads for everything it claims).
	if err := db.r.compactNow(ctx); err != nil {
		t.Fatalf("compaction after the fork: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := testNode(t, dirB)
	if got := string(openDoc(t, b2, "fork").JSON()); got != want {
		t.Fatalf("after restart: %s, want %s", got, want)
	}
}

// One equivocating author cannot take all of a document's fork proofs: its
// forks past maxForkProofsPerAuthor are counted and dropped, and another
// author's fork is still found and kept.
func TestForkProofsBoundedPerAuthor(t *testing.T) {
	ctx := context.Background()
	n := testNode(t, "")
	d := openDoc(t, n, "forkcap")
	w := newWriter(t)
	mk := func(seq uint64, v string) *wire.Envelope {
		delta, err := crdt.New().Apply(w.origin, crdt.HLC(seq), crdt.Set([]string{"k"}, json.RawMessage(v)))
		if err != nil {
			t.Fatal(err)
		}
		e := &wire.Envelope{Doc: "forkcap", Origin: w.origin, Seq: seq, HLC: uint64(seq) + uint64(len(v)), Dot: 1, Payload: crdt.EncodeDelta(delta, w.origin)}
		if err := wire.SignEnvelope(w.key, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	forks := engine.MaxForkProofsPerAuthor/2 + 3
	for seq := uint64(1); seq <= uint64(forks); seq++ {
		for _, v := range []string{`"a"`, `"bb"`} {
			if err := d.r.Ingest(ctx, w.id, []*wire.Envelope{mk(seq, v)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := counterValue(t, n, "concord_equivocations_total", nil); got != float64(forks) {
		t.Fatalf("equivocations %v, want %d", got, forks)
	}
	if got := counterValue(t, n, "concord_dropped_total", map[string]string{"queue": "forks", "reason": "author_full"}); got != 3 {
		t.Fatalf("forks dropped %v, want 3", got)
	}
	x, y, author := forkPair(t, "forkcap")
	for _, e := range []*wire.Envelope{x, y} {
		if err := d.r.Ingest(ctx, author, []*wire.Envelope{e}); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	d.r.withEngine(func(e *engine.Doc) { got = e.ForkProofs(x.Origin) })
	if got != 2 {
		t.Fatalf("the other author's fork kept %d proofs, want 2", got)
	}
}
