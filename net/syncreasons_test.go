package net

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// aggregate returns f's signed aggregate covering lo..hi.
func (f *fakeReplica) aggregate(t testing.TB, lo, hi uint64) []byte {
	t.Helper()
	e := &wire.Envelope{Doc: f.doc, Origin: f.self, Seq: lo, Last: hi, HLC: hi, Payload: fmt.Appendf(nil, "join %d..%d", lo, hi)}
	if err := wire.SignEnvelope(f.key, e); err != nil {
		t.Fatal(err)
	}
	b, err := wire.EncodeEnvelope(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// victimIdle reports whether s answers nothing from p.
func victimIdle(s *Syncer, p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inPeer[p] == 0 && len(s.inflight) == 0
}

// Every hostile stream ends as one failed exchange counted under the right
// reason, and sync_errors_total adds up to sync_exchanges_total{error}.
func TestSyncErrorReasons(t *testing.T) {
	cfg := LoopbackHostConfig()
	cfg.SyncPeerMemory = 24 << 20
	vh := newTestHost(t, cfg)
	attacker := newTestHost(t, LoopbackHostConfig())
	if err := connectVia(t, attacker, vh, false); err != nil {
		t.Fatal(err)
	}
	r := newFakeReplica(t, 1, 0)
	r.write(t, 1, 5)
	m := NewMetrics(nil)
	vs := NewSyncer(vh, SyncerConfig{Metrics: m, Timeout: 10 * time.Second, Resolve: func(doc string) SyncDoc {
		if doc == r.doc {
			return r
		}
		return nil
	}})
	defer vs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ak, aid := testKey(t, 9)
	evil := &fakeReplica{doc: r.doc, peer: aid, key: ak, self: wire.ReplicaFor(aid, 1)}
	hello := frameBytes(t, hostileHello(r.doc, attacker.ID()), false)
	write := func(parts ...[]byte) func(w io.Writer) error {
		return func(w io.Writer) error {
			for _, p := range parts {
				if _, err := w.Write(p); err != nil {
					return err
				}
			}
			return nil
		}
	}
	hostile := attacks(t, r.doc, attacker.ID())
	cases := []struct {
		name, reason string
		write        func(w io.Writer) error
	}{
		{"first frame: 40 MiB snapshot", "refused_snapshot", hostile["first frame: 40 MiB snapshot"]},
		{"first frame: 40 MiB", "too_large", hostile["first frame: 40 MiB"]},
		{"first frame: zstd bomb of 40 MiB", "too_large", hostile["first frame: zstd bomb of 40 MiB"]},
		{"first frame: zstd bomb of 1 MiB", "malformed", hostile["first frame: zstd bomb of 1 MiB"]},
		{"first frame: done", "protocol", write(frameBytes(t, &wire.SyncMsg{Type: wire.TypeSyncDone, Doc: r.doc}, false))},
		{"hello, then a zstd bomb of 4 MiB", "malformed", hostile["hello, then a zstd bomb of 4 MiB"]},
		{"hello, then a 60 MiB snapshot (over the peer's budget)", "busy", hostile["hello, then a 60 MiB snapshot"]},
		{"hello, then an 8 MiB snapshot", "malformed", hostile["hello, then an 8 MiB snapshot"]},
		{"hello, then a snapshot zstd bomb of 8 MiB", "malformed", hostile["hello, then a snapshot zstd bomb of 8 MiB"]},
		{"hello holding nothing we lack, then a snapshot", "refused_snapshot", write(
			frameBytes(t, &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: r.doc}, false),
			frameBytes(t, &wire.SyncMsg{Type: wire.TypeSyncSnapshot, State: []byte("x"), VV: crdt.VersionVector{evil.self: 1}}, false))},
		{"hello, then two snapshots", "refused_snapshot", write(hello,
			frameBytes(t, &wire.SyncMsg{Type: wire.TypeSyncSnapshot, State: []byte("x"), VV: crdt.VersionVector{evil.self: 1}}, false),
			frameBytes(t, &wire.SyncMsg{Type: wire.TypeSyncSnapshot, State: []byte("y"), VV: crdt.VersionVector{evil.self: 1}}, false))},
		{"hello, then deltas covering 8192 seqs", "too_many_seqs", write(hello,
			frameBytes(t, &wire.SyncMsg{Type: wire.TypeSyncDeltas, Envelopes: [][]byte{evil.aggregate(t, 1, 4096), evil.aggregate(t, 4097, 8192)}}, true))},
		{"hello, then a frame of an unknown flag", "malformed", write(hello, []byte{3, 0x40, 0, 0})},
		{"hello, then the end", "reset", write(hello)},
	}
	before := r.gotSnaps
	for _, tc := range cases {
		want := m.SyncErrors.WithLabelValues(tc.reason)
		n0, errs0 := counterValue(want), counterValue(m.SyncExchanges.WithLabelValues("error"))
		ingested := r.ingestions
		attackStream(ctx, attacker, vh.ID(), tc.write)
		waitFor(t, 20*time.Second, tc.name, func() bool {
			return counterValue(m.SyncExchanges.WithLabelValues("error")) > errs0 && victimIdle(vs, attacker.ID())
		})
		if got := counterValue(want) - n0; got != 1 {
			var all []string
			for _, reason := range syncReasons {
				if n := counterValue(m.SyncErrors.WithLabelValues(reason)); n > 0 {
					all = append(all, fmt.Sprintf("%s=%v", reason, n))
				}
			}
			t.Errorf("%s: %q counted %v times, want 1 (%s)", tc.name, tc.reason, got, strings.Join(all, " "))
		}
		if tc.reason == "too_many_seqs" && r.ingestions != ingested {
			t.Errorf("%s: reached the replica", tc.name)
		}
		if got := counterValue(m.SyncExchanges.WithLabelValues("error")) - errs0; got != 1 {
			t.Errorf("%s: %v failed exchanges, want 1", tc.name, got)
		}
	}
	var sum float64
	for _, reason := range syncReasons {
		sum += counterValue(m.SyncErrors.WithLabelValues(reason))
	}
	if errs := counterValue(m.SyncExchanges.WithLabelValues("error")); sum != errs {
		t.Errorf("sync_errors_total adds up to %v, sync_exchanges_total{error} is %v", sum, errs)
	}
	if len(r.gotSnaps) != len(before)+1 {
		t.Errorf("the victim ingested %d snapshots, want 1 (the first of 'two snapshots')", len(r.gotSnaps)-len(before))
	}

	// A Hello for a document we do not host is counted as such, not as an
	// error.
	unknown0 := counterValue(m.SyncExchanges.WithLabelValues("unknown_doc"))
	attackStream(ctx, attacker, vh.ID(), write(frameBytes(t, &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: "other"}, false)))
	waitFor(t, 20*time.Second, "unknown doc", func() bool {
		return counterValue(m.SyncExchanges.WithLabelValues("unknown_doc")) > unknown0
	})
}

