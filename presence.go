package concord

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/internal/presence"
	"github.com/concord-p2p/concord/wire"
)

// Presence is ephemeral per-document state — who is here, their name,
// colour, cursor — that this node and its clients (browser tabs) publish
// and see from everyone else on the document. It is never stored, never
// part of the document and never synced: entries travel on the document's
// presence topic, signed by their peer, and vanish from every view within
// Config.PresenceTTL (at most 30 s) after their owner stops refreshing
// them, at once when it says goodbye (Clear, a lease that ran out,
// Node.Close).

// Presence bounds.
const (
	// MaxPresenceBytes bounds one entry's state (its compact JSON).
	MaxPresenceBytes = wire.MaxPresenceState
	// MaxPresenceEntries bounds the entries of one document (every peer's
	// and client's, own included).
	MaxPresenceEntries = presence.MaxEntries
	// MaxPresenceClients bounds one peer's client entries per document.
	MaxPresenceClients = presence.MaxClients
	// MaxPresenceTTL caps Config.PresenceTTL and what receivers keep.
	MaxPresenceTTL = presence.MaxTTL
)

var (
	// ErrPresenceTooLarge is returned for a presence state whose compact
	// JSON exceeds MaxPresenceBytes.
	ErrPresenceTooLarge = errors.New("concord: presence state too large")
	// ErrPresenceInvalid is returned for a presence state that is not a
	// JSON object, or a client name that is not 1 to 64 bytes of
	// [A-Za-z0-9_.-].
	ErrPresenceInvalid = errors.New("concord: invalid presence")
	// ErrPresenceFull is returned when a new entry would exceed
	// MaxPresenceEntries or MaxPresenceClients.
	ErrPresenceFull = errors.New("concord: too many presence entries")
)

// PresenceEntry is one entry of a document's presence as this node sees it.
type PresenceEntry struct {
	// Key is "<peer id>" or "<peer id>/<client>".
	Key    string
	Peer   peer.ID
	Client string
	// State is the entry's JSON object (do not modify it).
	State json.RawMessage
	// Age is the time since the entry was last heard of: its last message
	// for another peer's entry (a refresh counts), the last Set for an own
	// one.
	Age time.Duration
	// Self is true for this node's own entries.
	Self bool
}

// PresenceEvent is a change of one entry: set (State non-nil) or gone
// (State nil: cleared, said goodbye, expired).
type PresenceEvent struct {
	Doc    string
	Key    string
	Peer   peer.ID
	Client string
	// State is the entry's new JSON object (do not modify it); nil when the
	// entry is gone.
	State json.RawMessage
	// Self is true for this node's own entries.
	Self bool
}

// PresenceSubscription delivers a document's presence events on C, this
// node's own entries' included. Its buffer is bounded: when it is full an
// event is dropped and counted in Missed (and in
// concord_dropped_total{queue="presence",reason="subscription_full"}); the
// subscriber should then read Doc.Presence again. C is closed when the
// subscription or the node is closed.
type PresenceSubscription struct {
	C      <-chan PresenceEvent
	c      chan PresenceEvent
	dp     *docPresence
	missed atomic.Uint64
}

// Missed returns how many events were dropped because C was full.
func (s *PresenceSubscription) Missed() uint64 { return s.missed.Load() }

// Close ends the subscription and closes C. It is idempotent.
func (s *PresenceSubscription) Close() {
	if s.dp == nil {
		return
	}
	m := s.dp.mgr
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := s.dp.subs[s]; ok {
		delete(s.dp.subs, s)
		close(s.c)
	}
}

// SetPresence sets this node's own presence entry in the document to v, a
// JSON object (any value that marshals to one, or a json.RawMessage) of at
// most MaxPresenceBytes once compacted. The entry is published at once
// (changes are coalesced to at most one message per 50 ms, the latest
// state winning) and refreshed until ClearPresence or Node.Close. Errors
// wrap ErrPresenceInvalid, ErrPresenceTooLarge, ErrNotWriter (the
// document's writer allowlist excludes this node: peers would refuse its
// presence) or ErrClosed.
func (d *Doc) SetPresence(v any) error { return d.SetClientPresence("", v, 0) }

