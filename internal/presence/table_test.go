package presence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// testPeer returns the peer ID of a deterministic Ed25519 key.
func testPeer(t testing.TB, i int) peer.ID {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	binary.BigEndian.PutUint64(seed, uint64(i)+1)
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var t0 = time.UnixMilli(1_750_000_000_000)

func ms(d time.Duration) uint64 { return uint64(t0.Add(d).UnixMilli()) }

// msg is a message of p's client with stamp at t0+at (a goodbye when state is "").
func msg(p peer.ID, client string, at time.Duration, ttl time.Duration, state string) *wire.Presence {
	m := &wire.Presence{Doc: "d", Origin: wire.ReplicaFor(p, 1), Client: client, Stamp: ms(at), TTL: uint64(ttl.Milliseconds())}
	if state != "" {
		m.State = []byte(state)
	}
	return m
}

func mustApply(t *testing.T, tb *Table, m *wire.Presence, now time.Time) (Event, bool) {
	t.Helper()
	ev, changed, err := tb.Apply(m, now)
	if err != nil {
		t.Fatalf("apply %+v: %v", m, err)
	}
	return ev, changed
}

func TestApplySetRefreshGoodbye(t *testing.T) {
	self, a, b := testPeer(t, 0), testPeer(t, 1), testPeer(t, 2)
	tb := New(self)
	ev, changed := mustApply(t, tb, msg(a, "", 0, 10*time.Second, `{"n":1}`), t0)
	if !changed || ev.Key != a.String() || ev.Peer != a || ev.Client != "" || string(ev.State) != `{"n":1}` || ev.Self {
		t.Fatalf("set: %+v %v", ev, changed)
	}
	// A refresh with the same state changes nothing but the age.
	if _, changed := mustApply(t, tb, msg(a, "", time.Second, 10*time.Second, `{"n":1}`), t0.Add(time.Second)); changed {
		t.Fatal("a refresh reported a change")
	}
	if e, _ := tb.Get(a.String()); !e.Updated.Equal(t0.Add(time.Second)) || e.Stamp != ms(time.Second) {
		t.Fatalf("refresh did not update the entry: %+v", e)
	}
	ev, changed = mustApply(t, tb, msg(a, "", 2*time.Second, 10*time.Second, `{"n":2}`), t0.Add(2*time.Second))
	if !changed || string(ev.State) != `{"n":2}` {
		t.Fatalf("update: %+v %v", ev, changed)
	}
	mustApply(t, tb, msg(b, "tab", 0, 10*time.Second, `{"b":1}`), t0)
	mustApply(t, tb, msg(a, "x", 0, 10*time.Second, `{"x":1}`), t0)
	var keys []string
	for _, e := range tb.Entries() {
		keys = append(keys, e.Key)
	}
	want := []string{a.String(), a.String() + "/x", b.String() + "/tab"}
	if strings.Compare(a.String(), b.String()) > 0 {
		want = []string{b.String() + "/tab", a.String(), a.String() + "/x"}
	}
	if fmt.Sprint(keys) != fmt.Sprint(want) || tb.Len() != 3 {
		t.Fatalf("entries %v, want %v", keys, want)
	}
	// A goodbye clears the entry at once.
	ev, changed = mustApply(t, tb, msg(a, "", 3*time.Second, 10*time.Second, ""), t0.Add(3*time.Second))
	if !changed || ev.Key != a.String() || ev.State != nil || ev.Expired {
		t.Fatalf("goodbye: %+v %v", ev, changed)
	}
	if _, ok := tb.Get(a.String()); ok || tb.Len() != 2 {
		t.Fatal("the entry survived its goodbye")
	}
	// A goodbye of a key the table does not hold is taken, and changes nothing.
	if _, changed := mustApply(t, tb, msg(testPeer(t, 3), "", 0, time.Second, ""), t0); changed {
		t.Fatal("a goodbye of an unknown key reported a change")
	}
}

func TestStale(t *testing.T) {
	a := testPeer(t, 1)
	tb := New(testPeer(t, 0))
	mustApply(t, tb, msg(a, "c", 5*time.Second, 10*time.Second, `{"n":5}`), t0)
	for _, at := range []time.Duration{5 * time.Second, 4 * time.Second} {
		for _, state := range []string{`{"n":4}`, ""} {
			m := msg(a, "c", at, 10*time.Second, state)
			if err := tb.Check(m, t0); !errors.Is(err, ErrStale) {
				t.Errorf("check stamp %v state %q: %v", at, state, err)
			}
			if _, _, err := tb.Apply(m, t0); !errors.Is(err, ErrStale) || ReasonOf(err) != "stale" {
				t.Errorf("apply stamp %v state %q: %v", at, state, err)
			}
		}
	}
	if e, _ := tb.Get(Key(a, "c")); string(e.State) != `{"n":5}` {
		t.Fatalf("a stale message changed the entry: %+v", e)
	}
	// Another client of the same peer has its own stamps.
	mustApply(t, tb, msg(a, "d", time.Second, 10*time.Second, `{"d":1}`), t0)
}

// A replayed message cannot bring back an entry that said goodbye or
// expired: the removed key's last stamp is remembered, and once that
// stamp is older than MaxSkew the clock rule refuses the replay.
func TestReplayAfterGoodbyeAndExpiry(t *testing.T) {
	a := testPeer(t, 1)
	tb := New(testPeer(t, 0))
	set := msg(a, "", 0, 10*time.Second, `{"n":1}`)
	mustApply(t, tb, set, t0)
	mustApply(t, tb, msg(a, "", time.Millisecond, 10*time.Second, ""), t0)
	if _, _, err := tb.Apply(set, t0.Add(time.Minute)); !errors.Is(err, ErrStale) {
		t.Fatalf("replay after goodbye: %v", err)
	}
	if _, _, err := tb.Apply(set, t0.Add(MaxSkew+time.Second)); !errors.Is(err, ErrClock) {
		t.Fatalf("replay after MaxSkew: %v", err)
	}
	b := testPeer(t, 2)
	setB := msg(b, "", 0, time.Second, `{"b":1}`)
	mustApply(t, tb, setB, t0)
	if evs := tb.Expire(t0.Add(time.Second)); len(evs) != 1 || evs[0].Key != b.String() || !evs[0].Expired || evs[0].State != nil {
		t.Fatalf("expiry: %+v", evs)
	}
	if _, _, err := tb.Apply(setB, t0.Add(2*time.Second)); !errors.Is(err, ErrStale) {
		t.Fatalf("replay after expiry: %v", err)
	}
	// A newer message brings the entry back.
	if _, changed := mustApply(t, tb, msg(b, "", 2*time.Second, time.Second, `{"b":2}`), t0.Add(2*time.Second)); !changed {
		t.Fatal("a newer message after expiry was not a change")
	}
}

// The memory of removed keys is bounded: past MaxRemembered, the key
// removed longest ago is forgotten first.
func TestRememberedBound(t *testing.T) {
	a := testPeer(t, 1)
	tb := New(testPeer(t, 0))
	for i := range MaxRemembered + 1 {
		c := fmt.Sprintf("c%d", i)
		mustApply(t, tb, msg(a, c, time.Second, time.Second, `{}`), t0)
		mustApply(t, tb, msg(a, c, 2*time.Second, time.Second, ""), t0)
	}
	if tb.gone.Len() != MaxRemembered {
		t.Fatalf("remembers %d keys, bound %d", tb.gone.Len(), MaxRemembered)
	}
	if err := tb.Check(msg(a, "c0", 0, time.Second, `{}`), t0); err != nil {
		t.Fatalf("the oldest removed key is still remembered: %v", err)
	}
	if err := tb.Check(msg(a, "c1", 0, time.Second, `{}`), t0); !errors.Is(err, ErrStale) {
		t.Fatalf("a recent removed key is forgotten: %v", err)
	}
}

func TestClock(t *testing.T) {
	a := testPeer(t, 1)
	tb := New(testPeer(t, 0))
	for _, at := range []time.Duration{MaxSkew + time.Millisecond, -MaxSkew - time.Millisecond} {
		for _, state := range []string{`{}`, ""} {
			if _, _, err := tb.Apply(msg(a, "", at, time.Second, state), t0); !errors.Is(err, ErrClock) || ReasonOf(err) != "clock" {
				t.Errorf("stamp now%+v state %q: %v", at, state, err)
			}
		}
	}
	huge := msg(a, "", 0, time.Second, `{}`)
	huge.Stamp = 1<<64 - 1
	if _, _, err := tb.Apply(huge, t0); !errors.Is(err, ErrClock) {
		t.Errorf("stamp 2^64-1: %v", err)
	}
	if tb.Len() != 0 {
		t.Fatal("a refused message left an entry")
	}
	mustApply(t, tb, msg(a, "", -MaxSkew, time.Second, `{}`), t0)
	mustApply(t, tb, msg(a, "", MaxSkew, time.Second, `{}`), t0)
}

func TestFull(t *testing.T) {
	self := testPeer(t, 0)
	tb := New(self)
	// Clients of one peer.
	a := testPeer(t, 1)
	for i := range MaxClients {
		mustApply(t, tb, msg(a, fmt.Sprintf("tab%d", i), 0, time.Second, `{}`), t0)
	}
	over := msg(a, "tab-over", 0, time.Second, `{}`)
	if _, _, err := tb.Apply(over, t0); !errors.Is(err, ErrFull) || ReasonOf(err) != "full" {
		t.Fatalf("client %d: %v", MaxClients+1, err)
	}
	if _, _, err := tb.Set("mine", json.RawMessage(`{}`), t0); err != nil {
		t.Fatalf("another peer's clients filled ours: %v", err)
	}
	mustApply(t, tb, msg(a, "", 0, time.Second, `{}`), t0)       // the peer's own entry is no client
	mustApply(t, tb, msg(a, "tab-over", 0, time.Second, ""), t0) // goodbyes always fit
	mustApply(t, tb, msg(a, "tab0", time.Second, time.Second, ""), t0)
	mustApply(t, tb, msg(a, "tab-over", 2*time.Second, time.Second, `{}`), t0) // room again
	// Entries of the document.
	for i := 2; tb.Len() < MaxEntries; i++ {
		mustApply(t, tb, msg(testPeer(t, i), "", 0, time.Second, `{}`), t0)
	}
	late := testPeer(t, 10_000)
	if _, _, err := tb.Apply(msg(late, "", 0, time.Second, `{}`), t0); !errors.Is(err, ErrFull) {
		t.Fatalf("entry %d: %v", MaxEntries+1, err)
	}
	if _, _, err := tb.Set("another", json.RawMessage(`{}`), t0); !errors.Is(err, ErrFull) {
		t.Fatalf("own entry %d: %v", MaxEntries+1, err)
	}
	// Entries already held still update.
	if _, changed := mustApply(t, tb, msg(a, "", time.Second, time.Second, `{"n":1}`), t0); !changed {
		t.Fatal("update of a held entry in a full table")
	}
	if tb.Len() != MaxEntries {
		t.Fatalf("%d entries", tb.Len())
	}
}

func TestSelfAndSize(t *testing.T) {
	self := testPeer(t, 0)
	tb := New(self)
	if _, _, err := tb.Apply(msg(self, "", 0, time.Second, `{}`), t0); !errors.Is(err, ErrSelf) || ReasonOf(err) != "self" {
		t.Fatalf("own message: %v", err)
	}
	big := msg(testPeer(t, 1), "", 0, time.Second, `{"a":"`+strings.Repeat("x", wire.MaxPresenceState)+`"}`)
	if _, _, err := tb.Apply(big, t0); !errors.Is(err, ErrTooLarge) || ReasonOf(err) != "too_large" {
		t.Fatalf("oversize state: %v", err)
	}
	bad := msg(testPeer(t, 1), "", 0, time.Second, `{}`)
	bad.Origin = "nonsense"
	if _, _, err := tb.Apply(bad, t0); !errors.Is(err, wire.ErrBadReplica) {
		t.Fatalf("bad origin: %v", err)
	}
	if tb.Len() != 0 {
		t.Fatal("refused messages left entries")
	}
	if ReasonOf(nil) != "" || ReasonOf(errors.New("x")) != "invalid" || ReasonOf(fmt.Errorf("w: %w", ErrNotWriter)) != "not_writer" {
		t.Fatal("ReasonOf")
	}
}

// Entries live min(ttl_ms, MaxTTL) after their last update; own entries
// never expire; Next says when the first one will.
func TestExpire(t *testing.T) {
	self, a, b := testPeer(t, 0), testPeer(t, 1), testPeer(t, 2)
	tb := New(self)
	if _, ok := tb.Next(); ok {
		t.Fatal("Next of an empty table")
	}
	if _, _, err := tb.Set("", json.RawMessage(`{"me":1}`), t0); err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.Next(); ok {
		t.Fatal("an own entry expires")
	}
	mustApply(t, tb, msg(a, "", 0, 2*time.Second, `{}`), t0)
	mustApply(t, tb, msg(b, "", 0, time.Hour, `{}`), t0) // capped at MaxTTL
	if at, ok := tb.Next(); !ok || !at.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("Next = %v %v", at, ok)
	}
	if evs := tb.Expire(t0.Add(2*time.Second - time.Millisecond)); len(evs) != 0 {
		t.Fatalf("expired early: %+v", evs)
	}
	// A refresh restarts the entry's time.
	mustApply(t, tb, msg(a, "", time.Second, 2*time.Second, `{}`), t0.Add(time.Second))
	if evs := tb.Expire(t0.Add(2 * time.Second)); len(evs) != 0 {
		t.Fatalf("refreshed entry expired: %+v", evs)
	}
	evs := tb.Expire(t0.Add(3 * time.Second))
	if len(evs) != 1 || evs[0].Peer != a || !evs[0].Expired {
		t.Fatalf("expiry of a: %+v", evs)
	}
	if at, _ := tb.Next(); !at.Equal(t0.Add(MaxTTL)) {
		t.Fatalf("ttl not capped: next %v", at)
	}
	if evs := tb.Expire(t0.Add(MaxTTL - time.Millisecond)); len(evs) != 0 {
		t.Fatalf("capped entry expired early: %+v", evs)
	}
	if evs := tb.Expire(t0.Add(MaxTTL)); len(evs) != 1 || evs[0].Peer != b {
		t.Fatalf("expiry of b: %+v", evs)
	}
	if evs := tb.Expire(t0.Add(time.Hour)); len(evs) != 0 || tb.Len() != 1 {
		t.Fatalf("own entry expired: %+v", evs)
	}
}

