package net

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrSupervisorConfig is returned (wrapped) by NewSupervisor for an invalid
// config.
var ErrSupervisorConfig = errors.New("net: invalid supervisor config")

// errLostDuringDial: a dial succeeded but the last connection to the peer
// closed before the supervisor saw the success.
var errLostDuringDial = errors.New("net: connection closed while the dial completed")

// State is the supervisor's view of one peer.
type State uint8

// Peer states. A supervised peer is always Connecting, Connected or
// Backoff; Gone is reported once, when it is removed.
const (
	// StateConnecting: a dial is in flight or waiting for a dial slot.
	StateConnecting State = iota + 1
	// StateConnected: at least one connection is open.
	StateConnected
	// StateBackoff: the last dial failed or the connection dropped; the next
	// dial is scheduled at PeerState.NextDial.
	StateBackoff
	// StateGone: the peer is no longer supervised.
	StateGone
)

// String returns "connecting", "connected", "backoff" or "gone".
func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateBackoff:
		return "backoff"
	case StateGone:
		return "gone"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// PeerState is a snapshot of one supervised peer.
type PeerState struct {
	ID    peer.ID
	State State
	// Since is when the peer entered State.
	Since time.Time
	// Attempt is the backoff attempt counter: consecutive failures (failed
	// dials and connections that dropped before HealthyAfter).
	Attempt int
	// NextDial is when the next dial is due (Backoff only).
	NextDial time.Time
}

// PeerEvent reports one state transition.
type PeerEvent struct {
	Peer     peer.ID
	From, To State // From is 0 when the peer was just added
	At       time.Time
	// Delay is the backoff delay chosen (To == StateBackoff).
	Delay time.Duration
	// Err is the dial error that caused the transition, if any.
	Err error
}

// SupervisorConfig configures a Supervisor. Start from
// DefaultSupervisorConfig.
type SupervisorConfig struct {
	// Dialer opens connections. Required.
	Dialer Dialer
	// Seed seeds the jitter: peer p draws its delays from
	// PCG(Seed, FNV-64a(p)), so a schedule is reproducible per seed and does
	// not depend on other peers. DefaultSupervisorConfig picks a random seed.
	Seed uint64
	// BackoffBase is the ceiling of the first retry delay. Default 200 ms.
	BackoffBase time.Duration
	// BackoffMax caps the ceiling. Default 30 s.
	BackoffMax time.Duration
	// HealthyAfter: a connection that stayed up this long resets the
	// backoff when it drops; one that drops sooner counts as a failure (a
	// flapping peer backs off further). Default 10 s.
	HealthyAfter time.Duration
	// DialTimeout bounds one dial. Default 15 s.
	DialTimeout time.Duration
	// MaxConcurrentDials bounds dials in flight; others wait in Connecting,
	// in peer ID order. Default 8.
	MaxConcurrentDials int
	// OnEvent, if set, receives every state transition, in order, from
	// whichever goroutine caused it (never concurrently). It may call the
	// Supervisor's methods but must not block for long.
	OnEvent func(PeerEvent)
	// Metrics, if set, receives connection and reconnect metrics.
	Metrics *Metrics
	// Logger. Default: discard.
	Logger *slog.Logger
}

// DefaultSupervisorConfig returns the documented defaults with d as Dialer
// and a random Seed.
func DefaultSupervisorConfig(d Dialer) SupervisorConfig {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return SupervisorConfig{
		Dialer:             d,
		Seed:               binary.LittleEndian.Uint64(b[:]),
		BackoffBase:        200 * time.Millisecond,
		BackoffMax:         30 * time.Second,
		HealthyAfter:       10 * time.Second,
		DialTimeout:        15 * time.Second,
		MaxConcurrentDials: 8,
	}
}