// ClearPresence clears this node's own entry: peers see it go at once
// (a goodbye). Clearing an absent entry does nothing. Errors: ErrClosed.
func (d *Doc) ClearPresence() error { return d.ClearClientPresence("") }

// SetClientPresence sets the entry of one of this node's clients (a
// browser tab), keyed "<peer id>/<client>", as SetPresence does the
// node's own; client is 1 to 64 bytes of [A-Za-z0-9_.-]. With lease > 0,
// the node clears the entry (and says goodbye) once lease passes without
// another Set, as for a tab that died; with lease 0 it is kept until
// cleared. Errors: those of SetPresence, and ErrPresenceFull past
// MaxPresenceClients clients or MaxPresenceEntries entries.
func (d *Doc) SetClientPresence(client string, v any, lease time.Duration) error {
	state, err := presenceState(v)
	if err != nil {
		return err
	}
	if err := wire.CheckPresenceClient(client); err != nil {
		return fmt.Errorf("%w: %w", ErrPresenceInvalid, err)
	}
	dp, err := d.n.presence.get(d.name)
	if err != nil {
		return err
	}
	return dp.set(client, state, lease)
}

// ClearClientPresence clears the entry of one of this node's clients
// (peers see it go at once). Errors: ErrPresenceInvalid for a bad client
// name, ErrClosed.
func (d *Doc) ClearClientPresence(client string) error {
	if err := wire.CheckPresenceClient(client); err != nil {
		return fmt.Errorf("%w: %w", ErrPresenceInvalid, err)
	}
	dp, err := d.n.presence.get(d.name)
	if err != nil {
		return err
	}
	dp.clear(client)
	return nil
}

// Presence returns every entry this node sees in the document, its own
// included, sorted by key (nil once the node is closed).
func (d *Doc) Presence() []PresenceEntry {
	dp, err := d.n.presence.get(d.name)
	if err != nil {
		return nil
	}
	return dp.entries()
}

// SubscribePresence returns a subscription to the document's presence
// events with a buffer of the given size (default 64). It sees the changes
// made from now on; read Presence for the current entries.
func (d *Doc) SubscribePresence(buffer int) *PresenceSubscription {
	if buffer <= 0 {
		buffer = 64
	}
	c := make(chan PresenceEvent, buffer)
	s := &PresenceSubscription{C: c, c: c}
	dp, err := d.n.presence.get(d.name)
	if err != nil {
		close(c)
		return s
	}
	m := dp.mgr
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		close(c)
		return s
	}
	s.dp = dp
	dp.subs[s] = struct{}{}
	return s
}

// presenceState compacts v's JSON and checks it is an object within
// MaxPresenceBytes.
func presenceState(v any) (json.RawMessage, error) {
	b, err := toJSON(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPresenceInvalid, err)
	}
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrPresenceInvalid, err)
	}
	if c.Len() > MaxPresenceBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrPresenceTooLarge, c.Len(), MaxPresenceBytes)
	}
	if err := wire.CheckPresenceState(c.Bytes()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPresenceInvalid, err)
	}
	return json.RawMessage(c.Bytes()), nil
}

// presenceErr maps the table's refusals of an own entry to the API's errors.
func presenceErr(err error) error {
	switch {
	case errors.Is(err, presence.ErrFull):
		return fmt.Errorf("%w: at most %d entries per document and %d clients per peer", ErrPresenceFull, MaxPresenceEntries, MaxPresenceClients)
	case errors.Is(err, presence.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrPresenceTooLarge, err)
	default:
		return fmt.Errorf("%w: %w", ErrPresenceInvalid, err)
	}
}
