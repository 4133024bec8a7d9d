package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/internal/faultds"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// backend opens and reopens a store on one persistent medium.
type backend struct {
	name   string
	reopen func(t testing.TB) *Store // closes nothing; opens a new Store on the same data
}

func backends(t *testing.T) []backend {
	dir := t.TempDir()
	mem := dssync.MutexWrap(datastore.NewMapDatastore())
	return []backend{
		{"memory", func(t testing.TB) *Store {
			s, err := Open(context.Background(), mem, Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"pebble", func(t testing.TB) *Store {
			s, err := OpenPebble(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
}

func forBackends(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

func mustClose(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func data(r crdt.ReplicaID, seq uint64) []byte { return fmt.Appendf(nil, "delta %s/%d", r, seq) }

func ents(r crdt.ReplicaID, seqs ...uint64) []Entry {
	var out []Entry
	for _, s := range seqs {
		out = append(out, Entry{Replica: r, Seq: s, Data: data(r, s)})
	}
	return out
}

func seqRange(lo, hi uint64) []uint64 {
	var out []uint64
	for s := lo; s <= hi; s++ {
		out = append(out, s)
	}
	return out
}

func allEntries(t testing.TB, s *Store, doc string) []Entry {
	t.Helper()
	var out []Entry
	if err := s.Entries(context.Background(), doc, func(e Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func missingAll(t testing.TB, s *Store, doc string, have crdt.VersionVector) (all []Entry, calls int) {
	t.Helper()
	var cur Cursor
	for {
		batch, next, done, err := s.Missing(context.Background(), doc, have, cur)
		if err != nil {
			t.Fatal(err)
		}
		calls++
		if len(batch) == 0 && !done {
			t.Fatal("empty batch but not done")
		}
		all = append(all, batch...)
		if done {
			return all, calls
		}
		cur = next
	}
}

func TestAppendIndexAndReopen(t *testing.T) {
	forBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := b.reopen(t)
		doc := "a/b/../c" // '/' and dots must be escaped
		if err := s.Append(ctx, doc, "me", append(ents("me", 1, 2, 3), ents("you", 2, 1, 5)...)); err != nil {
			t.Fatal(err)
		}
		// Re-append is a no-op, including for the outbox.
		if err := s.Append(ctx, doc, "me", ents("me", 2)); err != nil {
			t.Fatal(err)
		}
		check := func(s *Store) {
			t.Helper()
			if !s.Has(doc, "me", 3) || s.Has(doc, "me", 4) || !s.Has(doc, "you", 5) || s.Has(doc, "you", 3) || s.Has(doc, "me", 0) {
				t.Fatal("Has wrong")
			}
			if got, want := s.Contiguous(doc), (crdt.VersionVector{"me": 3, "you": 2}); !got.Equal(want) {
				t.Fatalf("Contiguous = %v, want %v", got, want)
			}
			if s.MaxSeq(doc, "you") != 5 || s.MaxSeq(doc, "nobody") != 0 {
				t.Fatal("MaxSeq wrong")
			}
			if got := s.Outbox(doc); !slices.Equal(got, []uint64{1, 2, 3}) {
				t.Fatalf("Outbox = %v", got)
			}
			if got := s.Docs(); !slices.Equal(got, []string{doc}) {
				t.Fatalf("Docs = %q", got)
			}
			es := allEntries(t, s, doc)
			if len(es) != 6 {
				t.Fatalf("Entries: %d", len(es))
			}
			for _, e := range es {
				if !bytes.Equal(e.Data, data(e.Replica, e.Seq)) {
					t.Fatalf("entry %v has data %q", e, e.Data)
				}
			}
			if got := allEntries(t, s, "a"); len(got) != 0 {
				t.Fatalf("prefix doc sees %d entries", len(got))
			}
		}
		check(s)
		inc := s.Incarnation()
		if inc == 0 {
			t.Fatal("zero incarnation")
		}
		mustClose(t, s)
		mustClose(t, s) // idempotent
		if err := s.Append(ctx, doc, "", ents("x", 1)); !errors.Is(err, ErrClosed) {
			t.Fatalf("after Close: %v", err)
		}
		s = b.reopen(t)
		defer mustClose(t, s)
		check(s)
		if s.Incarnation() != inc {
			t.Fatal("incarnation changed across reopen")
		}
		if err := s.Problems(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAppendInvalid(t *testing.T) {
	s, err := OpenMemory(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	for _, e := range []Entry{{Replica: "", Seq: 1}, {Replica: "r", Seq: 0}} {
		if err := s.Append(context.Background(), "d", "", []Entry{e}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%v: %v", e, err)
		}
	}
}

func TestMissing(t *testing.T) {
	forBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := b.reopen(t)
		defer mustClose(t, s)
		var all []Entry
		for _, r := range []crdt.ReplicaID{"c", "a", "b/x"} {
			all = append(all, ents(r, seqRange(1, 50)...)...)
		}
		all = append(all, ents("a", 60)...) // a gap: 51..59 missing
		if err := s.Append(ctx, "d", "", all); err != nil {
			t.Fatal(err)
		}
		have := crdt.VersionVector{"a": 40, "b/x": 50, "zz": 3}
		got, calls := missingAll(t, s, "d", have)
		var want []Entry
		want = append(want, ents("a", append(seqRange(41, 50), 60)...)...)
		want = append(want, ents("c", seqRange(1, 50)...)...)
		if !equalEntries(got, want) {
			t.Fatalf("Missing returned %d entries, want %d", len(got), len(want))
		}
		if calls != 1 {
			t.Fatalf("calls = %d, want 1 with default batch", calls)
		}
		// Nothing missing.
		batch, _, done, err := s.Missing(ctx, "d", crdt.VersionVector{"a": 60, "b/x": 50, "c": 50}, Cursor{})
		if err != nil || len(batch) != 0 || !done {
			t.Fatalf("up to date: %d %v %v", len(batch), done, err)
		}
		batch, _, done, err = s.Missing(ctx, "nodoc", nil, Cursor{})
		if err != nil || len(batch) != 0 || !done {
			t.Fatalf("unknown doc: %d %v %v", len(batch), done, err)
		}
	})
}

func TestMissingBatchBytes(t *testing.T) {
	ctx := context.Background()
	s, err := OpenMemory(Options{MaxBatchBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	var all []Entry
	for i := uint64(1); i <= 20; i++ {
		all = append(all, Entry{Replica: "r", Seq: i, Data: bytes.Repeat([]byte{byte(i)}, 30)})
	}
	all = append(all, Entry{Replica: "s", Seq: 1, Data: bytes.Repeat([]byte{1}, 500)}) // larger than the bound
	if err := s.Append(ctx, "d", "", all); err != nil {
		t.Fatal(err)
	}
	var cur Cursor
	var got []Entry
	for {
		batch, next, done, err := s.Missing(ctx, "d", nil, cur)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			t.Fatal("empty batch")
		}
		size := 0
		for _, e := range batch {
			size += len(e.Data)
		}
		if size > 100 && len(batch) > 1 {
			t.Fatalf("batch of %d bytes", size)
		}
		got = append(got, batch...)
		if done {
			break
		}
		cur = next
	}
	if !equalEntries(got, all) {
		t.Fatalf("got %d entries, want %d", len(got), len(all))
	}
}

func equalEntries(a, b []Entry) bool {
	return slices.EqualFunc(a, b, func(x, y Entry) bool {
		return x.Replica == y.Replica && x.Seq == y.Seq && bytes.Equal(x.Data, y.Data)
	})
}

func TestCompact(t *testing.T) {
	forBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := b.reopen(t)
		if err := s.Append(ctx, "d", "me", append(ents("me", seqRange(1, 30)...), ents("you", 1, 2, 3, 7)...)); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.Snapshot(ctx, "d"); ok || err != nil {
			t.Fatalf("snapshot before compaction: %v %v", ok, err)
		}
		snap := Snapshot{State: []byte("state@20,5"), VV: crdt.VersionVector{"me": 20, "you": 5}}
		if err := s.Compact(ctx, "d", snap); err != nil {
			t.Fatal(err)
		}
		check := func(s *Store) {
			t.Helper()
			got, ok, err := s.Snapshot(ctx, "d")
			if err != nil || !ok || !bytes.Equal(got.State, snap.State) || !got.VV.Equal(snap.VV) {
				t.Fatalf("Snapshot = %v %v %v", got, ok, err)
			}
			es := allEntries(t, s, "d")
			want := append(ents("me", seqRange(21, 30)...), ents("you", 7)...)
			if !equalEntries(es, want) {
				t.Fatalf("Entries after compaction: %v", es)
			}
			// Covered seqs are still "held"; the snapshot filled you's gap.
			if !s.Has("d", "me", 1) || !s.Has("d", "you", 4) || s.Has("d", "you", 8) {
				t.Fatal("Has after compaction")
			}
			if got := s.Contiguous("d"); !got.Equal(crdt.VersionVector{"me": 30, "you": 5}) { // 6 is missing
				t.Fatalf("Contiguous = %v", got)
			}
			if !s.NeedsSnapshot("d", crdt.VersionVector{"me": 19, "you": 9}) || s.NeedsSnapshot("d", crdt.VersionVector{"me": 20, "you": 5}) {
				t.Fatal("NeedsSnapshot")
			}
			m, _ := missingAll(t, s, "d", crdt.VersionVector{"me": 2})
			if !equalEntries(m, want) {
				t.Fatalf("Missing after compaction: %v", m)
			}
			if _, err := s.Get(ctx, "d", "me", 3); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get compacted: %v", err)
			}
			if e, err := s.Get(ctx, "d", "me", 23); err != nil || !bytes.Equal(e.Data, data("me", 23)) {
				t.Fatalf("Get: %v %v", e, err)
			}
		}
		check(s)
		// Re-appending a covered delta is a no-op.
		if err := s.Append(ctx, "d", "me", ents("me", 4)); err != nil {
			t.Fatal(err)
		}
		if err := s.Compact(ctx, "d", Snapshot{VV: crdt.VersionVector{"me": 25}}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("regressing compaction: %v", err)
		}
		mustClose(t, s)
		s = b.reopen(t)
		defer mustClose(t, s)
		check(s)
	})
}

func TestOutboxAck(t *testing.T) {
	forBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := b.reopen(t)
		if err := s.Append(ctx, "d", "me", append(ents("me", 1, 2, 3, 4, 5), ents("you", 1)...)); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(ctx, "d", 3); err != nil {
			t.Fatal(err)
		}
		if got := s.Outbox("d"); !slices.Equal(got, []uint64{4, 5}) || s.OutboxDepth("d") != 2 {
			t.Fatalf("Outbox = %v", got)
		}
		if err := s.Ack(ctx, "d", 1); err != nil { // lower ack: no-op
			t.Fatal(err)
		}
		mustClose(t, s)
		s = b.reopen(t)
		defer mustClose(t, s)
		if got := s.Outbox("d"); !slices.Equal(got, []uint64{4, 5}) {
			t.Fatalf("Outbox after reopen = %v", got)
		}
		if err := s.Append(ctx, "d", "me", ents("me", 6)); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(ctx, "d", 10); err != nil {
			t.Fatal(err)
		}
		if s.OutboxDepth("d") != 0 || s.OutboxDepth("nodoc") != 0 {
			t.Fatal("outbox not empty")
		}
	})
}

func TestNodeRecords(t *testing.T) {
	forBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := b.reopen(t)
		calls := 0
		gen := func() ([]byte, error) { calls++; return []byte("secret-key"), nil }
		k1, err := s.LoadOrCreateKey(ctx, gen)
		if err != nil {
			t.Fatal(err)
		}
		when := time.Date(2025, 3, 1, 12, 0, 0, 123, time.UTC)
		peers := []PeerRecord{
			{ID: "QmB/x", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, LastSeen: when},
			{ID: "QmA", Addrs: nil},
		}
		for _, p := range peers {
			if err := s.PutPeer(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		peers[0].Addrs = append(peers[0].Addrs, "/ip4/127.0.0.1/udp/2/quic-v1")
		if err := s.PutPeer(ctx, peers[0]); err != nil { // replace
			t.Fatal(err)
		}
		mustClose(t, s)
		s = b.reopen(t)
		defer mustClose(t, s)
		k2, err := s.LoadOrCreateKey(ctx, gen)
		if err != nil || !bytes.Equal(k1, k2) || calls != 1 {
			t.Fatalf("key %q %q calls %d err %v", k1, k2, calls, err)
		}
		got, err := s.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != "QmA" || got[1].ID != "QmB/x" || !got[1].LastSeen.Equal(when) ||
			!slices.Equal(got[1].Addrs, peers[0].Addrs) || !got[0].LastSeen.IsZero() {
			t.Fatalf("Peers = %+v", got)
		}
	})
}

func TestIncarnationFresh(t *testing.T) {
	a, err := OpenPebble(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, a)
	b, err := OpenPebble(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, b)
	if a.Incarnation() == b.Incarnation() {
		t.Fatal("two fresh stores share an incarnation")
	}
}

func TestSchemaTooNew(t *testing.T) {
	ctx := context.Background()
	mem := dssync.MutexWrap(datastore.NewMapDatastore())
	if err := mem.Put(ctx, keyNodeSchema, newCodec().marshal(uintRecord{V: schemaVersion + 1})); err != nil {
		t.Fatal(err)
	}
	counter := faultds.NewCount(mem)
	if _, err := Open(ctx, counter, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open: %v", err)
	}
	if n := counter.Writes(); n != 0 {
		t.Fatalf("%d writes to a too-new store", n)
	}
}

func TestCorruptRecords(t *testing.T) {
	ctx := context.Background()
	mem := dssync.MutexWrap(datastore.NewMapDatastore())
	s, err := Open(ctx, mem, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "d", "", ents("r", 1, 2, 3, 4)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPeer(ctx, PeerRecord{ID: "p1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPeer(ctx, PeerRecord{ID: "p2"}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	// Bad CBOR, a flipped data byte (CRC), a bad peer and a stray key.
	bad := logKey("d", "r", 2)
	if err := mem.Put(ctx, bad, []byte{0xff, 0x00}); err != nil {
		t.Fatal(err)
	}
	rec, _ := mem.Get(ctx, logKey("d", "r", 3))
	rec[len(rec)-6] ^= 1
	if err := mem.Put(ctx, logKey("d", "r", 3), rec); err != nil {
		t.Fatal(err)
	}
	if err := mem.Put(ctx, peerKey("p1"), []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if err := mem.Put(ctx, datastore.NewKey("/docs/noescape/log/x/1"), []byte{}); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, mem, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	if err := s.Problems(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "/docs/noescape/log/x/1") {
		t.Fatalf("Problems = %v", err)
	}
	var got []uint64
	err = s.Entries(ctx, "d", func(e Entry) error { got = append(got, e.Seq); return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), bad.String()) || !strings.Contains(err.Error(), logKey("d", "r", 3).String()) {
		t.Fatalf("Entries err = %v", err)
	}
	if !slices.Equal(got, []uint64{1, 4}) {
		t.Fatalf("Entries loaded %v", got)
	}
	// Missing reports the bad record and lets the caller skip it.
	batch, next, _, err := s.Missing(ctx, "d", nil, Cursor{})
	if !errors.Is(err, ErrCorrupt) || len(batch) != 1 {
		t.Fatalf("Missing: %v %v", batch, err)
	}
	batch, next, _, err = s.Missing(ctx, "d", nil, next)
	if !errors.Is(err, ErrCorrupt) || len(batch) != 0 {
		t.Fatalf("Missing 2: %v %v", batch, err)
	}
	batch, _, done, err := s.Missing(ctx, "d", nil, next)
	if err != nil || !done || len(batch) != 1 || batch[0].Seq != 4 {
		t.Fatalf("Missing 3: %v %v %v", batch, done, err)
	}
	peers, err := s.Peers(ctx)
	if !errors.Is(err, ErrCorrupt) || len(peers) != 1 || peers[0].ID != "p2" {
		t.Fatalf("Peers: %v %v", peers, err)
	}
}

func TestKeyEscaping(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "/", "=", "%41", "ünïcødé", "a b", "log", "x\x00y"} {
		esc := escapeSegment(name)
		if strings.ContainsAny(esc, "/.") {
			t.Fatalf("%q escapes to %q", name, esc)
		}
		back, err := unescapeSegment(esc)
		if err != nil || back != name {
			t.Fatalf("%q: round trip %q %v", name, back, err)
		}
		k := logKey(name, crdt.ReplicaID(name), 42)
		if k.String() != datastore.NewKey(k.String()).String() {
			t.Fatalf("key %q is not clean", k)
		}
		p, err := parseDocKey(k.String())
		if err != nil || p.doc != name || p.replica != crdt.ReplicaID(name) || p.seq != 42 || p.kind != kindLog {
			t.Fatalf("parse %q: %+v %v", k, p, err)
		}
	}
	for _, bad := range []string{"", "x", "=%4", "=%41", "=%2f", "=a.b", "=%zz"} {
		if _, err := unescapeSegment(bad); err == nil {
			t.Fatalf("unescape %q: no error", bad)
		}
	}
}

func FuzzDecodeRecords(f *testing.F) {
	c := newCodec()
	f.Add(c.encodeLog([]byte("x")))
	f.Add(c.encodeSnap(Snapshot{State: []byte("s"), VV: crdt.VersionVector{"a": 1}}))
	f.Add(c.encodePeer(PeerRecord{ID: "p", Addrs: []string{"a"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		k := datastore.NewKey("/k")
		_, _ = c.decodeLog(k, b)
		_, _ = c.decodeSnap(k, b)
		_, _ = c.decodePeer(k, b)
	})
}

// TestConcurrentAppendsGroupCommit holds the first group's Sync, queues
// appends from concurrent writers behind it, then releases the Sync: every
// queued append must go out in one more group (one batch, one Sync), and all
// of them must be durable after a reopen.
func TestConcurrentAppendsGroupCommit(t *testing.T) {
	for _, in := range []struct {
		name string
		open func(t *testing.T) datastore.Batching
	}{
		{"memory", func(t *testing.T) datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }},
		{"pebble", func(t *testing.T) datastore.Batching {
			p, err := pebbleds.NewDatastore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			return p
		}},
	} {
		t.Run(in.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			inner := in.open(t)
			gate := faultds.NewGate(inner, faultds.Kinds(faultds.OpSync))
			count := faultds.NewCount(gate)
			s, err := Open(ctx, count, Options{})
			if err != nil {
				t.Fatal(err)
			}
			gated := s
			t.Cleanup(func() { gate.Release(); _ = gated.Close() }) // on early failure
			syncs0 := count.Syncs()
			held := gate.Hold()
			first, err := s.AppendAsync(ctx, "d", "", ents("first", 1))
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-held: // the first group is written and waits in Sync
			case <-ctx.Done():
				t.Fatal("the first group never reached Sync")
			}

			const writers, per = 16, 40 // 640 requests: within the default queue length
			var wg sync.WaitGroup
			dones := make(chan (<-chan error), writers*per)
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					r := crdt.ReplicaID(fmt.Sprint("w", w))
					for i := uint64(1); i <= per; i++ {
						done, err := s.AppendAsync(ctx, "d", r, ents(r, i))
						if err != nil {
							errs <- err
							return
						}
						dones <- done
					}
				})
			}
			wg.Wait() // every append is queued behind the held group
			close(errs)
			close(dones)
			gate.Release()
			for err := range errs {
				t.Fatal(err)
			}
			if err := wait(ctx, first); err != nil {
				t.Fatal(err)
			}
			for done := range dones {
				if err := wait(ctx, done); err != nil {
					t.Fatal(err)
				}
			}
			if g := s.groups.Load(); g != 2 {
				t.Fatalf("%d groups for 1 + %d appends, want 2 (the held one, then everything queued behind it)", g, writers*per)
			}
			if n := count.Syncs() - syncs0; n != 2 {
				t.Fatalf("%d syncs for two groups", n)
			}
			mustClose(t, s)
			s, err = Open(ctx, inner, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer mustClose(t, s)
			for w := range writers {
				r := crdt.ReplicaID(fmt.Sprint("w", w))
				if c := s.Contiguous("d")[r]; c != per {
					t.Fatalf("%s: contiguous %d", r, c)
				}
			}
		})
	}
}

func TestMissingCorruptPebble(t *testing.T) {
	ctx := context.Background()
	s, err := OpenPebble(t.TempDir(), Options{MaxBatchBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	if err := s.Append(ctx, "d", "", ents("r", 1, 2, 3, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.ds.Put(ctx, logKey("d", "r", 2), []byte{0xff}); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	var cur Cursor
	corrupt := 0
	for {
		batch, next, done, err := s.Missing(ctx, "d", nil, cur)
		if errors.Is(err, ErrCorrupt) {
			corrupt++
		} else if err != nil {
			t.Fatal(err)
		}
		for _, e := range batch {
			if !bytes.Equal(e.Data, data(e.Replica, e.Seq)) {
				t.Fatalf("bad data for %d", e.Seq)
			}
			got = append(got, e.Seq)
		}
		if done {
			break
		}
		cur = next
	}
	if corrupt != 1 || !slices.Equal(got, []uint64{1, 3, 5}) {
		t.Fatalf("corrupt %d, got %v", corrupt, got)
	}
}
