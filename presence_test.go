package concord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// presenceNode opens a node with presence TTL ttl.
func presenceNode(t *testing.T, ttl time.Duration, mod ...func(*Config)) *Node {
	t.Helper()
	return testNode(t, "", append([]func(*Config){func(c *Config) { c.PresenceTTL = ttl }}, mod...)...)
}

// presenceOf returns the state of key in d's presence ("" when absent).
func presenceOf(d *Doc, key string) string {
	for _, e := range d.Presence() {
		if e.Key == key {
			return string(e.State)
		}
	}
	return ""
}

// nextPresence waits for the next event of key on s (others are skipped).
func nextPresence(t *testing.T, s *PresenceSubscription, key string, d time.Duration) PresenceEvent {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-s.C:
			if !ok {
				t.Fatal("presence subscription closed")
			}
			if ev.Key == key {
				return ev
			}
		case <-timeout:
			t.Fatalf("no presence event of %s within %v", key, d)
		}
	}
}

// waitPresencePeers waits until each doc's presence topic has the others.
func waitPresencePeers(t *testing.T, docs ...*Doc) {
	t.Helper()
	waitFor(t, 10*time.Second, "presence topics joined", func() bool {
		for _, d := range docs {
			dp, err := d.n.presence.get(d.name)
			if err != nil {
				return false
			}
			peers := map[peer.ID]bool{}
			for _, p := range dp.topic.Peers() {
				peers[p] = true
			}
			for _, o := range docs {
				if o != d && !peers[o.n.ID()] {
					return false
				}
			}
		}
		return true
	})
}

// A sets its presence; B sees it (event and Presence), A sees its own;
// nothing of it reaches the document, its log or its outbox.
func TestPresenceSetSeenByPeer(t *testing.T) {
	a, b := presenceNode(t, 2*time.Second), presenceNode(t, 2*time.Second)
	connect(t, a, b)
	da, db := openDoc(t, a, "room"), openDoc(t, b, "room")
	waitPresencePeers(t, da, db)
	sa, sb := da.SubscribePresence(16), db.SubscribePresence(16)
	defer sa.Close()
	defer sb.Close()
	if err := da.SetPresence(map[string]any{"name": "ann", "cursor": 3}); err != nil {
		t.Fatal(err)
	}
	key := a.ID().String()
	want := `{"cursor":3,"name":"ann"}`
	if ev := nextPresence(t, sa, key, 5*time.Second); string(ev.State) != want || !ev.Self || ev.Doc != "room" || ev.Peer != a.ID() {
		t.Fatalf("own event %+v", ev)
	}
	if ev := nextPresence(t, sb, key, 5*time.Second); string(ev.State) != want || ev.Self || ev.Peer != a.ID() || ev.Client != "" {
		t.Fatalf("remote event %+v", ev)
	}
	es := db.Presence()
	if len(es) != 1 || es[0].Key != key || string(es[0].State) != want || es[0].Self || es[0].Age < 0 || es[0].Age > 5*time.Second {
		t.Fatalf("B's presence %+v", es)
	}
	if es := da.Presence(); len(es) != 1 || !es[0].Self || string(es[0].State) != want {
		t.Fatalf("A's presence %+v", es)
	}
	// A client entry of B, seen by A; both lists are sorted by key.
	if err := db.SetClientPresence("tab-1", json.RawMessage(`{ "name" : "bo" }`), 0); err != nil {
		t.Fatal(err)
	}
	bkey := b.ID().String() + "/tab-1"
	if ev := nextPresence(t, sa, bkey, 5*time.Second); string(ev.State) != `{"name":"bo"}` || ev.Client != "tab-1" || ev.Peer != b.ID() {
		t.Fatalf("client event %+v", ev)
	}
	es = da.Presence()
	if len(es) != 2 || es[0].Key > es[1].Key {
		t.Fatalf("A's presence %+v", es)
	}
	// Presence is not the document.
	for _, d := range []*Doc{da, db} {
		if st := d.Status(); string(d.JSON()) != "{}" || len(st.Version) != 0 || st.Outbox != 0 {
			t.Fatalf("presence reached the document: %s %+v", d.JSON(), st)
		}
	}
	if n := counterValue(t, b, "concord_presence_updates_total", map[string]string{"direction": "in"}); n < 1 {
		t.Fatalf("updates in %v", n)
	}
	// A counts a message out when its publish returns, which may be after
	// B has it: wait for the count.
	waitFor(t, 5*time.Second, "A's presence counted out", func() bool {
		return counterValue(t, a, "concord_presence_updates_total", map[string]string{"direction": "out"}) >= 1 &&
			counterValue(t, a, "concord_presence_sent_bytes_total", nil) >= 150
	})
	if n := counterValue(t, a, "concord_presence_entries", map[string]string{"doc": "room"}); n != 2 {
		t.Fatalf("A's entries gauge %v", n)
	}
}