// Supervisor keeps connections to a set of peers: it dials each, redials
// with backoff after failures and disconnects, and reports state changes.
// Feed it connection notifications with Connected/Disconnected (WatchHost
// does that for a libp2p host). Close stops it.
type Supervisor struct {
	cfg SupervisorConfig
	log *slog.Logger

	ctx    context.Context // cancelled by Close; bounds dials
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: "state changed, re-plan"
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	peers    map[peer.ID]*peerEntry
	inflight int
	gen      uint64
	events   []PeerEvent

	emitMu sync.Mutex // held while delivering events
}

type peerEntry struct {
	info    peer.AddrInfo
	gen     uint64
	state   State
	since   time.Time
	next    time.Time
	backoff *Backoff
	dialing bool
	// redial: the peer was dialled or connected before, so the next dial
	// is a reconnect (for the metrics).
	redial bool
	// lost: the last connection closed while a dial was in flight and the
	// peer was not yet marked connected, so a dial that returns success may
	// have found a connection that is gone already.
	lost bool
}

// NewSupervisor starts a supervisor (one scheduling goroutine plus one per
// dial in flight, all joined by Close).
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.Dialer == nil {
		return nil, fmt.Errorf("%w: nil Dialer", ErrSupervisorConfig)
	}
	def := DefaultSupervisorConfig(cfg.Dialer)
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = def.BackoffBase
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = def.BackoffMax
	}
	if cfg.BackoffMax < cfg.BackoffBase {
		return nil, fmt.Errorf("%w: BackoffMax %v < BackoffBase %v", ErrSupervisorConfig, cfg.BackoffMax, cfg.BackoffBase)
	}
	if cfg.HealthyAfter <= 0 {
		cfg.HealthyAfter = def.HealthyAfter
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = def.DialTimeout
	}
	if cfg.MaxConcurrentDials <= 0 {
		cfg.MaxConcurrentDials = def.MaxConcurrentDials
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{
		cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		peers: make(map[peer.ID]*peerEntry),
	}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// maxPeerAddrs bounds the addresses kept per supervised peer.
const maxPeerAddrs = 32

// Add supervises p (or updates its addresses if already supervised). A new
// peer is dialled right away.
func (s *Supervisor) Add(p peer.AddrInfo) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if e, ok := s.peers[p.ID]; ok {
		// Merge: addresses given before (a bootstrap address, say) stay.
		for _, a := range p.Addrs {
			if len(e.info.Addrs) >= maxPeerAddrs {
				break
			}
			if !slices.ContainsFunc(e.info.Addrs, a.Equal) {
				e.info.Addrs = append(e.info.Addrs, a)
			}
		}
		s.mu.Unlock()
		return
	}
	s.gen++
	e := &peerEntry{
		info:    peer.AddrInfo{ID: p.ID, Addrs: slices.Clone(p.Addrs)},
		gen:     s.gen,
		backoff: peerBackoff(&s.cfg, p.ID),
	}
	s.peers[p.ID] = e
	s.setStateLocked(e, StateConnecting, time.Now(), 0, nil)
	s.mu.Unlock()
	s.kick()
	s.flush()
}

// Remove stops supervising p (reported as StateGone). Open connections to p
// are left alone.
func (s *Supervisor) Remove(id peer.ID) {
	s.mu.Lock()
	e, ok := s.peers[id]
	if !ok || s.closed {
		s.mu.Unlock()
		return
	}
	delete(s.peers, id)
	s.setStateLocked(e, StateGone, time.Now(), 0, nil)
	s.mu.Unlock()
	s.kick()
	s.flush()
}

// Connected tells the supervisor that a connection to id is open (whoever
// dialled). Unsupervised peers are ignored.
func (s *Supervisor) Connected(id peer.ID) {
	s.mu.Lock()
	if e, ok := s.peers[id]; ok && !s.closed {
		e.redial = true
		if e.state != StateConnected {
			s.setStateLocked(e, StateConnected, time.Now(), 0, nil)
		}
	}
	s.mu.Unlock()
	s.kick()
	s.flush()
}

