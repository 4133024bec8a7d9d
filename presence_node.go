package concord

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/internal/presence"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/wire"
)

// The presence driver: one goroutine per node (not per document) runs the
// timers of every document's presence — coalesced sends, refreshes of own
// entries, early refreshes after a peer joins, expiry of remote entries and
// of client leases — and publishes what they produce. The rules live in
// internal/presence; every document's table is guarded by the one mutex of
// the node's presenceMgr, never held across I/O.

const (
	// presenceCoalesce is the least time between two messages of one key:
	// a key's changes go out at most 20 times per second, the latest
	// state winning.
	presenceCoalesce = 50 * time.Millisecond
	// presenceEarly is how long after a peer joins a presence topic the
	// node sends its entries again (debounced: joins within it share one).
	presenceEarly = 150 * time.Millisecond
	// presenceEarlyEvery is the least time between two early refreshes of
	// a document.
	presenceEarlyEvery = time.Second
	// presencePublishTimeout bounds one publish.
	presencePublishTimeout = 2 * time.Second
	// presenceGoodbyeTimeout bounds the goodbyes of Node.Close.
	presenceGoodbyeTimeout = time.Second
	// presenceGoodbyeGrace is how long Node.Close lets the transport write
	// the goodbyes once GossipSub handed them over.
	presenceGoodbyeGrace = 50 * time.Millisecond
)

// presenceMgr is a node's presence: every document's table, the timers'
// goroutine, the metrics.
type presenceMgr struct {
	key      crypto.PrivKey
	self     crdt.ReplicaID
	selfPeer peer.ID
	ttl      time.Duration // own entries' ttl_ms; refreshed every ttl/3
	now      func() time.Time
	gossip   *cnet.Gossip
	netm     *cnet.Metrics
	metrics  *presenceMetrics
	log      *slog.Logger

	mu     sync.Mutex // guards every docPresence and what follows
	docs   map[string]*docPresence
	closed bool

	kick chan struct{} // wakes the loop (capacity 1)
	quit chan struct{}
	done chan struct{}
}

// docPresence is one document's presence. Its fields are guarded by mgr.mu.
type docPresence struct {
	mgr       *presenceMgr
	name      string
	writers   map[peer.ID]bool // nil: anyone
	table     *presence.Table
	topic     *cnet.PresenceTopic
	own       map[string]*ownEntry // by client ("" for the node's own)
	subs      map[*PresenceSubscription]struct{}
	refreshAt time.Time // early refresh after a peer joined; zero: none
	lastEarly time.Time // when the last early refresh was scheduled
	next      time.Time // when the loop must look at the document next; zero: never
	dirty     bool      // the loop must look at it now
}

// ownEntry is the sending state of one own entry.
type ownEntry struct {
	state   json.RawMessage // nil: cleared (a goodbye to send, or sent)
	pending bool            // a message is owed
	sentAt  time.Time       // last message sent; zero: none yet
	lease   time.Time       // cleared at this time unless set again; zero: no lease
}

// outMsg is one message the loop publishes.
type outMsg struct {
	dp *docPresence
	p  *wire.Presence
}

// presenceMetrics are the presence collectors.
type presenceMetrics struct {
	entries *prometheus.GaugeVec
	updates *prometheus.CounterVec
	bytes   prometheus.Counter
}

func newPresenceMetrics(reg prometheus.Registerer) *presenceMetrics {
	m := &presenceMetrics{
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "concord_presence_entries",
			Help: "Presence entries this node sees (own included), per document.",
		}, []string{"doc"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "concord_presence_updates_total",
			Help: "Presence messages applied from peers (in) and published (out).",
		}, []string{"direction"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "concord_presence_sent_bytes_total",
			Help: "Bytes of the presence messages published (their encoding, without GossipSub's framing).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.entries, m.updates, m.bytes)
	}
	return m
}

// newPresenceMgr starts a node's presence loop.
func newPresenceMgr(n *Node, reg prometheus.Registerer) *presenceMgr {
	m := &presenceMgr{
		key: n.key, self: n.self, selfPeer: n.h.ID(), ttl: n.cfg.PresenceTTL, now: n.cfg.Now, gossip: n.gossip, netm: n.metrics,
		metrics: newPresenceMetrics(reg), log: n.cfg.Logger,
		docs: map[string]*docPresence{}, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	go m.run()
	return m
}

func (m *presenceMgr) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// join joins doc's presence topic. The document's presence is reachable
// (get) once joined, so its topic is set whenever it is used.
func (m *presenceMgr) join(doc string, writers map[peer.ID]bool) error {
	dp := &docPresence{mgr: m, name: doc, writers: writers, table: presence.New(m.selfPeer),
		own: map[string]*ownEntry{}, subs: map[*PresenceSubscription]struct{}{}}
	t, err := m.gossip.JoinPresence(doc, dp)
	if err != nil {
		return fmt.Errorf("concord: presence of %q: %w", doc, err)
	}
	dp.topic = t
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = t.Close()
		return ErrClosed
	}
	m.docs[doc] = dp
	m.mu.Unlock()
	return nil
}

