package net

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/concord-p2p/concord/wire"
)

// presenceRec records what a presence topic hands over; refuse, when set,
// decides what ReceivePresence refuses.
type presenceRec struct {
	mu        sync.Mutex
	delivered []*wire.Presence
	from      []peer.ID
	joined    []peer.ID
	refuse    func(m *wire.Presence) error
}

func (h *presenceRec) ReceivePresence(from peer.ID, m *wire.Presence) error {
	if h.refuse != nil {
		if err := h.refuse(m); err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delivered = append(h.delivered, m)
	h.from = append(h.from, from)
	return nil
}

func (h *presenceRec) PresencePeerJoined(p peer.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.joined = append(h.joined, p)
}

func (h *presenceRec) got() ([]*wire.Presence, []peer.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.delivered), slices.Clone(h.from)
}

func (h *presenceRec) hasJoined(p peer.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.joined, p)
}

// presenceNode is a Gossip on its own host, joined to a presence topic.
type presenceNode struct {
	h  host.Host
	g  *Gossip
	m  *Metrics
	t  *PresenceTopic
	hd *presenceRec
}

func newPresenceNode(t *testing.T, doc string) *presenceNode {
	t.Helper()
	h := tcpHost(t)
	m := NewMetrics(nil)
	cfg := DefaultGossipConfig()
	cfg.FastHeartbeat = true
	cfg.Metrics = m
	g, err := NewGossip(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	hd := &presenceRec{}
	pt, err := g.JoinPresence(doc, hd)
	if err != nil {
		t.Fatal(err)
	}
	return &presenceNode{h: h, g: g, m: m, t: pt, hd: hd}
}

// link connects a to b and waits until each saw the other join the topic.
func link(t *testing.T, a, b *presenceNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the peers to see each other join", func() bool {
		return a.hd.hasJoined(b.h.ID()) && b.hd.hasJoined(a.h.ID())
	})
}

