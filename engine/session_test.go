package engine

import (
	"errors"
	"fmt"
	"testing"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// A session sends Done only once what it received is durable: its vector
// then includes it. Before the append is reported, Next says wait.
func TestSessionDoneAfterDurable(t *testing.T) {
	a, la, _ := newDoc(t, "s")
	b, lb, _ := newDoc(t, "s")
	for i := range 3 {
		if _, err := a.Propose(epoch, set(fmt.Sprint(i), "1")); err != nil {
			t.Fatal(err)
		}
		settle(a, la)
	}
	lim := wire.DefaultSyncLimits()
	sa, sb := a.NewSession(b.cfg.SelfPeer, lim), b.NewSession(a.cfg.SelfPeer, lim)
	if err := sb.Handle(epoch, sa.Hello()); err != nil {
		t.Fatal(err)
	}
	if err := sa.Handle(epoch, sb.Hello()); err != nil {
		t.Fatal(err)
	}
	m, wait, err := sa.Next()
	if err != nil || wait || m.Type != wire.TypeSyncDeltas {
		t.Fatalf("a's first message: %+v %v %v", m, wait, err)
	}
	if err := sb.Handle(epoch, m); err != nil {
		t.Fatal(err)
	}
	pending := b.Ready() // b's append of what it received, not carried out
	if len(pending.Appends) != 1 {
		t.Fatalf("b asked for %d appends, want 1", len(pending.Appends))
	}
	if m, wait, err := sb.Next(); err != nil || !wait || m != nil {
		t.Fatalf("b's Done before its append is durable: %+v %v %v", m, wait, err)
	}
	lb.Apply(b, pending)
	m, wait, err = sb.Next()
	if err != nil || wait || m.Type != wire.TypeSyncDone || m.VV[a.cfg.Self] != 3 {
		t.Fatalf("b's Done after the append: %+v %v %v", m, wait, err)
	}
	if err := sa.Handle(epoch, m); err != nil {
		t.Fatal(err)
	}
	if m, _, _ = sa.Next(); m == nil || m.Type != wire.TypeSyncDone {
		t.Fatalf("a's Done: %+v", m)
	}
	if err := sb.Handle(epoch, m); err != nil {
		t.Fatal(err)
	}
	if !sa.Finished() || !sb.Finished() {
		t.Fatal("not finished")
	}
	settle(a, la)
	if a.Acked() != 3 {
		t.Fatalf("a's deltas acknowledged up to %d by b's Done, want 3", a.Acked())
	}
	if got, want := crdt.Encode(b.State()), crdt.Encode(a.State()); string(got) != string(want) {
		t.Fatal("states differ after the exchange")
	}
}

// A snapshot frame is allowed only right after both Hellos, when the
// peer's vector holds something ours lacks.
func TestSessionSnapshotAllowed(t *testing.T) {
	a, _, _ := newDoc(t, "s")
	s := a.NewSession(newAuthor(t).peer, wire.DefaultSyncLimits())
	if err := s.SnapshotAllowed(); !errors.Is(err, wire.ErrSnapshotRefused) || !errors.Is(err, wire.ErrSyncProtocol) {
		// wire's values: the stream names the reason from them.
		t.Fatalf("snapshot before the hellos: %v", err)
	}
	s.Hello()
	o := newAuthor(t)
	if err := s.Handle(epoch, &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: "s", VV: crdt.VersionVector{o.rep: 5}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SnapshotAllowed(); err != nil {
		t.Fatalf("snapshot refused from a peer ahead: %v", err)
	}
	if err := s.Handle(epoch, &wire.SyncMsg{Type: wire.TypeSyncDeltas}); err != nil {
		t.Fatal(err)
	}
	if err := s.SnapshotAllowed(); err == nil {
		t.Fatal("snapshot allowed after deltas")
	}
}

// With DeferReads, Next leaves the log read to the caller: it waits with a
// PendingRead, and sends the batch once the read is done.
func TestSessionDeferredReads(t *testing.T) {
	a, la, _ := newDoc(t, "s")
	b, _, _ := newDoc(t, "s")
	if _, err := a.Propose(epoch, set("k", "1")); err != nil {
		t.Fatal(err)
	}
	settle(a, la)
	sa := a.NewSession(b.cfg.SelfPeer, wire.DefaultSyncLimits())
	sa.DeferReads()
	sa.Hello()
	if err := sa.Handle(epoch, b.NewSession(a.cfg.SelfPeer, wire.DefaultSyncLimits()).Hello()); err != nil {
		t.Fatal(err)
	}
	m, wait, err := sa.Next()
	read := sa.PendingRead()
	if m != nil || !wait || err != nil || read == nil {
		t.Fatalf("first Next with deferred reads: %+v %v %v, read %v", m, wait, err, read)
	}
	if m, wait, _ := sa.Next(); m != nil || !wait {
		t.Fatal("Next went on before the read was done")
	}
	read.Do()
	if sa.PendingRead() != nil {
		t.Fatal("the read is still pending after Do")
	}
	m, wait, err = sa.Next()
	if err != nil || wait || m == nil || m.Type != wire.TypeSyncDeltas || len(m.Envelopes) != 1 {
		t.Fatalf("after the read: %+v %v %v", m, wait, err)
	}
}

// A peer whose Hello announces no features (one from before features were
// announced) is sent single deltas only: our own runs are not joined, and a
// stored aggregate it could not take is left out and counted.
func TestSessionLegacyPeerGetsNoAggregates(t *testing.T) {
	a, la, _ := newDoc(t, "s")
	for i := range 5 {
		if _, err := a.Propose(epoch, set(fmt.Sprint(i), "1")); err != nil {
			t.Fatal(err)
		}
		settle(a, la)
	}
	// A foreign aggregate of 3 deltas, stored at its last slot with markers.
	o := newAuthor(t)
	st, joined := crdt.New(), crdt.New()
	for i := uint64(1); i <= 3; i++ {
		delta, _ := st.Apply(o.rep, crdt.HLC(i), crdt.Set([]string{fmt.Sprint("o", i)}, []byte("1")))
		joined.Merge(delta)
	}
	a.Receive(epoch, o.peer, []*wire.Envelope{o.env(t, "s", 1, 3, joined, 3)}, true)
	settle(a, la)
	serve := func(features wire.Features) (envs []*wire.Envelope, drops int) {
		s := a.NewSession(newAuthor(t).peer, wire.DefaultSyncLimits())
		s.Hello()
		if err := s.Handle(epoch, &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: "s", VV: crdt.VersionVector{}, NoSnapshot: true, Features: features}); err != nil {
			t.Fatal(err)
		}
		for {
			m, wait, err := s.Next()
			if err != nil || wait {
				t.Fatalf("Next: %v %v", err, wait)
			}
			if m.Type == wire.TypeSyncDone {
				break
			}
			for _, b := range m.Envelopes {
				e, err := wire.DecodeEnvelope(b, StoredLimits)
				if err != nil {
					t.Fatal(err)
				}
				envs = append(envs, e)
			}
		}
		for _, dq := range a.Ready().Drops {
			if dq == [2]string{"sync_out", "needs_aggregates"} {
				drops++
			}
		}
		return envs, drops
	}
	legacy, drops := serve(0)
	for _, e := range legacy {
		if e.Last != 0 {
			t.Fatalf("a legacy peer was sent the aggregate %s/%d-%d", e.Origin, e.Seq, e.Last)
		}
	}
	if len(legacy) != 5 || drops != 3 {
		t.Fatalf("legacy peer: %d envelopes (want our 5 singles), %d left out (want the aggregate's 3 slots)", len(legacy), drops)
	}
	modern, drops := serve(wire.SupportedFeatures)
	if len(modern) != 2 || modern[0].Last == 0 || modern[1].Last == 0 || drops != 0 {
		t.Fatalf("a peer speaking aggregates got %d envelopes, %d dropped; want our run joined and the foreign aggregate", len(modern), drops)
	}
}

// With DeferReads, the stored snapshot a peer needs (the log no longer
// reaches back to it) is read by the caller too.
func TestSessionDeferredSnapshotRead(t *testing.T) {
	a, la, me := newDoc(t, "s")
	for i := range 20 {
		if _, err := a.Propose(epoch, set(fmt.Sprint(i), "1")); err != nil {
			t.Fatal(err)
		}
		settle(a, la)
	}
	a.Observe(epoch, newAuthor(t).peer, crdt.VersionVector{me.rep: 20})
	a.RequestCompaction(epoch, 1)
	settle(a, la)
	if _, ok, _ := la.Snapshot(); !ok {
		t.Fatal("not compacted")
	}
	s := a.NewSession(newAuthor(t).peer, wire.DefaultSyncLimits())
	s.DeferReads()
	s.Hello()
	if err := s.Handle(epoch, &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: "s", Features: wire.SupportedFeatures}); err != nil {
		t.Fatal(err)
	}
	if m, wait, err := s.Next(); m != nil || !wait || err != nil || s.PendingRead() == nil {
		t.Fatalf("the stored snapshot was read inline: %+v %v %v", m, wait, err)
	}
	s.PendingRead().Do()
	m, wait, err := s.Next()
	if err != nil || wait || m == nil || m.Type != wire.TypeSyncSnapshot || m.VV[me.rep] != 20 || len(m.Heads) == 0 {
		t.Fatalf("after the read: %+v %v %v", m, wait, err)
	}
}
