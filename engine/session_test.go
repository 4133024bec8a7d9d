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
