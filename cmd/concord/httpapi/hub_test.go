package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-p2p/concord"
)

// countingView counts the views computed.
type countingView struct{ n atomic.Int64 }

func (c *countingView) view(d *concord.Doc) json.RawMessage {
	c.n.Add(1)
	return d.JSON()
}

// TestEventsOneViewPerChange: N streams of one document cost one JSON view
// per change, not one per stream, and every stream sees every change with
// its value.
func TestEventsOneViewPerChange(t *testing.T) {
	var cv countingView
	n, srv := newAPI(t, Options{Heartbeat: time.Hour}, func(a *API) { a.hubs.view = cv.view })
	const streams, changes = 5, 12
	var ss []*sse
	for range streams {
		s := openSSE(t, srv.URL+"/v1/docs/d/events")
		if got := s.next(5 * time.Second); got != ": ok\n" {
			t.Fatalf("opening %q", got)
		}
		ss = append(ss, s)
	}
	d, err := n.Doc(context.Background(), "d")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= changes; i++ {
		if err := d.Set(context.Background(), []string{"n"}, i); err != nil {
			t.Fatal(err)
		}
		for k, s := range ss {
			ev := s.next(5 * time.Second)
			if !strings.Contains(ev, fmt.Sprintf(`"value":{"n":%d}`, i)) || strings.Contains(ev, `"missed"`) {
				t.Fatalf("stream %d, change %d: %q", k, i, ev)
			}
		}
	}
	if got := cv.n.Load(); got != changes {
		t.Fatalf("%d views computed for %d changes on %d streams, want %d", got, changes, streams, changes)
	}
}

// droppedSubscription reads concord_dropped_total{queue="subscription",
// reason="full"} from the node's registry.
func droppedSubscription(t *testing.T, n *concord.Node) float64 {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "concord_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["queue"] == "subscription" && labels["reason"] == "full" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func recvChange(t *testing.T, s *stream) *change {
	t.Helper()
	select {
	case ch, ok := <-s.c:
		if !ok {
			t.Fatal("stream ended")
		}
		return ch
	case <-time.After(5 * time.Second):
		t.Fatal("no change")
		return nil
	}
}

// TestHubSlowStreamDrops: a stream that is not read keeps its first
// EventBuffer changes and drops the rest, counted in its missed count and
// in the node's dropped metric; a stream that is read gets every change;
// the slow stream's next event carries the current value.
func TestHubSlowStreamDrops(t *testing.T) {
	ctx := context.Background()
	n, err := concord.Open(ctx, concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	d, err := n.Doc(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	const buf, changes = 4, 20
	hs := newHubs(n, buf, (*concord.Doc).JSON)
	if hs.drops == nil {
		t.Fatal("the node's dropped counter was not found")
	}
	h, slow := hs.join(d)
	h2, fast := hs.join(d)
	if h2 != h {
		t.Fatal("two hubs for one document")
	}
	before := droppedSubscription(t, n)
	for i := 1; i <= changes; i++ {
		if err := d.Set(ctx, []string{"n"}, i); err != nil {
			t.Fatal(err)
		}
		if ch := recvChange(t, fast); ch.n != uint64(i) {
			t.Fatalf("fast stream got change %d, want %d", ch.n, i)
		}
	}
	// The fast stream got the last change while the hub was handing it
	// out; the hub holds its lock until every stream had its turn.
	h.mu.Lock()
	joined := len(h.streams)
	h.mu.Unlock()
	if joined != 2 {
		t.Fatalf("%d streams in the hub", joined)
	}
	if m := fast.missed.Load(); m != 0 {
		t.Fatalf("the read stream missed %d", m)
	}
	if m := slow.missed.Load(); m != changes-buf {
		t.Fatalf("the slow stream missed %d, want %d", m, changes-buf)
	}
	if got := droppedSubscription(t, n) - before; got != changes-buf {
		t.Fatalf("dropped metric rose by %v, want %d", got, changes-buf)
	}
	var w strings.Builder
	if _, err := writeChange(&w, nil, recvChange(t, slow), h.latest.Load(), slow.missed.Load()); err != nil {
		t.Fatal(err)
	}
	var ev ChangeEvent
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(w.String(), "event: change\ndata: "), "\n\n")), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Missed != changes-buf || string(ev.Value) != fmt.Sprintf(`{"n":%d}`, changes) {
		t.Fatalf("slow stream's next event: %s", w.String())
	}
	hs.leave(h, fast)
	hs.leave(h, slow)
	select {
	case <-h.done:
	default:
		t.Fatal("the last stream left and the hub still runs")
	}
	if len(hs.m) != 0 {
		t.Fatal("a stopped hub is still registered")
	}
}

