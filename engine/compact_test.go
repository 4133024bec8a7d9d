package engine

import (
	"testing"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// exchange runs one sync exchange between a and b to its end and returns
// the drops both counted.
func exchange(t *testing.T, a *Doc, la *MemoryLog, b *Doc, lb *MemoryLog) (drops map[[2]string]int) {
	t.Helper()
	drops = map[[2]string]int{}
	note := func(d *Doc, l *MemoryLog) {
		for _, rd := range settle(d, l) {
			for _, dq := range rd.Drops {
				drops[dq]++
			}
		}
	}
	lim := wire.DefaultSyncLimits()
	sa, sb := a.NewSession(b.cfg.SelfPeer, lim), b.NewSession(a.cfg.SelfPeer, lim)
	if err := sb.Handle(epoch, sa.Hello()); err != nil {
		t.Fatal(err)
	}
	if err := sa.Handle(epoch, sb.Hello()); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if sa.Finished() && sb.Finished() {
			note(a, la)
			note(b, lb)
			return drops
		}
		for _, x := range [][2]*Session{{sa, sb}, {sb, sa}} {
			m, _, err := x[0].Next()
			if err != nil {
				t.Fatal(err)
			}
			if m != nil {
				if err := x[1].Handle(epoch, m); err != nil {
					t.Fatal(err)
				}
			}
			note(a, la)
			note(b, lb)
		}
	}
	t.Fatal("the exchange did not end")
	return nil
}

func splice(path string, at, del int, text string) []crdt.Op {
	return []crdt.Op{crdt.Splice([]string{path}, at, del, text)}
}

// An own keystroke is written in the compact form and flagged so; a peer
// that did not announce the form is served everything it can read — the
// classic envelopes, and the server's own compact deltas joined into
// aggregates (a lone one with its neighbour) — and the compact envelopes
// of other authors are left out and counted: it gets those from their
// author, and converges.
func TestSessionPeerWithoutCompactSplice(t *testing.T) {
	old := func(c *Config) { c.Features = wire.FeatureAggregates | wire.FeatureSequences }
	o, lo, _ := newDoc(t, "k")
	a, la, _ := newDoc(t, "k")
	b, lb, _ := newDoc(t, "k", old)
	for _, ops := range [][]crdt.Op{splice("t", 0, 0, "ab"), splice("t", 1, 0, "x")} {
		if _, err := o.Propose(epoch, ops); err != nil {
			t.Fatal(err)
		}
		settle(o, lo)
	}
	if env, err := wire.DecodeEnvelope(mustGet(t, lo, o.cfg.Self, 2), StoredLimits); err != nil || !crdt.IsCompactDelta(env.Payload) || env.Features != wire.FeatureSequences|wire.FeatureCompactSplice {
		t.Fatalf("o's keystroke: %v, f %d; want compact, f 6", err, env.Features)
	}
	// a receives o's deltas one by one, as gossip delivers them.
	var envs []*wire.Envelope
	for seq := uint64(1); seq <= 2; seq++ {
		env, err := wire.DecodeEnvelope(mustGet(t, lo, o.cfg.Self, seq), StoredLimits)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	a.Receive(epoch, o.cfg.SelfPeer, envs, true)
	settle(a, la)
	// a's deltas: two keystrokes around a register write.
	for _, ops := range [][]crdt.Op{splice("t", 3, 0, "y"), set("r", "1"), splice("t", 0, 1, "Z")} {
		if _, err := a.Propose(epoch, ops); err != nil {
			t.Fatal(err)
		}
		settle(a, la)
	}
	// b, an older peer, syncs with a: o's keystroke is left out; a's own
	// run comes as an aggregate.
	drops := exchange(t, a, la, b, lb)
	if drops[[2]string{"sync_out", "needs_compact_splice"}] != 1 {
		t.Fatalf("drops %v, want o's keystroke left out", drops)
	}
	// Then a types once more: a lone compact delta, sent with its
	// neighbour as an aggregate.
	if _, err := a.Propose(epoch, splice("t", 1, 0, "w")); err != nil {
		t.Fatal(err)
	}
	settle(a, la)
	if drops := exchange(t, a, la, b, lb); drops[[2]string{"sync_out", "needs_compact_splice"}] != 1 {
		t.Fatalf("drops %v, want o's keystroke left out again, and a's sent", drops)
	}
	if b.Version()[a.cfg.Self] != 4 {
		t.Fatalf("b holds a's seqs up to %d, want 4", b.Version()[a.cfg.Self])
	}
	// From o itself, b gets o's keystroke.
	if drops := exchange(t, o, lo, b, lb); len(drops) != 0 {
		t.Fatalf("drops syncing with the author: %v", drops)
	}
	exchange(t, a, la, o, lo)
	want, _ := a.State().Text([]string{"t"})
	for _, d := range []*Doc{o, b} {
		if got, _ := d.State().Text([]string{"t"}); got != want {
			t.Fatalf("text %q, want %q", got, want)
		}
	}
	if string(crdt.Encode(b.State())) != string(crdt.Encode(a.State())) {
		t.Fatal("b's state differs from a's")
	}
	// A peer speaking the form is served the compact singles as they are.
	c, lc, _ := newDoc(t, "k")
	if drops := exchange(t, a, la, c, lc); len(drops) != 0 {
		t.Fatalf("drops serving a peer of today: %v", drops)
	}
	if env, err := wire.DecodeEnvelope(mustGet(t, lc, o.cfg.Self, 2), StoredLimits); err != nil || env.Last != 0 || !crdt.IsCompactDelta(env.Payload) {
		t.Fatalf("o's keystroke as c got it from a: %v, %+v; want the compact single", err, env)
	}
	// And b's own keystrokes stay classic.
	if _, err := b.Propose(epoch, splice("t", 0, 0, "q")); err != nil {
		t.Fatal(err)
	}
	settle(b, lb)
	if env, err := wire.DecodeEnvelope(mustGet(t, lb, b.cfg.Self, 1), StoredLimits); err != nil || crdt.IsCompactDelta(env.Payload) || env.Features != wire.FeatureSequences {
		t.Fatalf("the older peer's keystroke: %v, f %d; want classic, f 2", err, env.Features)
	}
}

func mustGet(t *testing.T, l *MemoryLog, r crdt.ReplicaID, seq uint64) []byte {
	t.Helper()
	e, err := l.Get(r, seq)
	if err != nil {
		t.Fatal(err)
	}
	return e.Data
}