// Disconnected tells the supervisor that the last connection to id closed.
// The peer goes to Backoff; the backoff restarts from BackoffBase if the
// connection had been up for HealthyAfter, else it keeps growing.
func (s *Supervisor) Disconnected(id peer.ID) {
	s.mu.Lock()
	e, ok := s.peers[id]
	if ok && !s.closed && e.state == StateConnecting && e.dialing {
		e.lost = true
	}
	if ok && !s.closed && e.state == StateConnected {
		now := time.Now()
		up := now.Sub(e.since)
		s.cfg.Metrics.connectionClosed(up)
		if up >= s.cfg.HealthyAfter {
			e.backoff.Reset()
		}
		s.backoffLocked(e, now, nil)
	}
	s.mu.Unlock()
	s.kick()
	s.flush()
}

// States returns a snapshot of all supervised peers, sorted by peer ID.
func (s *Supervisor) States() []PeerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerState, 0, len(s.peers))
	for id, e := range s.peers {
		ps := PeerState{ID: id, State: e.state, Since: e.since, Attempt: e.backoff.Attempt()}
		if e.state == StateBackoff {
			ps.NextDial = e.next
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b PeerState) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Close stops the supervisor, cancels dials in flight and waits for its
// goroutines. It is idempotent and always returns nil.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	close(s.done)
	s.wg.Wait()
	return nil
}

func (s *Supervisor) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// setStateLocked moves e to state to and queues the event.
func (s *Supervisor) setStateLocked(e *peerEntry, to State, now time.Time, delay time.Duration, err error) {
	from := e.state
	e.state, e.since = to, now
	s.cfg.Metrics.peerState(from, to)
	s.events = append(s.events, PeerEvent{Peer: e.info.ID, From: from, To: to, At: now, Delay: delay, Err: err})
}

func (s *Supervisor) backoffLocked(e *peerEntry, now time.Time, err error) {
	d := e.backoff.Next()
	e.next = now.Add(d)
	s.setStateLocked(e, StateBackoff, now, d, err)
}

// flush delivers queued events in order. Only one goroutine delivers at a
// time; a caller that finds delivery in progress leaves its events to it
// (the deliverer re-checks the queue after releasing emitMu).
func (s *Supervisor) flush() {
	for {
		if !s.emitMu.TryLock() {
			return
		}
		for {
			s.mu.Lock()
			evs := s.events
			s.events = nil
			s.mu.Unlock()
			if len(evs) == 0 {
				break
			}
			if s.cfg.OnEvent != nil {
				for _, ev := range evs {
					s.cfg.OnEvent(ev)
				}
			}
		}
		s.emitMu.Unlock()
		s.mu.Lock()
		more := len(s.events) > 0
		s.mu.Unlock()
		if !more {
			return
		}
	}
}

// run is the scheduling loop: it moves due Backoff peers to Connecting,
// starts dials within the concurrency bound and sleeps until the next
// deadline or a kick.
func (s *Supervisor) run() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		now := time.Now()
		var next time.Time
		var ready []*peerEntry
		for _, e := range s.peers {
			if e.state == StateBackoff && !e.next.After(now) {
				s.setStateLocked(e, StateConnecting, now, 0, nil)
			}
			switch {
			case e.state == StateBackoff:
				if next.IsZero() || e.next.Before(next) {
					next = e.next
				}
			case e.state == StateConnecting && !e.dialing:
				ready = append(ready, e)
			}
		}
		slices.SortFunc(ready, func(a, b *peerEntry) int {
			switch {
			case a.info.ID < b.info.ID:
				return -1
			case a.info.ID > b.info.ID:
				return 1
			}
			return 0
		})
		for _, e := range ready {
			if s.inflight >= s.cfg.MaxConcurrentDials {
				break
			}
			s.startDialLocked(e)
		}
		s.mu.Unlock()
		s.flush()

		var timerC <-chan time.Time
		var t *time.Timer
		if !next.IsZero() {
			t = time.NewTimer(next.Sub(now))
			timerC = t.C
		}
		select {
		case <-timerC:
		case <-s.wake:
		case <-s.done:
			if t != nil {
				t.Stop()
			}
			return
		}
		if t != nil {
			t.Stop()
		}
	}
}
