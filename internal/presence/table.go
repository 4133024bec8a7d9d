package presence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// Bounds of one document's presence.
const (
	// MaxEntries bounds the entries of one document (every peer's and
	// client's, own included). A new key past it is refused (ErrFull).
	MaxEntries = 256
	// MaxClients bounds the client entries of one peer in one document
	// (its own entry, without a client, does not count).
	MaxClients = 16
	// MaxTTL caps how long an entry lives without a refresh, whatever the
	// message's ttl_ms says.
	MaxTTL = 30 * time.Second
	// MaxSkew bounds how far a stamp may be from the receiver's clock: a
	// message further away is a replay of an old one (or a broken clock).
	MaxSkew = 10 * time.Minute
	// MaxRemembered bounds the removed keys whose last stamp is kept.
	MaxRemembered = 4096
)

// reason is a drop reason; its text is the metrics label.
type reason string

func (r reason) Error() string { return "presence: " + string(r) }

// Reason returns the metrics label of the drop.
func (r reason) Reason() string { return string(r) }

// Drop reasons. Each error has a Reason() method giving its label.
var (
	// ErrStale: the stamp is not above the last one seen for the key.
	ErrStale error = reason("stale")
	// ErrClock: the stamp is more than MaxSkew away from now.
	ErrClock error = reason("clock")
	// ErrFull: the document holds MaxEntries entries, or the peer
	// MaxClients clients.
	ErrFull error = reason("full")
	// ErrNotWriter: the peer is not in the document's writer allowlist
	// (checked by the caller, which knows the allowlist).
	ErrNotWriter error = reason("not_writer")
	// ErrTooLarge: the state exceeds wire.MaxPresenceState.
	ErrTooLarge error = reason("too_large")
	// ErrSelf: a message in this node's own name (its entries are local).
	ErrSelf error = reason("self")
)

// ReasonOf returns the metrics label of a drop error, wrapped or not (""
// for nil, "invalid" for an error that names no reason).
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var r reason
	if errors.As(err, &r) {
		return string(r)
	}
	return "invalid"
}

// Key returns the key of p's entry for client ("" for the peer's own).
func Key(p peer.ID, client string) string {
	if client == "" {
		return p.String()
	}
	return p.String() + "/" + client
}

// Entry is one entry of a table. State is shared, never modified: do not
// modify it.
type Entry struct {
	Key    string
	Peer   peer.ID
	Client string
	State  json.RawMessage
	// Stamp is the entry's last stamp.
	Stamp uint64
	// TTL is how long the entry lives without a refresh (0 for own
	// entries, which the node refreshes until it clears them).
	TTL time.Duration
	// Updated is when the entry was last set or refreshed.
	Updated time.Time
	// Self is true for this node's own entries.
	Self bool
}

// Event is a change of an entry: set (State non-nil) or gone (State nil:
// a goodbye, a Clear, or expiry).
type Event struct {
	Key    string
	Peer   peer.ID
	Client string
	State  json.RawMessage
	Self   bool
	// Expired is true when the entry went because its TTL passed.
	Expired bool
}

// Table is one document's presence. It is not safe for concurrent use.
type Table struct {
	self    peer.ID
	entries map[string]*Entry
	clients map[peer.ID]int // client entries per peer
	gone    *simplelru.LRU[string, uint64]
}

// New returns an empty table of a node whose peer ID is self.
func New(self peer.ID) *Table {
	gone, err := simplelru.NewLRU[string, uint64](MaxRemembered, nil)
	if err != nil {
		panic(err) // a positive constant size cannot fail
	}
	return &Table{self: self, entries: map[string]*Entry{}, clients: map[peer.ID]int{}, gone: gone}
}

// Len returns the number of entries.
func (t *Table) Len() int { return len(t.entries) }