// signed returns a's signed presence message for doc.
func (n *presenceNode) signed(t *testing.T, doc, client string, stamp uint64, state string) *wire.Presence {
	t.Helper()
	p := &wire.Presence{Doc: doc, Origin: wire.ReplicaFor(n.h.ID(), 1), Client: client, Stamp: stamp, TTL: 1000}
	if state != "" {
		p.State = []byte(state)
	}
	if err := wire.SignPresence(n.h.Peerstore().PrivKey(n.h.ID()), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (n *presenceNode) publish(t *testing.T, b []byte) {
	t.Helper()
	if err := n.t.Publish(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func encodePresence(t *testing.T, p *wire.Presence) []byte {
	t.Helper()
	b, err := wire.EncodePresence(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dropped returns the non-zero counts of m.Dropped as "queue/reason".
func dropped(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() { m.Dropped.Collect(ch); close(ch) }()
	out := map[string]float64{}
	for c := range ch {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{}
		for _, l := range d.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if v := d.GetCounter().GetValue(); v != 0 {
			out[labels["queue"]+"/"+labels["reason"]] = v
		}
	}
	return out
}

// A presence message published by one peer reaches the other intact, also
// relayed through a third peer (it still verifies); each peer learns who
// joined the topic; a node does not hear its own messages.
func TestPresenceTopicDelivers(t *testing.T) {
	const doc = "room"
	a, b, c := newPresenceNode(t, doc), newPresenceNode(t, doc), newPresenceNode(t, doc)
	link(t, a, b)
	link(t, b, c) // a and c are not connected: b relays
	if got := PresenceTopicName(doc); got != "/concord/presence/room/1" {
		t.Fatalf("topic %q", got)
	}
	if !slices.Contains(a.t.Peers(), b.h.ID()) {
		t.Fatalf("a's topic peers %v lack b", a.t.Peers())
	}
	// The mesh that carries relays forms on heartbeats after the peers
	// joined: publish (new stamps) until c has one, within a deadline.
	var p *wire.Presence
	stamp := uint64(time.Now().UnixMilli())
	deadline := time.Now().Add(20 * time.Second)
	for {
		gc, _ := c.hd.got()
		if len(gc) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("c never got a's presence through b")
		}
		stamp++
		p = a.signed(t, doc, "tab-1", stamp, `{"name":"a"}`)
		a.publish(t, encodePresence(t, p))
		waitFor(t, 10*time.Second, "b to get a's presence", func() bool {
			gb, _ := b.hd.got()
			return len(gb) > 0 && reflect.DeepEqual(gb[len(gb)-1], p)
		})
		for range 20 {
			if gc, _ := c.hd.got(); len(gc) > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	gb, fb := b.hd.got()
	gc, fc := c.hd.got()
	p = gc[0]
	if !slices.ContainsFunc(gb, func(x *wire.Presence) bool { return reflect.DeepEqual(x, p) }) || fb[0] != a.h.ID() || fc[0] != b.h.ID() || p.Verify() != nil {
		t.Fatalf("c got %+v from %v; b got %d from %v", p, fc, len(gb), fb)
	}
	if gc[0].Origin != wire.ReplicaFor(a.h.ID(), 1) || string(gc[0].State) != `{"name":"a"}` {
		t.Fatalf("c got %+v", gc[0])
	}
	if ga, _ := a.hd.got(); len(ga) != 0 {
		t.Fatalf("a heard its own message: %+v", ga)
	}
	for _, n := range []*presenceNode{a, b, c} {
		if r := byReason(t, n.m.MessagesRejected); len(r) != 0 {
			t.Fatalf("rejections %v", r)
		}
	}
}

// Every message that does not decode, names another document or does not
// verify is rejected and counted, and so is one the handler refuses
// (counted under its reason, rejected or ignored as it says); none is
// delivered.
func TestPresenceTopicRefuses(t *testing.T) {
	const doc = "room"
	a, b := newPresenceNode(t, doc), newPresenceNode(t, doc)
	b.hd.refuse = func(m *wire.Presence) error {
		switch m.Client {
		case "stale":
			return fmt.Errorf("%w: %w", ErrIgnore, testReason("stale"))
		case "writer":
			return testReason("not_writer")
		}
		return nil
	}
	link(t, a, b)
	now := uint64(time.Now().UnixMilli())
	badSig := a.signed(t, doc, "", now, `{}`)
	badSig.Sig[0] ^= 1
	// Signed by a under the origin of another peer.
	other := newPresenceNode(t, doc)
	forged := &wire.Presence{Doc: doc, Origin: wire.ReplicaFor(other.h.ID(), 1), Stamp: now, TTL: 1000, State: []byte(`{}`)}
	forged.Sig = a.signed(t, doc, "", now, `{}`).Sig
	for _, m := range [][]byte{
		{0xff, 0x00},
		encodePresence(t, badSig),
		encodePresence(t, forged),
		encodePresence(t, a.signed(t, "other", "", now, `{}`)),
		encodePresence(t, a.signed(t, doc, "stale", now, `{}`)),
		encodePresence(t, a.signed(t, doc, "writer", now, `{}`)),
	} {
		a.publish(t, m)
	}
	waitReasons(t, "b's rejections", b.m.MessagesRejected, map[string]float64{
		"presence_malformed": 1, "presence_bad_signature": 2, "presence_wrong_doc": 1,
	})
	waitFor(t, 10*time.Second, "b's presence drops", func() bool {
		return maps.Equal(dropped(t, b.m), map[string]float64{"presence/stale": 1, "presence/not_writer": 1})
	})
	// A good message after them arrives alone.
	good := a.signed(t, doc, "", now+1, `{"ok":true}`)
	a.publish(t, encodePresence(t, good))
	waitFor(t, 10*time.Second, "the good message", func() bool { g, _ := b.hd.got(); return len(g) > 0 })
	if g, _ := b.hd.got(); len(g) != 1 || !reflect.DeepEqual(g[0], good) {
		t.Fatalf("delivered %+v", g)
	}
}

type testReason string

func (r testReason) Error() string  { return string(r) }
func (r testReason) Reason() string { return string(r) }

// Close leaves the topic (Publish then fails with ErrClosed); Gossip.Close
// closes the presence topics it still holds; joining twice fails.
func TestPresenceTopicClose(t *testing.T) {
	a := newPresenceNode(t, "room")
	if _, err := a.g.JoinPresence("room", a.hd); err == nil {
		t.Fatal("joined a presence topic twice")
	}
	if err := a.t.Close(); err != nil {
		t.Fatal(err)
	}
	_ = a.t.Close()
	if err := a.t.Publish(context.Background(), []byte{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close: %v", err)
	}
	t2, err := a.g.JoinPresence("room", a.hd)
	if err != nil {
		t.Fatalf("rejoin after close: %v", err)
	}
	if _, err := a.g.JoinPresence("hall", a.hd); err != nil {
		t.Fatal(err)
	}
	_ = a.g.Close()
	if err := t2.Publish(context.Background(), []byte{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after the gossip closed: %v", err)
	}
	if _, err := a.g.JoinPresence("x", a.hd); !errors.Is(err, ErrClosed) {
		t.Fatalf("join after close: %v", err)
	}
}

// PublishFlushed returns once the message was written to every connected
// peer of the topic: a peer then gets it even if the sender's host closes
// right after. Without peers it returns at once.
func TestPresencePublishFlushed(t *testing.T) {
	const doc = "room"
	a, b := newPresenceNode(t, doc), newPresenceNode(t, doc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.t.PublishFlushed(ctx, encodePresence(t, a.signed(t, doc, "", 1, `{}`))); err != nil {
		t.Fatalf("alone: %v", err)
	}
	link(t, a, b)
	bye := a.signed(t, doc, "", uint64(time.Now().UnixMilli()), "")
	if err := a.t.PublishFlushed(ctx, encodePresence(t, bye)); err != nil {
		t.Fatal(err)
	}
	if a.g.trace.active.Load() != 0 || len(a.g.trace.waits) != 0 {
		t.Fatal("a wait is left behind")
	}
	_ = a.g.Close()
	_ = a.h.Close()
	waitFor(t, 10*time.Second, "b to get the goodbye", func() bool {
		g, _ := b.hd.got()
		return len(g) == 1 && reflect.DeepEqual(g[0], bye)
	})
}

// fakeRendezvous records what it is asked.
type fakeRendezvous struct {
	mu  sync.Mutex
	nss []string
}

func (f *fakeRendezvous) Advertise(_ context.Context, ns string, _ ...discovery.Option) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nss = append(f.nss, "advertise "+ns)
	return time.Minute, nil
}

func (f *fakeRendezvous) FindPeers(_ context.Context, ns string, _ ...discovery.Option) (<-chan peer.AddrInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nss = append(f.nss, "find "+ns)
	ch := make(chan peer.AddrInfo)
	close(ch)
	return ch, nil
}

// Presence topics stay out of the topic rendezvous (their peers are the
// document topic's); document topics go through.
func TestPresenceOffRendezvous(t *testing.T) {
	f := &fakeRendezvous{}
	d := presenceOffRendezvous{f}
	ctx := context.Background()
	for _, ns := range []string{"floodsub:" + PresenceTopicName("d"), PresenceTopicName("d")} {
		if ttl, err := d.Advertise(ctx, ns); err != nil || ttl != presenceAdvertTTL {
			t.Fatalf("advertise %s: %v %v", ns, ttl, err)
		}
		ch, err := d.FindPeers(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := <-ch; ok {
			t.Fatal("found a peer for a presence topic")
		}
	}
	doc := "floodsub:" + TopicName("x/concord/presence/y")
	if _, err := d.Advertise(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if _, err := d.FindPeers(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if want := []string{"advertise " + doc, "find " + doc}; !slices.Equal(f.nss, want) {
		t.Fatalf("asked %v, want %v", f.nss, want)
	}
}