// A stalled peer ends as a timeout.
func TestSyncErrorReasonTimeout(t *testing.T) {
	vh := newTestHost(t, LoopbackHostConfig())
	attacker := newTestHost(t, LoopbackHostConfig())
	if err := connectVia(t, attacker, vh, false); err != nil {
		t.Fatal(err)
	}
	r := newFakeReplica(t, 1, 0)
	m := NewMetrics(nil)
	vs := NewSyncer(vh, SyncerConfig{Metrics: m, Timeout: 200 * time.Millisecond, Resolve: func(string) SyncDoc { return r }})
	defer vs.Close()
	st, err := attacker.NewStream(context.Background(), vh.ID(), SyncProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	if _, err := st.Write(frameBytes(t, hostileHello(r.doc, attacker.ID()), false)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "timeout counted", func() bool {
		return counterValue(m.SyncErrors.WithLabelValues("timeout")) == 1
	})
}

// batchReplica serves one fixed batch from Missing.
type batchReplica struct {
	*fakeReplica
	batch []store.Entry
}

func (b *batchReplica) Missing(context.Context, crdt.VersionVector, store.Cursor) ([]store.Entry, store.Cursor, bool, error) {
	return b.batch, store.Cursor{}, true, nil
}

// The sender splits what Missing returns into Deltas messages covering at
// most MaxSyncSeqs sequence numbers; the receiver refuses a message
// covering more, whole, before storing anything.
func TestSyncDeltasSeqBound(t *testing.T) {
	ctx := context.Background()
	a, b := newFakeReplica(t, 1, 0), newFakeReplica(t, 2, 0)
	var batch []store.Entry
	for lo := uint64(1); lo < 3*wire.MaxSyncSeqs; lo += wire.MaxSyncSeqs {
		batch = append(batch, store.Entry{Replica: a.self, Seq: lo + wire.MaxSyncSeqs - 1, Data: a.aggregate(t, lo, lo+wire.MaxSyncSeqs-1)})
	}
	for seq := uint64(3*wire.MaxSyncSeqs + 1); seq <= 3*wire.MaxSyncSeqs+10; seq++ {
		batch = append(batch, store.Entry{Replica: a.self, Seq: seq, Data: a.envelope(t, seq)})
	}
	sender := NewSyncSession(&batchReplica{a, batch}, b.peer, wire.DefaultSyncLimits())
	receiver := NewSyncSession(b, a.peer, wire.DefaultSyncLimits())
	sender.Hello()
	if err := sender.Handle(ctx, receiver.Hello()); err != nil {
		t.Fatal(err)
	}
	if err := receiver.Handle(ctx, sender.Hello()); err != nil {
		t.Fatal(err)
	}
	var frames, envs int
	for {
		m, err := sender.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == wire.TypeSyncDone {
			break
		}
		var seqs uint64
		for _, data := range m.Envelopes {
			seqs += envelopeSeqs(data, wire.DefaultLimits())
		}
		if seqs > wire.MaxSyncSeqs {
			t.Fatalf("a Deltas message covers %d sequence numbers", seqs)
		}
		frames++
		envs += len(m.Envelopes)
		enc, err := wire.EncodeSyncMsg(m)
		if err != nil {
			t.Fatal(err)
		}
		dm, err := wire.DecodeSyncMsg(enc, wire.DefaultSyncLimits())
		if err != nil {
			t.Fatal(err)
		}
		if err := receiver.Handle(ctx, dm); err != nil {
			t.Fatalf("receiver refused a message of the split: %v", err)
		}
	}
	if frames != 4 || envs != len(batch) {
		t.Fatalf("sent %d envelopes in %d messages, want %d in 4", envs, frames, len(batch))
	}
	if got := receiver.Stats().DeltasIn; got != len(batch) {
		t.Fatalf("received %d envelopes, want %d", got, len(batch))
	}

	c := newFakeReplica(t, 3, 0)
	s := NewSyncSession(c, a.peer, wire.DefaultSyncLimits())
	s.Hello()
	if err := s.Handle(ctx, &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: c.doc}); err != nil {
		t.Fatal(err)
	}
	err := s.Handle(ctx, &wire.SyncMsg{Type: wire.TypeSyncDeltas, Envelopes: [][]byte{a.aggregate(t, 1, 4096), a.envelope(t, 4097)}})
	if !errors.Is(err, ErrTooManySeqs) || !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("deltas covering 4097 sequence numbers: %v", err)
	}
	if c.ingestions != 0 {
		t.Fatal("an over-long message reached the replica")
	}
}

