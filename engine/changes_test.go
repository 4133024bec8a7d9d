package engine

import (
	"fmt"
	"strings"
	"testing"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// Changes are announced in the order they were applied to the state, each
// once durable: a received delta stored before the local write applied
// earlier waits for it, and the local write made after it is a change of
// its own.
func TestChangesInApplicationOrder(t *testing.T) {
	d, log, _ := newDoc(t, "d")
	d.Track(true)
	other := newAuthor(t)
	if _, err := d.Propose(epoch, set("a", "1")); err != nil {
		t.Fatal(err)
	}
	rdA := d.Ready() // the local write's append, not yet durable
	hlc := crdt.MakeHLC(epoch.UnixMilli(), 0)
	delta, err := crdt.New().Apply(other.rep, hlc, crdt.Set([]string{"r"}, []byte("2")))
	if err != nil {
		t.Fatal(err)
	}
	d.Receive(epoch, other.peer, []*wire.Envelope{other.env(t, "d", 1, 0, delta, uint64(hlc))}, true)
	if _, err := d.Propose(epoch, set("b", "3")); err != nil {
		t.Fatal(err)
	}
	rdR := d.Ready() // the received delta's append
	if len(rdR.Appends) != 1 || rdR.Appends[0].Own {
		t.Fatalf("want the received delta's append alone, got %+v", rdR.Appends)
	}
	log.Apply(d, rdR)
	var got []string
	collect := func(rd Ready) {
		for _, c := range rd.Changes {
			got = append(got, fmt.Sprint(c.Local, c.Paths))
		}
	}
	rd := d.Ready()
	collect(rd)
	if len(got) != 0 {
		t.Fatalf("the received change was announced before the local one applied earlier: %v", got)
	}
	log.Apply(d, rd)
	log.Apply(d, rdA)
	for _, rd := range settle(d, log) {
		collect(rd)
	}
	want := []string{"true [[a]]", "false [[r]]", "true [[b]]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
}

// A delta whose sequence change would be held back past the bound (a
// paste after an element not received yet, bigger than what may wait) is
// refused whole: counted, not stored, not acknowledged; once what it
// names has arrived, the same delta sent again integrates.
func TestSequenceRefusedThenResent(t *testing.T) {
	d, log, _ := newDoc(t, "d")
	a, b := newAuthor(t), newAuthor(t)
	hlc := crdt.MakeHLC(epoch.UnixMilli(), 0)
	sa := crdt.New()
	da, err := sa.Apply(a.rep, hlc, crdt.Splice([]string{"t"}, 0, 0, "x"))
	if err != nil {
		t.Fatal(err)
	}
	sb := sa.Clone()
	db, err := sb.Apply(b.rep, hlc, crdt.Splice([]string{"t"}, 1, 0, strings.Repeat("y", crdt.DefaultSeqConfig().MaxPending+10))) // after a's x, which d lacks
	if err != nil {
		t.Fatal(err)
	}
	env := func(au author, delta *crdt.State) *wire.Envelope {
		e := &wire.Envelope{Doc: "d", Origin: au.rep, Seq: 1, HLC: uint64(hlc), Features: wire.FeatureSequences, Payload: crdt.EncodeDelta(delta, au.rep)}
		if err := wire.SignEnvelope(au.key, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	eb := env(b, db)
	receive := func(e *wire.Envelope) (refused int) {
		d.Receive(epoch, b.peer, []*wire.Envelope{e}, false)
		for _, rd := range settle(d, log) {
			for _, dr := range rd.Drops {
				if dr == [2]string{"seq_pending", "full"} {
					refused++
				}
			}
			if len(rd.Rejects) > 0 {
				t.Fatalf("rejected: %v", rd.Rejects)
			}
		}
		return refused
	}
	if n := receive(eb); n != 1 {
		t.Fatalf("the paste was refused %d times, want 1", n)
	}
	if log.Has(b.rep, 1) || d.Version()[b.rep] != 0 {
		t.Fatal("a refused delta was stored (and would be acknowledged)")
	}
	if receive(env(a, da)) != 0 {
		t.Fatal("a's x refused")
	}
	if receive(eb) != 0 { // sent again, by sync
		t.Fatal("the paste refused again once its origin arrived")
	}
	got, _ := d.State().Text([]string{"t"})
	want, _ := sb.Text([]string{"t"})
	if got != want || !log.Has(b.rep, 1) {
		t.Fatalf("d holds %d code points, the author %d; stored: %v", len([]rune(got)), len([]rune(want)), log.Has(b.rep, 1))
	}
}

// Big splices gathered into one group commit are signed as pieces that
// every receiver accepts (each within the stored limits): the joined
// sequence changes are cut, not sent as one oversized piece.
func TestGroupCommitOfBigSplicesFits(t *testing.T) {
	d, log, _ := newDoc(t, "d")
	if _, err := d.Propose(epoch, set("a", "1")); err != nil {
		t.Fatal(err)
	}
	first := d.Ready() // in flight: the splices gather into the next delta
	big := strings.Repeat("x", MaxTxnBytes-64)
	for i := range 5 {
		if _, err := d.Propose(epoch, []crdt.Op{crdt.Splice([]string{"t" + fmt.Sprint(i)}, 0, 0, big)}); err != nil {
			t.Fatal(err)
		}
	}
	log.Apply(d, first)
	published := 0
	for _, rd := range settle(d, log) {
		for _, e := range rd.Publish {
			published++
			b, err := wire.EncodeEnvelope(e)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := wire.DecodeEnvelope(b, StoredLimits); err != nil {
				t.Fatalf("own envelope %d refused by every receiver: %v", e.Seq, err)
			}
		}
	}
	if published < 6 {
		t.Fatalf("%d envelopes published", published)
	}
}

// A delta whose values or sequence elements are dotted as another replica
// than its signer is refused: no honest writer signs one, and a text's
// first run with a dot wins, so it could hide that replica's typing.
func TestForeignDotsRefused(t *testing.T) {
	d, log, _ := newDoc(t, "d")
	a, b := newAuthor(t), newAuthor(t)
	hlc := crdt.MakeHLC(epoch.UnixMilli(), 0)
	for _, op := range []crdt.Op{crdt.Splice([]string{"t"}, 0, 0, "forged"), crdt.Set([]string{"k"}, []byte("1"))} {
		forged, err := crdt.New().Apply(a.rep, hlc, op) // a's dots
		if err != nil {
			t.Fatal(err)
		}
		e := &wire.Envelope{Doc: "d", Origin: b.rep, Seq: 1, HLC: uint64(hlc), Features: deltaFeatures(forged), Payload: crdt.EncodeDelta(forged, b.rep)}
		if err := wire.SignEnvelope(b.key, e); err != nil {
			t.Fatal(err)
		}
		d.Receive(epoch, b.peer, []*wire.Envelope{e}, false)
		var rejects []string
		for _, rd := range settle(d, log) {
			rejects = append(rejects, rd.Rejects...)
		}
		if fmt.Sprint(rejects) != "[foreign_dots]" || log.Has(b.rep, 1) {
			t.Fatalf("%s: rejects %v, stored %v", op.Kind, rejects, log.Has(b.rep, 1))
		}
	}
}

// A paste integrated at once when it arrived (its origin was here) may be
// replayed from the log before that origin, when the log orders its
// author first: the replay holds it back past the bound for a moment and
// must not refuse it — the log is what this replica accepted.
func TestReplayHoldsBackPastTheBound(t *testing.T) {
	d, log, _ := newDoc(t, "d")
	a, b := newAuthor(t), newAuthor(t)
	for b.rep > a.rep { // the log replays the paste's author first
		b = newAuthor(t)
	}
	hlc := crdt.MakeHLC(epoch.UnixMilli(), 0)
	sa := crdt.New()
	da, err := sa.Apply(a.rep, hlc, crdt.Splice([]string{"t"}, 0, 0, "x"))
	if err != nil {
		t.Fatal(err)
	}
	sb := sa.Clone()
	db, err := sb.Apply(b.rep, hlc, crdt.Splice([]string{"t"}, 1, 0, strings.Repeat("y", crdt.DefaultSeqConfig().MaxPending+10)))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		au    author
		delta *crdt.State
	}{{a, da}, {b, db}} {
		e := &wire.Envelope{Doc: "d", Origin: x.au.rep, Seq: 1, HLC: uint64(hlc), Features: wire.FeatureSequences, Payload: crdt.EncodeDelta(x.delta, x.au.rep)}
		if err := wire.SignEnvelope(x.au.key, e); err != nil {
			t.Fatal(err)
		}
		d.Receive(epoch, x.au.peer, []*wire.Envelope{e}, false)
		settle(d, log)
	}
	want, _ := sb.Text([]string{"t"})
	if got, _ := d.State().Text([]string{"t"}); got != want {
		t.Fatalf("before the restart: %d code points, want %d", len([]rune(got)), len([]rune(want)))
	}
	cfg := d.cfg
	re, _, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := re.State().Text([]string{"t"}); got != want {
		t.Fatalf("after the restart: %d code points, want %d", len([]rune(got)), len([]rune(want)))
	}
}
