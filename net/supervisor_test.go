package net

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestBackoffSchedule pins the exact delays for a seed: the schedule must not
// change silently (math/rand/v2's PCG is stable across Go versions).
func TestBackoffSchedule(t *testing.T) {
	b := NewBackoff(200*time.Millisecond, 30*time.Second, 42, 7)
	var got []time.Duration
	var ceilings []time.Duration
	for range 12 {
		ceilings = append(ceilings, b.Ceiling())
		got = append(got, b.Next())
	}
	wantCeil := []time.Duration{
		200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond,
		12800 * time.Millisecond, 25600 * time.Millisecond, 30 * time.Second,
		30 * time.Second, 30 * time.Second, 30 * time.Second,
	}
	if fmt.Sprint(ceilings) != fmt.Sprint(wantCeil) {
		t.Fatalf("ceilings %v, want %v", ceilings, wantCeil)
	}
	for i := range got {
		if got[i] < 0 || got[i] > ceilings[i] {
			t.Fatalf("delay %d = %v outside [0, %v]", i, got[i], ceilings[i])
		}
	}
	if want := goldenSchedule; fmt.Sprint(got) != want {
		t.Fatalf("schedule for seed (42,7):\n got %v\nwant %s", got, want)
	}
	// Same seed, same schedule.
	b2 := NewBackoff(200*time.Millisecond, 30*time.Second, 42, 7)
	for i := range got {
		if d := b2.Next(); d != got[i] {
			t.Fatalf("not reproducible at %d: %v vs %v", i, d, got[i])
		}
	}
	b.Reset()
	if b.Ceiling() != 200*time.Millisecond || b.Attempt() != 0 {
		t.Fatalf("after Reset: ceiling %v attempt %d", b.Ceiling(), b.Attempt())
	}
	if d := b.Next(); d > 200*time.Millisecond {
		t.Fatalf("first delay after Reset %v", d)
	}
}

const goldenSchedule = "[143.65222ms 205.556957ms 472.708768ms 1.553596224s 2.014432477s 4.32699431s 583.436814ms 11.878603066s 14.331892781s 29.787771912s 24.674760969s 8.758889162s]"

// scriptDialer is a fake Dialer: each dial calls fn (which may block) and
// records the dial.
type scriptDialer struct {
	mu    sync.Mutex
	dials []dialRec
	fn    func(ctx context.Context, p peer.ID) error
}

type dialRec struct {
	p  peer.ID
	at time.Time
}

func (d *scriptDialer) Dial(ctx context.Context, p peer.AddrInfo) error {
	d.mu.Lock()
	d.dials = append(d.dials, dialRec{p.ID, time.Now()})
	fn := d.fn
	d.mu.Unlock()
	return fn(ctx, p.ID)
}

func (d *scriptDialer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.dials)
}

type eventLog struct {
	mu  sync.Mutex
	evs []PeerEvent
}

func (l *eventLog) add(e PeerEvent) { l.mu.Lock(); l.evs = append(l.evs, e); l.mu.Unlock() }
func (l *eventLog) take() []PeerEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.evs
	l.evs = nil
	return out
}