// A snapshot is accepted only as the first message after both Hellos, at
// most once, if we did not refuse snapshots and the peer holds something
// we lack.
func TestSnapshotAllowed(t *testing.T) {
	ctx := context.Background()
	a, b := newFakeReplica(t, 1, 0), newFakeReplica(t, 2, 0)
	a.write(t, 1, 3)
	snap := &wire.SyncMsg{Type: wire.TypeSyncSnapshot, State: []byte("s"), VV: crdt.VersionVector{b.self: 2}}
	peerHello := &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: a.doc, VV: crdt.VersionVector{b.self: 2}}
	tests := []struct {
		name  string
		setup func(s *SyncSession)
		ok    bool
	}{
		{"after both hellos", func(s *SyncSession) { s.Hello(); _ = s.Handle(ctx, peerHello) }, true},
		{"before the peer's hello", func(s *SyncSession) { s.Hello() }, false},
		{"before ours", func(s *SyncSession) { _ = s.Handle(ctx, peerHello) }, false},
		{"after deltas", func(s *SyncSession) {
			s.Hello()
			_ = s.Handle(ctx, peerHello)
			_ = s.Handle(ctx, &wire.SyncMsg{Type: wire.TypeSyncDeltas})
		}, false},
		{"second", func(s *SyncSession) {
			s.Hello()
			_ = s.Handle(ctx, peerHello)
			_ = s.Handle(ctx, snap)
		}, false},
		{"the peer holds nothing we lack", func(s *SyncSession) {
			s.Hello()
			_ = s.Handle(ctx, &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: a.doc, VV: crdt.VersionVector{a.self: 2}})
		}, false},
		{"we refused snapshots", func(s *SyncSession) {
			s.Hello().NoSnapshot = true
			_ = s.Handle(ctx, peerHello)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSyncSession(a, b.peer, wire.DefaultSyncLimits())
			tc.setup(s)
			err := s.SnapshotAllowed()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrSnapshotRefused)) {
				t.Fatalf("SnapshotAllowed: %v, want ok=%v", err, tc.ok)
			}
			if herr := s.Handle(ctx, snap); (herr == nil) != tc.ok {
				t.Fatalf("Handle(snapshot): %v, want ok=%v", herr, tc.ok)
			}
		})
	}
}

