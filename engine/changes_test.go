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

// What a merge into a text drops (here: a held-back insert past the bound
// of held-back elements) is counted as a drop.
func TestSequenceDropsCounted(t *testing.T) {
	d, log, _ := newDoc(t, "d")
	a, b := newAuthor(t), newAuthor(t)
	hlc := crdt.MakeHLC(epoch.UnixMilli(), 0)
	sa := crdt.New()
	if _, err := sa.Apply(a.rep, hlc, crdt.Splice([]string{"t"}, 0, 0, "x")); err != nil {
		t.Fatal(err)
	}
	big := make([]rune, crdt.DefaultSeqConfig().MaxPending+10)
	for i := range big {
		big[i] = 'y'
	}
	db, err := sa.Clone().Apply(b.rep, hlc, crdt.Splice([]string{"t"}, 1, 0, string(big))) // after a's x, which d lacks
	if err != nil {
		t.Fatal(err)
	}
	e := b.env(t, "d", 1, 0, db, uint64(hlc))
	e.Features = wire.FeatureSequences
	if err := wire.SignEnvelope(b.key, e); err != nil {
		t.Fatal(err)
	}
	d.Receive(epoch, b.peer, []*wire.Envelope{e}, false)
	var drops int
	for _, rd := range settle(d, log) {
		for _, dr := range rd.Drops {
			if dr == [2]string{"seq_pending", "dropped"} {
				drops++
			}
		}
		if len(rd.Rejects) > 0 {
			t.Fatalf("rejected: %v", rd.Rejects)
		}
	}
	if drops == 0 {
		t.Fatal("a held-back insert dropped past the bound was not counted")
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