func testSupervisor(t *testing.T, d Dialer, log *eventLog, m *Metrics) *Supervisor {
	t.Helper()
	cfg := DefaultSupervisorConfig(d)
	cfg.Seed = 1
	cfg.OnEvent = log.add
	cfg.Metrics = m
	s, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var errRefused = errors.New("refused")

// TestSupervisorBackoffSchedule: a peer that never answers is redialled
// exactly at the delays its seeded backoff produces, the ceiling reaches
// BackoffMax, and a connection that stays healthy resets the backoff.
func TestSupervisorBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var up bool
		var mu sync.Mutex
		d := &scriptDialer{fn: func(context.Context, peer.ID) error {
			mu.Lock()
			defer mu.Unlock()
			if up {
				return nil
			}
			return errRefused
		}}
		log := &eventLog{}
		m := NewMetrics(nil)
		s := testSupervisor(t, d, log, m)
		defer s.Close()
		_, p := testKey(t, 9)

		cfg := DefaultSupervisorConfig(d)
		cfg.Seed = 1
		mirror := peerBackoff(&cfg, p)

		s.Add(peer.AddrInfo{ID: p})
		synctest.Wait()
		evs := log.take()
		if len(evs) != 2 || evs[0].To != StateConnecting || evs[1].To != StateBackoff || !errors.Is(evs[1].Err, errRefused) {
			t.Fatalf("events after Add: %+v", evs)
		}
		delay := evs[1].Delay
		var ceilingHit bool
		for i := 0; i < 14; i++ {
			ceil := mirror.Ceiling()
			if want := mirror.Next(); delay != want {
				t.Fatalf("failure %d: delay %v, want %v", i, delay, want)
			}
			if ceil == 30*time.Second {
				ceilingHit = true
			}
			if st := s.States(); len(st) != 1 || st[0].State != StateBackoff || !st[0].NextDial.Equal(time.Now().Add(delay)) {
				t.Fatalf("states: %+v", st)
			}
			before := d.count()
			if delay > 0 {
				time.Sleep(delay - 1)
				synctest.Wait()
				if d.count() != before {
					t.Fatalf("failure %d: redialled before the delay elapsed", i)
				}
				time.Sleep(1)
			}
			synctest.Wait()
			if d.count() != before+1 {
				t.Fatalf("failure %d: %d dials, want %d", i, d.count(), before+1)
			}
			evs = log.take()
			if len(evs) != 2 || evs[0].To != StateConnecting || evs[1].To != StateBackoff {
				t.Fatalf("events: %+v", evs)
			}
			delay = evs[1].Delay
		}
		if !ceilingHit {
			t.Fatal("backoff never reached its 30 s cap")
		}
		if got := counterValue(m.ReconnectAttempts); got != 14 {
			t.Fatalf("reconnect attempts %v, want 14", got)
		}
		mirror.Next() // the delay just handed out

		// The peer comes back: the next dial succeeds.
		mu.Lock()
		up = true
		mu.Unlock()
		time.Sleep(delay)
		synctest.Wait()
		evs = log.take()
		if len(evs) != 2 || evs[1].To != StateConnected {
			t.Fatalf("events on recovery: %+v", evs)
		}
		if got := counterValue(m.ReconnectSuccesses); got != 1 {
			t.Fatalf("reconnect successes %v", got)
		}
		// Healthy for 10 s, then drops: backoff restarts from the base.
		time.Sleep(10 * time.Second)
		s.Disconnected(p)
		synctest.Wait()
		evs = log.take()
		mirror.Reset()
		if len(evs) == 0 || evs[0].To != StateBackoff || evs[0].Delay != mirror.Next() || evs[0].Delay > 200*time.Millisecond {
			t.Fatalf("after healthy connection: %+v", evs)
		}
		if st := s.States(); st[0].Attempt != 1 {
			t.Fatalf("attempt after reset = %d", st[0].Attempt)
		}
		if n := histCount(m.ConnectionDuration); n != 1 {
			t.Fatalf("connection duration samples %d", n)
		}
	})
}

// TestSupervisorFlappingPeer: a peer that accepts connections but drops them
// after 1 s (below HealthyAfter) is not hammered: each drop counts as a
// failure, so the redial delays grow like a failing peer's.
func TestSupervisorFlappingPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &scriptDialer{fn: func(context.Context, peer.ID) error { return nil }}
		log := &eventLog{}
		s := testSupervisor(t, d, log, nil)
		defer s.Close()
		_, p := testKey(t, 10)
		cfg := DefaultSupervisorConfig(d)
		cfg.Seed = 1
		mirror := peerBackoff(&cfg, p)

		s.Add(peer.AddrInfo{ID: p})
		synctest.Wait()
		var ceilings []time.Duration
		for i := range 10 {
			if st := s.States(); st[0].State != StateConnected {
				t.Fatalf("cycle %d: state %v", i, st[0].State)
			}
			log.take()
			time.Sleep(time.Second)
			s.Disconnected(p) // the peer drops us
			synctest.Wait()
			evs := log.take()
			ceilings = append(ceilings, mirror.Ceiling())
			if len(evs) < 1 || evs[0].To != StateBackoff || evs[0].Delay != mirror.Next() {
				t.Fatalf("cycle %d: events %+v", i, evs)
			}
			time.Sleep(evs[0].Delay)
			synctest.Wait()
		}
		if ceilings[9] != 30*time.Second {
			t.Fatalf("flapping did not grow the backoff: ceilings %v", ceilings)
		}
		if d.count() != 11 {
			t.Fatalf("%d dials, want 11", d.count())
		}
	})
}

// TestSupervisorDialConcurrency: no more than MaxConcurrentDials dials run at
// once; the rest wait in Connecting and all end up connected.
func TestSupervisorDialConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		cur, peak := 0, 0
		d := &scriptDialer{fn: func(ctx context.Context, _ peer.ID) error {
			mu.Lock()
			cur++
			peak = max(peak, cur)
			mu.Unlock()
			defer func() { mu.Lock(); cur--; mu.Unlock() }()
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
		cfg := DefaultSupervisorConfig(d)
		cfg.MaxConcurrentDials = 3
		s, err := NewSupervisor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := range 10 {
			_, p := testKey(t, byte(20+i))
			s.Add(peer.AddrInfo{ID: p})
		}
		synctest.Wait()
		if d.count() != 3 {
			t.Fatalf("%d dials started, want 3", d.count())
		}
		close(release)
		synctest.Wait()
		if peak != 3 {
			t.Fatalf("peak concurrency %d", peak)
		}
		for _, st := range s.States() {
			if st.State != StateConnected {
				t.Fatalf("%v", st)
			}
		}
	})
}

func TestSupervisorRemoveAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := make(chan struct{})
		d := &scriptDialer{fn: func(ctx context.Context, _ peer.ID) error {
			select {
			case <-block:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
		log := &eventLog{}
		s := testSupervisor(t, d, log, nil)
		_, p := testKey(t, 11)
		_, q := testKey(t, 12)
		s.Add(peer.AddrInfo{ID: p})
		s.Add(peer.AddrInfo{ID: q})
		synctest.Wait()
		s.Remove(p)
		synctest.Wait()
		evs := log.take()
		if last := evs[len(evs)-1]; last.Peer != p || last.To != StateGone || last.From != StateConnecting {
			t.Fatalf("events %+v", evs)
		}
		if st := s.States(); len(st) != 1 || st[0].ID != q {
			t.Fatalf("states %+v", st)
		}
		s.Connected(p) // unsupervised: ignored
		if len(s.States()) != 1 {
			t.Fatal("unsupervised peer appeared")
		}
		// Close cancels the dial in flight and joins everything.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s.Add(peer.AddrInfo{ID: p}) // no-op after Close
		s.Disconnected(q)
		if len(s.States()) != 1 {
			t.Fatal("Add after Close took effect")
		}
		if _, err := NewSupervisor(SupervisorConfig{}); !errors.Is(err, ErrSupervisorConfig) {
			t.Fatalf("nil dialer: %v", err)
		}
	})
}

// TestSupervisorConnectionLostDuringDial: a dial finds a connection that
// was already open (it returns success) but that connection closes before
// the dial's result is handled. The peer must not be left Connected with no
// connection: it backs off and is redialled.
func TestSupervisorConnectionLostDuringDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var calls int
		d := &scriptDialer{fn: func(ctx context.Context, _ peer.ID) error {
			calls++
			if calls == 1 {
				<-release // the first dial returns success only when told
			}
			return nil
		}}
		log := &eventLog{}
		s := testSupervisor(t, d, log, nil)
		defer s.Close()
		_, p := testKey(t, 13)
		s.Add(peer.AddrInfo{ID: p})
		synctest.Wait()
		s.Disconnected(p) // the existing connection closes mid-dial
		close(release)
		synctest.Wait()
		evs := log.take()
		if len(evs) != 2 || evs[1].To != StateBackoff || !errors.Is(evs[1].Err, errLostDuringDial) {
			t.Fatalf("events %+v", evs)
		}
		time.Sleep(evs[1].Delay)
		synctest.Wait()
		if d.count() != 2 {
			t.Fatalf("%d dials, want a redial", d.count())
		}
		if st := s.States(); st[0].State != StateConnected {
			t.Fatalf("state after redial %v", st[0].State)
		}
	})
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func histCount(h prometheus.Histogram) uint64 {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		panic(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestSupervisorRedialAfterNotifiedConnection: a peer that became
// connected by a notification (someone else dialled) and then dropped is
// redialled, and that dial counts as a reconnect.
func TestSupervisorRedialAfterNotifiedConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := make(chan struct{})
		d := &scriptDialer{fn: func(ctx context.Context, _ peer.ID) error {
			select {
			case <-block:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
		log := &eventLog{}
		m := NewMetrics(nil)
		cfg := DefaultSupervisorConfig(d)
		cfg.Seed, cfg.OnEvent, cfg.Metrics = 1, log.add, m
		cfg.MaxConcurrentDials = 1
		s, err := NewSupervisor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, busy := testKey(t, 30)
		_, p := testKey(t, 31)
		s.Add(peer.AddrInfo{ID: busy}) // holds the only dial slot
		synctest.Wait()
		s.Add(peer.AddrInfo{ID: p}) // waits in Connecting
		s.Connected(p)              // someone else connected it
		synctest.Wait()
		for _, st := range s.States() {
			if st.ID == p && st.State != StateConnected {
				t.Fatalf("state %v after the notification", st.State)
			}
		}
		if n := d.count(); n != 1 {
			t.Fatalf("%d dials before the drop, want only busy's", n)
		}
		close(block)
		synctest.Wait()
		s.Disconnected(p)
		synctest.Wait()
		evs := log.take()
		last := evs[len(evs)-1]
		if last.Peer != p || last.To != StateBackoff {
			t.Fatalf("events %+v", evs)
		}
		time.Sleep(last.Delay)
		synctest.Wait()
		if got := counterValue(m.ReconnectSuccesses); got != 1 {
			t.Fatalf("reconnect successes %v after redialling a peer that was connected", got)
		}
	})
}