// A node syncing many documents with one peer at once is not refused by
// the peer's inbound cap: it runs maxOutboundPerPeer exchanges at a time.
func TestSyncManyDocumentsOnePeer(t *testing.T) {
	ha, hb := newTestHost(t, LoopbackHostConfig()), newTestHost(t, LoopbackHostConfig())
	if err := connectVia(t, ha, hb, false); err != nil {
		t.Fatal(err)
	}
	const docs = 3 * maxInboundPerPeer
	ra, rb := map[string]*fakeReplica{}, map[string]*fakeReplica{}
	for i := range docs {
		name := fmt.Sprint("doc", i)
		a, b := newFakeReplica(t, 1, 0), newFakeReplica(t, 2, 0)
		a.doc, b.doc = name, name
		a.write(t, 1, 3)
		ra[name], rb[name] = a, b
	}
	results := make(chan ExchangeEvent, docs)
	mb := NewMetrics(nil)
	sa := NewSyncer(ha, SyncerConfig{Resolve: func(d string) SyncDoc { return ra[d] }, OnExchange: func(e ExchangeEvent) { results <- e }})
	defer sa.Close()
	sb := NewSyncer(hb, SyncerConfig{Metrics: mb, Resolve: func(d string) SyncDoc { return rb[d] }})
	defer sb.Close()
	for _, a := range ra {
		sa.Trigger(hb.ID(), a)
	}
	for range docs {
		select {
		case e := <-results:
			if e.Err != nil {
				t.Fatalf("exchange for %s: %v", e.Doc, e.Err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("exchanges did not finish")
		}
	}
	for name, b := range rb {
		if got := b.Version()[ra[name].self]; got != 3 {
			t.Fatalf("%s: b holds %d deltas, want 3 (ingestions %d, rejected %d, drops %v)", name, got, b.ingestions, b.rejected, counterValue(mb.Dropped.WithLabelValues("sync_inbound", "busy")))
		}
	}
	if n := counterValue(mb.Dropped.WithLabelValues("sync_inbound", "busy")); n != 0 {
		t.Fatalf("%v exchanges refused", n)
	}
}

// Exchanges two peers start at once for one document, each side both by
// Trigger and by Sync, all complete: Sync waits for one running, and the
// peer with the lower ID answers the other's once its own has ended.
func TestSyncCrossingExchanges(t *testing.T) {
	ha, hb := newTestHost(t, LoopbackHostConfig()), newTestHost(t, LoopbackHostConfig())
	if err := connectVia(t, ha, hb, false); err != nil {
		t.Fatal(err)
	}
	a, b := newFakeReplica(t, 1, 0), newFakeReplica(t, 2, 0)
	a.write(t, 1, 5)
	b.write(t, 1, 5)
	sa := NewSyncer(ha, SyncerConfig{Resolve: func(string) SyncDoc { return a }})
	defer sa.Close()
	sb := NewSyncer(hb, SyncerConfig{Resolve: func(string) SyncDoc { return b }})
	defer sb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for round := range 10 {
		errs := make(chan error, 4)
		sa.Trigger(hb.ID(), a)
		sb.Trigger(ha.ID(), b)
		go func() { _, err := sa.Sync(ctx, hb.ID(), a); errs <- err }()
		go func() { _, err := sb.Sync(ctx, ha.ID(), b); errs <- err }()
		go func() { _, err := sa.Sync(ctx, hb.ID(), a); errs <- err }()
		go func() { _, err := sb.Sync(ctx, ha.ID(), b); errs <- err }()
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	if a.Version()[b.self] != 5 || b.Version()[a.self] != 5 {
		t.Fatal("not converged")
	}
	waitFor(t, 10*time.Second, "triggered exchanges done", func() bool {
		return !sa.Busy(hb.ID(), a.doc) && !sb.Busy(ha.ID(), b.doc)
	})
}

// With NewHost's default limits, a 16 MiB snapshot (32 MiB reserved) —
// far above libp2p's default stream, protocol and service budgets —
// is received.
func TestSyncLargeSnapshotWithinDefaultBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("moves 16 MiB through the race detector")
	}
	ha, hb := newTestHost(t, LoopbackHostConfig()), newTestHost(t, LoopbackHostConfig())
	if err := connectVia(t, ha, hb, false); err != nil {
		t.Fatal(err)
	}
	a, b := newFakeReplica(t, 1, 0), newFakeReplica(t, 2, 0)
	a.write(t, 1, 3)
	a.compact(t, 3)
	a.snap = make([]byte, 16<<20)
	rand.NewChaCha8([32]byte{1}).Read(a.snap) // incompressible: sent raw
	sa := NewSyncer(ha, SyncerConfig{Resolve: func(string) SyncDoc { return a }})
	defer sa.Close()
	mb := NewMetrics(nil)
	sb := NewSyncer(hb, SyncerConfig{Metrics: mb, Resolve: func(string) SyncDoc { return b }})
	defer sb.Close()
	st, err := sb.Sync(context.Background(), ha.ID(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Snapshot || len(b.gotSnaps) != 1 || len(b.gotSnaps[0]) != len(a.snap) {
		t.Fatalf("snapshot not received: %+v", st)
	}
}
