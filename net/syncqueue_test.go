package net

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// gate holds the responder's side of every exchange at its first Next
// until the test lets it through (one token in pass, one exchange),
// counting the exchanges held and the most open at once.
type gate struct {
	pass chan struct{}

	mu      sync.Mutex
	held    int            // exchanges waiting for a token
	open    int            // exchanges open
	peak    int            // the most open at once
	entered map[string]int // exchanges held, by document
}

func newGate(tokens int) *gate {
	return &gate{pass: make(chan struct{}, tokens), entered: map[string]int{}}
}

func (g *gate) counts() (held, open, peak int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held, g.open, g.peak
}

// gatedDoc is a document whose exchanges wait at the gate.
type gatedDoc struct {
	SyncDoc
	g *gate
}

func (d gatedDoc) Exchange(p peer.ID, lim wire.SyncLimits) Exchange {
	d.g.mu.Lock()
	d.g.open++
	d.g.peak = max(d.g.peak, d.g.open)
	d.g.mu.Unlock()
	return &gatedExchange{Exchange: d.SyncDoc.Exchange(p, lim), g: d.g, doc: d.Doc()}
}

type gatedExchange struct {
	Exchange
	g      *gate
	doc    string
	passed bool // Next runs on the writer goroutine only
}

func (x *gatedExchange) Next(ctx context.Context) (*wire.SyncMsg, error) {
	if !x.passed {
		x.passed = true
		x.g.mu.Lock()
		x.g.held++
		x.g.entered[x.doc]++
		x.g.mu.Unlock()
		defer func() {
			x.g.mu.Lock()
			x.g.held--
			x.g.mu.Unlock()
		}()
		select {
		case <-x.g.pass:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return x.Exchange.Next(ctx)
}

func (x *gatedExchange) Close() {
	x.Exchange.Close()
	x.g.mu.Lock()
	x.g.open--
	x.g.mu.Unlock()
}

// gatedPair is two connected syncers with docs documents, all empty; b
// answers every exchange through g.
type gatedPair struct {
	sa, sb *Syncer
	ha, hb peer.ID
	ra     map[string]*fakeReplica
	g      *gate
	done   chan ExchangeEvent // a's exchanges
}

func newGatedPair(t *testing.T, docs int) *gatedPair {
	ha, hb := newTestHost(t, LoopbackHostConfig()), newTestHost(t, LoopbackHostConfig())
	if err := connectVia(t, ha, hb, false); err != nil {
		t.Fatal(err)
	}
	// One store for each side: a document is a name in it.
	fa, fb := newFakeReplica(t, 1, 0), newFakeReplica(t, 2, 0)
	gp := &gatedPair{ha: ha.ID(), hb: hb.ID(), ra: map[string]*fakeReplica{}, g: newGate(docs), done: make(chan ExchangeEvent, 2*docs)}
	rb := map[string]SyncDoc{}
	for i := range docs {
		name := fmt.Sprint("doc", i)
		a, b := *fa, *fb
		a.doc, b.doc = name, name
		a.observed, b.observed = map[peer.ID]crdt.VersionVector{}, map[peer.ID]crdt.VersionVector{}
		gp.ra[name] = &a
		rb[name] = gatedDoc{&b, gp.g}
	}
	gp.sa = NewSyncer(ha, SyncerConfig{Resolve: func(d string) SyncDoc { return gp.ra[d] }, OnExchange: func(e ExchangeEvent) { gp.done <- e }})
	t.Cleanup(func() { _ = gp.sa.Close() })
	gp.sb = NewSyncer(hb, SyncerConfig{Resolve: func(d string) SyncDoc { return rb[d] }})
	t.Cleanup(func() { _ = gp.sb.Close() })
	return gp
}

// runnerState returns a's runners and queued exchanges.
func (gp *gatedPair) runnerState() (runners, queued int) {
	gp.sa.mu.Lock()
	defer gp.sa.mu.Unlock()
	return gp.sa.runners, gp.sa.queue.n
}

// release lets the exchanges through maxOutboundPerPeer at a time until
// total have passed, checking at each step, while they are held, that a
// runs at most maxOutboundPerPeer with b and only so many runners, and
// that the goroutines started since base stay few. each, if set, runs at
// every step before the release.
func (gp *gatedPair) release(t *testing.T, total, base int, each func(step int)) {
	t.Helper()
	for released, step := 0, 0; released < total; step++ {
		want := min(maxOutboundPerPeer, total-released)
		waitFor(t, 20*time.Second, fmt.Sprintf("%d exchanges held after %d released", want, released), func() bool {
			held, _, _ := gp.g.counts()
			return held == want
		})
		if runners, _ := gp.runnerState(); runners > maxOutboundPerPeer {
			t.Fatalf("%d runners for one peer", runners)
		}
		// Per exchange under way: a runner, the stream's reader, the
		// responder's handler and its reader. One goroutine per trigger
		// would be hundreds.
		if n := runtime.NumGoroutine() - base; n > 64 {
			t.Fatalf("%d goroutines more than before the triggers", n)
		}
		if each != nil {
			each(step)
		}
		for range want {
			gp.g.pass <- struct{}{}
		}
		released += want
	}
}

// TestTriggerManyDocumentsBoundedRunners: triggering 500 documents at one
// peer, whose answers are held, starts a few runners, not a goroutine per
// trigger; at most maxOutboundPerPeer exchanges run with the peer at once,
// every document's runs once, and the runners exit when the queue is
// empty.
func TestTriggerManyDocumentsBoundedRunners(t *testing.T) {
	const docs = 500
	gp := newGatedPair(t, docs)
	base := runtime.NumGoroutine()
	for _, a := range gp.ra {
		gp.sa.Trigger(gp.hb, a)
	}
	gp.release(t, docs, base, nil)
	for range docs {
		select {
		case e := <-gp.done:
			if e.Err != nil {
				t.Fatalf("exchange for %s: %v", e.Doc, e.Err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("exchanges did not finish")
		}
	}
	waitFor(t, 10*time.Second, "the runners to exit", func() bool {
		runners, queued := gp.runnerState()
		return runners == 0 && queued == 0
	})
	if len(gp.done) != 0 {
		t.Fatalf("%d exchanges more than documents", len(gp.done))
	}
	_, open, peak := gp.g.counts()
	if peak > maxOutboundPerPeer || open != 0 {
		t.Fatalf("%d exchanges with the peer at once (%d still open), want at most %d", peak, open, maxOutboundPerPeer)
	}
	for name := range gp.ra {
		if n := gp.g.entered[name]; n != 1 {
			t.Fatalf("%s exchanged %d times", name, n)
		}
		if gp.sa.Busy(gp.hb, name) {
			t.Fatalf("%s still busy", name)
		}
	}
}

// TestSyncBeforeQueuedTriggers: a call of Sync for a document whose
// triggered exchange is queued behind hundreds serves that trigger and
// takes the next free slot for the peer, ahead of the queue.
func TestSyncBeforeQueuedTriggers(t *testing.T) {
	const docs = 200
	gp := newGatedPair(t, docs)
	base := runtime.NumGoroutine()
	var names []string
	for name, a := range gp.ra {
		gp.sa.Trigger(gp.hb, a)
		names = append(names, name)
	}
	var last string // queued behind the others
	gp.sa.mu.Lock()
	for p := range gp.sa.queue.byPeer {
		last = gp.sa.queue.byPeer[p].Back().Value.(syncKey).doc
	}
	gp.sa.mu.Unlock()
	synced := make(chan error, 1)
	gp.release(t, docs, base, func(step int) {
		switch step {
		case 0:
			go func() {
				_, err := gp.sa.Sync(context.Background(), gp.hb, gp.ra[last])
				synced <- err
			}()
			waitFor(t, 10*time.Second, "Sync to take the queued slot and wait", func() bool {
				gp.sa.mu.Lock()
				defer gp.sa.mu.Unlock()
				slot := gp.sa.inflight[syncKey{gp.hb, last}]
				return slot != nil && slot.queued == nil && gp.sa.outWait[gp.hb] == 1
			})
		case 2:
			// Its exchange was let through at step 1; nothing more is
			// until it returns.
			select {
			case err := <-synced:
				if err != nil {
					t.Fatalf("Sync: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Sync still waits behind the queue")
			}
		}
	})
	if n := gp.g.entered[last]; n != 1 {
		t.Fatalf("%s exchanged %d times, want once (Sync serves the trigger)", last, n)
	}
}

// TestTriggerQueueBound: past maxPendingOutbound queued exchanges a
// trigger is dropped and counted; a trigger for a queued key is no new
// one; a peer's queued exchanges are dropped and counted when it
// disconnects.
func TestTriggerQueueBound(t *testing.T) {
	h := newTestHost(t, LoopbackHostConfig())
	_, p := testKey(t, 9) // never connected
	m := NewMetrics(nil)
	s := NewSyncer(h, SyncerConfig{Metrics: m})
	defer s.Close()
	// Calls of Sync hold p's every slot: nothing queued runs.
	s.mu.Lock()
	s.outWait[p] = maxOutboundPerPeer
	s.mu.Unlock()
	r := newFakeReplica(t, 1, 0)
	doc := func(i int) SyncDoc { d := *r; d.doc = fmt.Sprint("doc", i); return &d }
	for i := range maxPendingOutbound + 10 {
		s.Trigger(p, doc(i))
		s.Trigger(p, doc(0))
	}
	s.mu.Lock()
	runners, queued := s.runners, s.queue.n
	s.mu.Unlock()
	if runners != 0 || queued != maxPendingOutbound {
		t.Fatalf("%d runners, %d queued; want 0, %d", runners, queued, maxPendingOutbound)
	}
	if n := counterValue(m.Dropped.WithLabelValues("sync_outbound", "full")); n != 10 {
		t.Fatalf("%v triggers dropped as full, want 10", n)
	}
	if !s.Busy(p, "doc0") || s.Busy(p, fmt.Sprint("doc", maxPendingOutbound)) {
		t.Fatal("Busy does not report what is queued")
	}
	s.disconnected(p)
	s.mu.Lock()
	queued = s.queue.n
	s.mu.Unlock()
	if n := counterValue(m.Dropped.WithLabelValues("sync_outbound", "disconnected")); n != maxPendingOutbound || queued != 0 || s.Busy(p, "doc0") {
		t.Fatalf("after the disconnect: %v dropped, %d queued", n, queued)
	}
	s.mu.Lock()
	delete(s.outWait, p)
	s.mu.Unlock()
}

// TestOutQueueTurns: keys come out first in, first out per peer, the peers
// in turn, a peer that may not run skipped; removed keys never come out.
func TestOutQueueTurns(t *testing.T) {
	var q outQueue
	_, a := testKey(t, 1)
	_, b := testKey(t, 2)
	_, c := testKey(t, 3)
	ea1 := q.push(syncKey{a, "1"})
	q.push(syncKey{a, "2"})
	q.push(syncKey{b, "1"})
	q.push(syncKey{b, "2"})
	ec := q.push(syncKey{c, "1"})
	q.push(syncKey{a, "3"})
	q.remove(ea1)
	q.remove(ec)
	all := func(peer.ID) bool { return true }
	notB := func(p peer.ID) bool { return p != b }
	var got []string
	name := map[peer.ID]string{a: "a", b: "b", c: "c"}
	for _, ok := range []func(peer.ID) bool{all, notB, notB, all, all, all} {
		k, popped := q.pop(ok)
		if !popped {
			got = append(got, "-")
			continue
		}
		got = append(got, name[k.p]+k.doc)
	}
	if want := "[a2 a3 - b1 b2 -]"; fmt.Sprint(got) != want || q.n != 0 || len(q.turn) != 0 || len(q.byPeer) != 0 {
		t.Fatalf("popped %v (left %d, turn %v), want %s", got, q.n, q.turn, want)
	}
}