// Entries returns every entry, sorted by key.
func (t *Table) Entries() []Entry {
	out := make([]Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Get returns the entry of key.
func (t *Table) Get(key string) (Entry, bool) {
	e, ok := t.entries[key]
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// lastStamp returns the last stamp seen for key: the live entry's, or
// the remembered one of a removed key while it is within MaxSkew of now
// (an older one needs no memory: the clock rule refuses its replays).
func (t *Table) lastStamp(key string, now time.Time) (uint64, bool) {
	if e, ok := t.entries[key]; ok {
		return e.Stamp, true
	}
	s, ok := t.gone.Peek(key)
	if !ok {
		return 0, false
	}
	if int64(s) < now.Add(-MaxSkew).UnixMilli() {
		t.gone.Remove(key)
		return 0, false
	}
	return s, true
}

// remember keeps the last stamp of a removed key.
func (t *Table) remember(key string, stamp uint64) {
	if old, ok := t.gone.Peek(key); ok && old >= stamp {
		return
	}
	t.gone.Add(key, stamp)
}

// Check reports whether Apply would take the verified message m at now,
// changing nothing: nil, or ErrSelf, ErrClock, ErrStale, ErrFull or
// ErrTooLarge. The writer allowlist is the caller's.
func (t *Table) Check(m *wire.Presence, now time.Time) error {
	p, err := wire.PeerOf(m.Origin)
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	return t.check(p, m, now)
}

func (t *Table) check(p peer.ID, m *wire.Presence, now time.Time) error {
	if p == t.self {
		return ErrSelf
	}
	if len(m.State) > wire.MaxPresenceState {
		return ErrTooLarge
	}
	ms := now.UnixMilli()
	if d := int64(m.Stamp) - ms; m.Stamp > 1<<62 || d > MaxSkew.Milliseconds() || -d > MaxSkew.Milliseconds() {
		return ErrClock
	}
	key := Key(p, m.Client)
	if last, ok := t.lastStamp(key, now); ok && m.Stamp <= last {
		return ErrStale
	}
	if _, live := t.entries[key]; !live && m.State != nil {
		return t.room(p, m.Client)
	}
	return nil
}

// room reports whether a new entry of p's client fits.
func (t *Table) room(p peer.ID, client string) error {
	if len(t.entries) >= MaxEntries || client != "" && t.clients[p] >= MaxClients {
		return ErrFull
	}
	return nil
}

// Apply applies the verified message m at now: it sets, refreshes or
// (a goodbye) clears the entry of m's origin peer and client. changed
// reports whether the entry's state changed (a refresh with the same
// state changes nothing but the entry's age); ev describes the change.
// The errors are Check's: the table is then unchanged.
func (t *Table) Apply(m *wire.Presence, now time.Time) (ev Event, changed bool, err error) {
	p, err := wire.PeerOf(m.Origin)
	if err != nil {
		return Event{}, false, fmt.Errorf("presence: %w", err)
	}
	if err := t.check(p, m, now); err != nil {
		return Event{}, false, err
	}
	key := Key(p, m.Client)
	if m.State == nil {
		ev, changed = t.remove(key, m.Stamp, false)
		return ev, changed, nil
	}
	ttl := min(time.Duration(min(m.TTL, uint64(MaxTTL.Milliseconds())))*time.Millisecond, MaxTTL)
	ev, changed = t.put(&Entry{Key: key, Peer: p, Client: m.Client, State: m.State, Stamp: m.Stamp, TTL: ttl, Updated: now})
	return ev, changed, nil
}

// put stores e (new, or replacing the entry of its key).
func (t *Table) put(e *Entry) (Event, bool) {
	old, ok := t.entries[e.Key]
	if !ok && e.Client != "" {
		t.clients[e.Peer]++
	}
	t.entries[e.Key] = e
	if ok && bytes.Equal(old.State, e.State) {
		return Event{}, false
	}
	return Event{Key: e.Key, Peer: e.Peer, Client: e.Client, State: e.State, Self: e.Self}, true
}

// remove clears key, remembering stamp as its last.
func (t *Table) remove(key string, stamp uint64, expired bool) (Event, bool) {
	e, ok := t.entries[key]
	if !ok {
		// A goodbye for a key not held is remembered only when its key is
		// remembered already: otherwise a peer could flush the memory of
		// others' goodbyes with goodbyes for keys of its own, and replay
		// an old message of theirs.
		if _, known := t.gone.Peek(key); known {
			t.remember(key, stamp)
		}
		return Event{}, false
	}
	stamp = max(stamp, e.Stamp)
	t.remember(key, stamp)
	delete(t.entries, key)
	if e.Client != "" {
		if t.clients[e.Peer]--; t.clients[e.Peer] <= 0 {
			delete(t.clients, e.Peer)
		}
	}
	return Event{Key: key, Peer: e.Peer, Client: e.Client, Self: e.Self, Expired: expired}, true
}

// NextStamp returns the stamp of the node's next message for its entry
// of client: now in Unix milliseconds, or one above the previous stamp
// when the clock has not moved past it (stamps of a key strictly
// increase). The stamp is recorded as the entry's (or the removed key's)
// last, so call it once per message.
func (t *Table) NextStamp(client string, now time.Time) uint64 {
	key := Key(t.self, client)
	s := uint64(max(now.UnixMilli(), 1))
	if last, ok := t.lastStamp(key, now); ok && s <= last {
		s = last + 1
	}
	if e, ok := t.entries[key]; ok {
		e.Stamp = s
	} else {
		t.remember(key, s)
	}
	return s
}

// Set sets the node's own entry of client (the node's own when empty) to
// state at now. Errors: ErrTooLarge for a state over
// wire.MaxPresenceState, one wrapping wire.ErrMalformed for a state that
// is not a compact JSON object or a bad client name (see
// wire.CheckPresenceState and wire.CheckPresenceClient), ErrFull when a
// new entry does not fit. changed reports whether the state changed.
func (t *Table) Set(client string, state json.RawMessage, now time.Time) (ev Event, changed bool, err error) {
	if len(state) > wire.MaxPresenceState {
		return Event{}, false, ErrTooLarge
	}
	if err := wire.CheckPresenceState(state); err != nil {
		return Event{}, false, fmt.Errorf("presence: %w", err)
	}
	if err := wire.CheckPresenceClient(client); err != nil {
		return Event{}, false, fmt.Errorf("presence: %w", err)
	}
	key := Key(t.self, client)
	old, live := t.entries[key]
	var stamp uint64
	if live {
		stamp = old.Stamp
	} else {
		if err := t.room(t.self, client); err != nil {
			return Event{}, false, err
		}
		stamp, _ = t.gone.Peek(key)
		t.gone.Remove(key)
	}
	ev, changed = t.put(&Entry{Key: key, Peer: t.self, Client: client, State: state, Stamp: stamp, Updated: now, Self: true})
	return ev, changed, nil
}

// Clear removes the node's own entry of client. changed reports whether
// there was one.
func (t *Table) Clear(client string) (Event, bool) {
	key := Key(t.self, client)
	e, ok := t.entries[key]
	if !ok {
		return Event{}, false
	}
	return t.remove(key, e.Stamp, false)
}

// Expire removes the remote entries not refreshed within their TTL
// before now and returns their events (Expired set), sorted by key.
func (t *Table) Expire(now time.Time) []Event {
	var out []Event
	for key, e := range t.entries {
		if !e.Self && !now.Before(e.Updated.Add(e.TTL)) {
			ev, _ := t.remove(key, e.Stamp, true)
			out = append(out, ev)
		}
	}
	slices.SortFunc(out, func(a, b Event) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Next returns when the first remote entry expires (false: none will).
func (t *Table) Next() (time.Time, bool) {
	var at time.Time
	found := false
	for _, e := range t.entries {
		if e.Self {
			continue
		}
		if x := e.Updated.Add(e.TTL); !found || x.Before(at) {
			at, found = x, true
		}
	}
	return at, found
}
