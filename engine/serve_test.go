package engine

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// A run of fresh register sets (a bulk load) is joined without decoding
// its deltas, a run with an overwrite decoded: either way the aggregate is
// the decoded join, signed, and a receiver ends up with the author's view.
func TestCoalesceFreshSetsAsDecodedJoin(t *testing.T) {
	a := newAuthor(t)
	for _, overwrite := range []bool{false, true} {
		st := crdt.New()
		var run []*wire.Envelope
		joined := crdt.New()
		for i := uint64(1); i <= 6; i++ {
			var ops []crdt.Op
			for k := range 50 {
				key := fmt.Sprint("k", (i-1)*50+uint64(k))
				if overwrite && k == 0 && i > 1 {
					key = "k0" // sets again what the first delta set
				}
				ops = append(ops, crdt.Set([]string{key}, []byte(fmt.Sprint(k))))
			}
			delta, err := st.Apply(a.rep, crdt.HLC(i), ops...)
			if err != nil {
				t.Fatal(err)
			}
			joined.JoinDelta(delta)
			e := a.env(t, "agg", i, 0, delta, i)
			e.Dot = st.Context().Max(a.rep)
			run = append(run, e)
		}
		payloads := make([][]byte, len(run))
		for i, e := range run {
			payloads[i] = e.Payload
		}
		if _, fast := crdt.JoinDisjointDeltas(a.rep, payloads, payloadLimits); fast == overwrite {
			t.Fatalf("overwrite %v: joined without decoding %v", overwrite, fast)
		}
		agg, err := Coalesce("agg", a.rep, a.key, run)
		if err != nil || agg == nil {
			t.Fatal(overwrite, agg, err)
		}
		if want := crdt.EncodeDelta(joined, a.rep); !bytes.Equal(agg.Payload, want) {
			t.Fatalf("overwrite %v: the aggregate is not the decoded join", overwrite)
		}
		if agg.Seq != 1 || agg.Last != 6 || agg.Features != 0 || agg.Dot != st.Context().Max(a.rep) {
			t.Fatalf("overwrite %v: aggregate %d-%d features %d dot %d", overwrite, agg.Seq, agg.Last, agg.Features, agg.Dot)
		}
		if err := agg.Verify(); err != nil {
			t.Fatalf("overwrite %v: %v", overwrite, err)
		}
		d, log, _ := newDoc(t, "agg")
		d.Receive(epoch, a.peer, []*wire.Envelope{agg}, false)
		settle(d, log)
		if got, want := string(d.State().JSON()), string(st.JSON()); got != want {
			t.Fatalf("overwrite %v: receiver shows %.80s…, author %.80s…", overwrite, got, want)
		}
	}
}