func TestOwnEntries(t *testing.T) {
	self := testPeer(t, 0)
	tb := New(self)
	ev, changed, err := tb.Set("tab", json.RawMessage(`{"c":1}`), t0)
	if err != nil || !changed || ev.Key != self.String()+"/tab" || !ev.Self || ev.Peer != self {
		t.Fatalf("set: %+v %v %v", ev, changed, err)
	}
	if _, changed, _ := tb.Set("tab", json.RawMessage(`{"c":1}`), t0); changed {
		t.Fatal("same state reported a change")
	}
	// Stamps strictly increase, also when the clock does not move or goes back.
	var last uint64
	for i, now := range []time.Time{t0, t0, t0, t0.Add(-time.Second), t0.Add(time.Second)} {
		s := tb.NextStamp("tab", now)
		if s <= last {
			t.Fatalf("stamp %d: %d after %d", i, s, last)
		}
		last = s
	}
	if last != ms(time.Second) {
		t.Fatalf("stamp %d does not follow the clock (%d)", last, ms(time.Second))
	}
	ev, changed = tb.Clear("tab")
	if !changed || ev.State != nil || !ev.Self {
		t.Fatalf("clear: %+v %v", ev, changed)
	}
	if _, changed := tb.Clear("tab"); changed {
		t.Fatal("a second clear reported a change")
	}
	// The goodbye's stamp, and the next set's, stay above.
	if s := tb.NextStamp("tab", t0); s <= last {
		t.Fatalf("goodbye stamp %d after %d", s, last)
	} else {
		last = s
	}
	if _, _, err := tb.Set("tab", json.RawMessage(`{"c":2}`), t0); err != nil {
		t.Fatal(err)
	}
	if s := tb.NextStamp("tab", t0); s <= last {
		t.Fatalf("stamp after a new set %d, previous %d", s, last)
	}
	// Invalid states and clients.
	for _, c := range []struct {
		client, state string
		err           error
	}{
		{"", `[1]`, wire.ErrMalformed},
		{"", `{"a": 1}`, wire.ErrMalformed},
		{"", ``, wire.ErrMalformed},
		{"a/b", `{}`, wire.ErrMalformed},
		{"", `{"a":"` + strings.Repeat("x", wire.MaxPresenceState) + `"}`, ErrTooLarge},
	} {
		if _, _, err := tb.Set(c.client, json.RawMessage(c.state), t0); !errors.Is(err, c.err) {
			t.Errorf("set %q %q: %v, want %v", c.client, c.state, err, c.err)
		}
	}
	// Entries hand out states that are not modified later.
	es := tb.Entries()
	if len(es) != 1 || !bytes.Equal(es[0].State, []byte(`{"c":2}`)) || es[0].TTL != 0 {
		t.Fatalf("entries %+v", es)
	}
}

// Goodbyes for keys nobody held are not remembered: a peer cannot flush
// the memory of others' goodbyes with goodbyes of its own and then replay
// an old message of theirs.
func TestGoodbyesOfUnknownKeysAreNotRemembered(t *testing.T) {
	a, b := testPeer(t, 1), testPeer(t, 2)
	tb := New(testPeer(t, 0))
	old := msg(b, "", time.Second, time.Second, `{"b":1}`)
	mustApply(t, tb, old, t0)
	mustApply(t, tb, msg(b, "", 2*time.Second, time.Second, ""), t0)
	for i := range MaxRemembered + 1 {
		_, _, _ = tb.Apply(msg(a, fmt.Sprintf("c%d", i), 3*time.Second, time.Second, ""), t0)
	}
	if _, _, err := tb.Apply(old, t0); !errors.Is(err, ErrStale) {
		t.Fatalf("the replay came back after a flood of goodbyes: %v", err)
	}
}