// A burst of updates is coalesced: at most one message per 50 ms per key,
// and the last state wins.
func TestPresenceCoalesced(t *testing.T) {
	a, b := presenceNode(t, 30*time.Second), presenceNode(t, 30*time.Second)
	connect(t, a, b)
	da, db := openDoc(t, a, "room"), openDoc(t, b, "room")
	waitPresencePeers(t, da, db)
	start := time.Now()
	const n = 200
	for i := range n {
		if err := da.SetPresence(map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	last := fmt.Sprintf(`{"i":%d}`, n-1)
	waitFor(t, 10*time.Second, "B to see the last state", func() bool { return presenceOf(db, a.ID().String()) == last })
	elapsed := time.Since(start)
	sent := counterValue(t, a, "concord_presence_updates_total", map[string]string{"direction": "out"})
	if limit := float64(elapsed/presenceCoalesce) + 2; sent > limit || sent >= n {
		t.Fatalf("%v messages for %d updates in %v (limit %v)", sent, n, elapsed, limit)
	}
}

// Clear says goodbye: B sees the entry go at once, long before the TTL.
func TestPresenceGoodbyeOnClear(t *testing.T) {
	a, b := presenceNode(t, 30*time.Second), presenceNode(t, 30*time.Second)
	connect(t, a, b)
	da, db := openDoc(t, a, "room"), openDoc(t, b, "room")
	waitPresencePeers(t, da, db)
	sb := db.SubscribePresence(16)
	defer sb.Close()
	if err := da.SetPresence(map[string]string{"name": "ann"}); err != nil {
		t.Fatal(err)
	}
	key := a.ID().String()
	nextPresence(t, sb, key, 5*time.Second)
	start := time.Now()
	if err := da.ClearPresence(); err != nil {
		t.Fatal(err)
	}
	if ev := nextPresence(t, sb, key, 5*time.Second); ev.State != nil {
		t.Fatalf("after clear: %+v", ev)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("goodbye took %v", took)
	}
	if es := db.Presence(); len(es) != 0 {
		t.Fatalf("B still sees %+v", es)
	}
	if es := da.Presence(); len(es) != 0 {
		t.Fatalf("A still sees %+v", es)
	}
	if err := da.ClearPresence(); err != nil { // nothing to clear
		t.Fatal(err)
	}
}

// A peer that stops without a goodbye (its host closed under it) vanishes
// from B's view once its TTL passes; until then its refreshes keep it.
func TestPresenceExpiresAfterCrash(t *testing.T) {
	const ttl = time.Second
	a, b := presenceNode(t, ttl), presenceNode(t, ttl)
	connect(t, a, b)
	da, db := openDoc(t, a, "room"), openDoc(t, b, "room")
	waitPresencePeers(t, da, db)
	sb := db.SubscribePresence(64)
	defer sb.Close()
	if err := da.SetPresence(map[string]string{"name": "ann"}); err != nil {
		t.Fatal(err)
	}
	key := a.ID().String()
	nextPresence(t, sb, key, 5*time.Second)
	// Refreshes (every ttl/3) keep the entry past its TTL.
	waitFor(t, 10*time.Second, "refreshes", func() bool {
		return counterValue(t, a, "concord_presence_updates_total", map[string]string{"direction": "out"}) >= 4
	})
	if presenceOf(db, key) == "" {
		t.Fatal("the entry expired while refreshed")
	}
	_ = a.Host().Close() // a crash: no goodbye gets out
	start := time.Now()
	if ev := nextPresence(t, sb, key, 5*time.Second); ev.State != nil {
		t.Fatalf("event %+v", ev)
	}
	if took := time.Since(start); took > ttl+time.Second {
		t.Fatalf("expired after %v, TTL %v", took, ttl)
	}
	if presenceOf(db, key) != "" {
		t.Fatal("B still shows the entry")
	}
}

// A peer that joins late sees everyone's presence well before one refresh
// interval (TTL/3 = 10 s here): the others refresh early when it joins.
func TestPresenceLateJoiner(t *testing.T) {
	const ttl = 30 * time.Second
	a, b := presenceNode(t, ttl), presenceNode(t, ttl)
	connect(t, a, b)
	da, db := openDoc(t, a, "room"), openDoc(t, b, "room")
	waitPresencePeers(t, da, db)
	if err := da.SetPresence(map[string]string{"name": "ann"}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetClientPresence("tab", map[string]string{"name": "bo"}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "A and B to see each other", func() bool {
		return len(da.Presence()) == 2 && len(db.Presence()) == 2
	})
	c := presenceNode(t, ttl)
	dc := openDoc(t, c, "room")
	start := time.Now()
	connect(t, c, a)
	connect(t, c, b)
	waitFor(t, 5*time.Second, "C to see A and B", func() bool { return len(dc.Presence()) == 2 })
	if took := time.Since(start); took > ttl/3/2 {
		t.Fatalf("C saw everyone after %v; a refresh interval is %v", took, ttl/3)
	}
}

// Forged presence is rejected and counted: another peer's origin under
// A's signature, a broken signature, a replay of an old stamp and a stamp
// far from the clock. B keeps A's real state.
func TestPresenceForgeries(t *testing.T) {
	a, b, x := presenceNode(t, 30*time.Second), presenceNode(t, 30*time.Second), presenceNode(t, 30*time.Second)
	connect(t, a, b)
	da, db := openDoc(t, a, "room"), openDoc(t, b, "room")
	waitPresencePeers(t, da, db)
	if err := da.SetPresence(map[string]string{"name": "ann"}); err != nil {
		t.Fatal(err)
	}
	key := a.ID().String()
	waitFor(t, 5*time.Second, "B to see A", func() bool { return presenceOf(db, key) == `{"name":"ann"}` })
	dp, err := a.presence.get("room")
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(time.Now().UnixMilli())
	sign := func(p *wire.Presence) *wire.Presence {
		if err := wire.SignPresence(a.key, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	publish := func(p *wire.Presence) {
		t.Helper()
		b, err := wire.EncodePresence(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := dp.topic.Publish(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	msg := func(stamp uint64, state string) *wire.Presence {
		return &wire.Presence{Doc: "room", Origin: a.Replica(), Stamp: stamp, TTL: 30_000, State: []byte(state)}
	}
	// X's origin, A's signature.
	forged := msg(now, `{"name":"x"}`)
	forged.Origin = x.Replica()
	forged.Sig = sign(msg(now, `{"name":"x"}`)).Sig
	publish(forged)
	bad := sign(msg(now+10_000, `{"name":"mallory"}`))
	bad.Sig[5] ^= 1
	publish(bad)
	publish(sign(msg(1, `{"name":"old"}`)))                                    // a replay from long ago
	publish(sign(msg(now-uint64(time.Minute.Milliseconds()), `{"name":"x"}`))) // older than A's stamp
	waitFor(t, 10*time.Second, "B to count the forgeries", func() bool {
		return counterValue(t, b, "concord_messages_rejected_total", map[string]string{"reason": "presence_bad_signature"}) == 2 &&
			counterValue(t, b, "concord_dropped_total", map[string]string{"queue": "presence", "reason": "clock"}) == 1 &&
			counterValue(t, b, "concord_dropped_total", map[string]string{"queue": "presence", "reason": "stale"}) == 1
	})
	if got := presenceOf(db, key); got != `{"name":"ann"}` {
		t.Fatalf("B shows %s", got)
	}
	if got := presenceOf(db, x.ID().String()); got != "" {
		t.Fatalf("B shows X's forged entry %s", got)
	}
}

// A peer outside a document's writer allowlist has its presence rejected
// (counted), and cannot set its own.
func TestPresenceNotWriter(t *testing.T) {
	a, b := presenceNode(t, 30*time.Second), presenceNode(t, 30*time.Second)
	connect(t, a, b)
	da := openDoc(t, a, "room")
	db := openDoc(t, b, "room", WithWriters(b.ID()))
	waitPresencePeers(t, da, db)
	if err := da.SetPresence(map[string]string{"name": "ann"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "B to refuse A's presence", func() bool {
		return counterValue(t, b, "concord_dropped_total", map[string]string{"queue": "presence", "reason": "not_writer"}) >= 1
	})
	if es := db.Presence(); len(es) != 0 {
		t.Fatalf("B shows %+v", es)
	}
	dc := openDoc(t, a, "closed", WithWriters(b.ID()))
	if err := dc.SetPresence(map[string]string{"name": "ann"}); !errors.Is(err, ErrNotWriter) {
		t.Fatalf("SetPresence outside the allowlist: %v", err)
	}
}

// The API refuses what peers would refuse.
func TestPresenceAPIBounds(t *testing.T) {
	a := presenceNode(t, time.Second)
	d := openDoc(t, a, "room")
	big := map[string]string{"s": strings.Repeat("x", MaxPresenceBytes)}
	for _, c := range []struct {
		client string
		v      any
		err    error
	}{
		{"", big, ErrPresenceTooLarge},
		{"", []int{1}, ErrPresenceInvalid},
		{"", "text", ErrPresenceInvalid},
		{"", nil, ErrPresenceInvalid},
		{"", json.RawMessage(`{"a":`), ErrPresenceInvalid},
		{"", json.RawMessage("{\"a\":\"\xff\"}"), ErrPresenceInvalid},
		{"", func() {}, ErrPresenceInvalid},
		{"a/b", map[string]int{}, ErrPresenceInvalid},
		{strings.Repeat("c", 65), map[string]int{}, ErrPresenceInvalid},
	} {
		if err := d.SetClientPresence(c.client, c.v, 0); !errors.Is(err, c.err) {
			t.Errorf("set %q %T: %v, want %v", c.client, c.v, err, c.err)
		}
	}
	// Exactly MaxPresenceBytes once compacted is fine.
	fits := json.RawMessage(`{"s": "` + strings.Repeat("x", MaxPresenceBytes-8) + `"}`)
	if err := d.SetPresence(fits); err != nil {
		t.Fatalf("a state of %d bytes: %v", MaxPresenceBytes, err)
	}
	for i := range MaxPresenceClients {
		if err := d.SetClientPresence(fmt.Sprintf("tab%d", i), map[string]int{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SetClientPresence("tab-over", map[string]int{}, 0); !errors.Is(err, ErrPresenceFull) {
		t.Fatalf("client %d: %v", MaxPresenceClients+1, err)
	}
	if err := d.ClearClientPresence("a/b"); !errors.Is(err, ErrPresenceInvalid) {
		t.Fatalf("clear of a bad client: %v", err)
	}
	if len(d.Presence()) != MaxPresenceClients+1 {
		t.Fatalf("%d entries", len(d.Presence()))
	}
}

// A client lease that runs out clears the entry with a goodbye: B sees it
// go long before the TTL; a Set before the lease ends renews it.
func TestPresenceClientLease(t *testing.T) {
	a, b := presenceNode(t, 30*time.Second), presenceNode(t, 30*time.Second)
	connect(t, a, b)
	da, db := openDoc(t, a, "room"), openDoc(t, b, "room")
	waitPresencePeers(t, da, db)
	sa, sb := da.SubscribePresence(16), db.SubscribePresence(16)
	defer sa.Close()
	defer sb.Close()
	const lease = 400 * time.Millisecond
	key := a.ID().String() + "/tab"
	if err := da.SetClientPresence("tab", map[string]int{"n": 1}, lease); err != nil {
		t.Fatal(err)
	}
	nextPresence(t, sb, key, 5*time.Second)
	start := time.Now()
	if err := da.SetClientPresence("tab", map[string]int{"n": 1}, lease); err != nil { // renewed, same state
		t.Fatal(err)
	}
	if ev := nextPresence(t, sb, key, 5*time.Second); ev.State != nil {
		t.Fatalf("event %+v", ev)
	}
	if took := time.Since(start); took < lease || took > lease+3*time.Second {
		t.Fatalf("the lease ran out after %v, lease %v", took, lease)
	}
	if ev := nextPresence(t, sa, key, time.Second); ev.State == nil {
		t.Fatalf("own events: %+v, want the set first", ev)
	}
	if ev := nextPresence(t, sa, key, time.Second); ev.State != nil || !ev.Self {
		t.Fatalf("own event of the lease's end: %+v", ev)
	}
}

// Node.Close says goodbye: B sees A's entries go within a few seconds,
// not the TTL.
func TestPresenceGoodbyeOnClose(t *testing.T) {
	a, b := presenceNode(t, 30*time.Second), presenceNode(t, 30*time.Second)
	connect(t, a, b)
	da, db := openDoc(t, a, "room"), openDoc(t, b, "room")
	waitPresencePeers(t, da, db)
	if err := da.SetPresence(map[string]string{"name": "ann"}); err != nil {
		t.Fatal(err)
	}
	if err := da.SetClientPresence("tab", map[string]string{"name": "tab"}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B to see A's entries", func() bool { return len(db.Presence()) == 2 })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("B: %+v in %v stale %v clock %v out(A) %v publish-drop(A) %v", db.Presence(),
				counterValue(t, b, "concord_presence_updates_total", map[string]string{"direction": "in"}),
				counterValue(t, b, "concord_dropped_total", map[string]string{"queue": "presence", "reason": "stale"}),
				counterValue(t, b, "concord_dropped_total", map[string]string{"queue": "presence", "reason": "clock"}),
				counterValue(t, a, "concord_presence_updates_total", map[string]string{"direction": "out"}),
				counterValue(t, a, "concord_dropped_total", map[string]string{"queue": "presence", "reason": "publish"}))
		}
	}()
	waitFor(t, 5*time.Second, "A's goodbyes", func() bool { return len(db.Presence()) == 0 })
	if err := da.SetPresence(map[string]int{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("set after close: %v", err)
	}
	if da.Presence() != nil {
		t.Fatal("presence after close")
	}
	s := da.SubscribePresence(1)
	if _, ok := <-s.C; ok {
		t.Fatal("a subscription after close is open")
	}
	s.Close()
}

// A full subscription drops events and counts them.
func TestPresenceSubscriptionBounded(t *testing.T) {
	a := presenceNode(t, time.Second)
	d := openDoc(t, a, "room")
	s := d.SubscribePresence(1)
	for i := range 5 {
		if err := d.SetPresence(map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	if s.Missed() != 4 {
		t.Fatalf("missed %d", s.Missed())
	}
	if n := counterValue(t, a, "concord_dropped_total", map[string]string{"queue": "presence", "reason": "subscription_full"}); n != 4 {
		t.Fatalf("dropped metric %v", n)
	}
	s.Close()
	s.Close()
	if _, ok := <-s.C; !ok {
		t.Fatal("the buffered event is gone")
	}
	if _, ok := <-s.C; ok {
		t.Fatal("C open after Close")
	}
}