// TestHubJoinSkipsQueued: a stream joining while the hub is busy does not
// get the changes the hub already took or had queued.
func TestHubJoinSkipsQueued(t *testing.T) {
	ctx := context.Background()
	n, err := concord.Open(ctx, concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	d, err := n.Doc(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	hs := newHubs(n, 16, func(d *concord.Doc) json.RawMessage {
		entered <- struct{}{}
		<-release
		return d.JSON()
	})
	h, early := hs.join(d)
	defer hs.leave(h, early)
	if err := d.Set(ctx, []string{"n"}, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered: // the hub took change 1 and computes its view
	case <-time.After(5 * time.Second):
		t.Fatal("the hub never computed a view")
	}
	for i := 2; i <= 3; i++ { // queued behind the busy hub
		if err := d.Set(ctx, []string{"n"}, i); err != nil {
			t.Fatal(err)
		}
	}
	_, late := hs.join(d)
	defer hs.leave(h, late)
	close(release)
	if err := d.Set(ctx, []string{"n"}, 4); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 4; i++ {
		if ch := recvChange(t, early); ch.n != i {
			t.Fatalf("early stream got change %d, want %d", ch.n, i)
		}
	}
	if ch := recvChange(t, late); ch.n != 4 {
		t.Fatalf("late stream's first change is %d, want 4", ch.n)
	}
}

// TestHubEndsWithDocument: when the node (and so the document) closes,
// every stream of the hub ends and the hub's goroutine exits.
func TestHubEndsWithDocument(t *testing.T) {
	ctx := context.Background()
	n, err := concord.Open(ctx, concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.Doc(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	hs := newHubs(n, 4, (*concord.Doc).JSON)
	h, s := hs.join(d)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-s.c:
		if ok {
			t.Fatal("a change after close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end with its document")
	}
	hs.leave(h, s) // returns once the hub's goroutine has exited
	if len(hs.m) != 0 {
		t.Fatal("an ended hub is still registered")
	}
	// A stream of the closed document ends at once.
	h2, s2 := hs.join(d)
	defer hs.leave(h2, s2)
	select {
	case _, ok := <-s2.c:
		if ok {
			t.Fatal("a change after close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stream of a closed document did not end")
	}
}

// TestHubSubscriptionDrops: while the hub is busy, the document drops the
// changes its subscription has no room for; each stream counts them as
// missed and the dropped metric counts them once per stream, as it did
// with one subscription per stream, and the value stays current.
func TestHubSubscriptionDrops(t *testing.T) {
	ctx := context.Background()
	n, err := concord.Open(ctx, concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	d, err := n.Doc(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	const buf = 4
	entered := make(chan struct{}, 4)
	release := make(chan struct{}, 4)
	hs := newHubs(n, buf, func(d *concord.Doc) json.RawMessage {
		v := d.JSON()
		entered <- struct{}{}
		<-release
		return v
	})
	h, a := hs.join(d)
	_, b := hs.join(d)
	t.Cleanup(func() { hs.leave(h, a); hs.leave(h, b) })
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll) // before the streams leave: the hub may wait in a view
	waitView := func(what string) {
		t.Helper()
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatalf("no view computed for %s", what)
		}
	}
	before := droppedSubscription(t, n)
	set := func(i int) {
		t.Helper()
		if err := d.Set(ctx, []string{"n"}, i); err != nil {
			t.Fatal(err)
		}
	}
	set(1)
	waitView("change 1") // the hub took change 1 and waits
	for i := 2; i <= 8; i++ {
		set(i) // 2..5 fill the hub's subscription; 6..8 are dropped
	}
	release <- struct{}{}
	waitView("changes 2..5") // one view for the burst
	release <- struct{}{}
	set(9)
	waitView("change 9") // so changes 2..5 were handed out; the hub waits again
	for name, s := range map[string]*stream{"a": a, "b": b} {
		// Queued: 1..4; dropped: 6..8 by the document, 5 by the stream.
		if m := s.missed.Load(); m != 4 || len(s.c) != buf {
			t.Fatalf("stream %s: missed %d, %d queued; want 4 and %d", name, m, len(s.c), buf)
		}
	}
	if got := droppedSubscription(t, n) - before; got != 8 {
		t.Fatalf("dropped metric rose by %v, want 8 (4 per stream)", got)
	}
	if got := string(h.latest.Load().b); got != `{"n":8}` {
		t.Fatalf("latest view %s, want the value after change 8", got)
	}
	releaseAll()
}