// get returns doc's presence.
func (m *presenceMgr) get(doc string) (*docPresence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dp := m.docs[doc]
	if m.closed || dp == nil {
		return nil, ErrClosed
	}
	return dp, nil
}

// ---- the API's side (under mgr.mu) ----

func (dp *docPresence) set(client string, state json.RawMessage, lease time.Duration) error {
	m := dp.mgr
	if dp.writers != nil && !dp.writers[m.selfPeer] {
		return fmt.Errorf("%w: presence in %q", ErrNotWriter, dp.name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	now := m.now()
	ev, changed, err := dp.table.Set(client, state, now)
	if err != nil {
		return presenceErr(err)
	}
	o := dp.own[client]
	if o == nil {
		o = &ownEntry{}
		dp.own[client] = o
	}
	if changed || o.state == nil {
		o.pending = true
	}
	o.state = state
	o.lease = time.Time{}
	if lease > 0 {
		o.lease = now.Add(lease)
	}
	if changed {
		dp.emit(ev)
	}
	dp.dirty = true
	m.wake()
	return nil
}

func (dp *docPresence) clear(client string) {
	m := dp.mgr
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	dp.clearLocked(client)
	dp.dirty = true
	m.wake()
}

// clearLocked clears an own entry and owes its goodbye.
func (dp *docPresence) clearLocked(client string) {
	if ev, ok := dp.table.Clear(client); ok {
		dp.emit(ev)
	}
	if o := dp.own[client]; o != nil && o.state != nil {
		o.state, o.pending, o.lease = nil, true, time.Time{}
	}
}

func (dp *docPresence) entries() []PresenceEntry {
	m := dp.mgr
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	es := dp.table.Entries()
	out := make([]PresenceEntry, 0, len(es))
	for _, e := range es {
		if !e.Self && !now.Before(e.Updated.Add(e.TTL)) {
			continue // expired; the loop removes it
		}
		out = append(out, PresenceEntry{Key: e.Key, Peer: e.Peer, Client: e.Client, State: e.State, Age: max(now.Sub(e.Updated), 0), Self: e.Self})
	}
	return out
}

// emit hands ev to the subscribers and updates the entries gauge.
func (dp *docPresence) emit(ev presence.Event) {
	dp.mgr.metrics.entries.WithLabelValues(dp.name).Set(float64(dp.table.Len()))
	pe := PresenceEvent{Doc: dp.name, Key: ev.Key, Peer: ev.Peer, Client: ev.Client, State: ev.State, Self: ev.Self}
	for s := range dp.subs {
		select {
		case s.c <- pe:
		default:
			s.missed.Add(1)
			dp.mgr.netm.Drop("presence", "subscription_full")
		}
	}
}

// ---- the network's side (cnet.PresenceHandler) ----

var _ cnet.PresenceHandler = (*docPresence)(nil)

// ReceivePresence checks a verified message — the writer allowlist, then
// the table's rules — and applies it. Stale, full and own messages are
// ignored; the others refused are rejected.
func (dp *docPresence) ReceivePresence(_ peer.ID, msg *wire.Presence) error {
	p, err := wire.PeerOf(msg.Origin)
	if err != nil {
		return err
	}
	if dp.writers != nil && !dp.writers[p] {
		return presence.ErrNotWriter
	}
	m := dp.mgr
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("%w: %w", cnet.ErrIgnore, ErrClosed)
	}
	now := m.now()
	ev, changed, err := dp.table.Apply(msg, now)
	switch {
	case errors.Is(err, presence.ErrStale), errors.Is(err, presence.ErrFull), errors.Is(err, presence.ErrSelf):
		return fmt.Errorf("%w: %w", cnet.ErrIgnore, err)
	case err != nil:
		return err
	}
	m.metrics.updates.WithLabelValues(cnet.DirectionIn).Inc()
	if changed {
		dp.emit(ev)
	}
	if msg.State != nil {
		exp := now.Add(min(time.Duration(min(msg.TTL, uint64(MaxPresenceTTL.Milliseconds())))*time.Millisecond, MaxPresenceTTL))
		if dp.next.IsZero() || exp.Before(dp.next) {
			dp.next = exp
			m.wake()
		}
	}
	return nil
}

// PresencePeerJoined schedules an early refresh of the own entries.
func (dp *docPresence) PresencePeerJoined(peer.ID) {
	m := dp.mgr
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	// At most one early refresh a second: any peer can send subscriptions
	// again and again.
	if m.closed || len(dp.own) == 0 || !dp.refreshAt.IsZero() || now.Sub(dp.lastEarly) < presenceEarlyEvery {
		return
	}
	dp.lastEarly = now
	dp.refreshAt = now.Add(presenceEarly)
	dp.dirty = true
	m.wake()
}
