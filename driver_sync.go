package concord

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/engine"
	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/wire"
)

// exchange is the engine's session of one anti-entropy exchange, as the
// sync stream drives it (cnet.Exchange): every call steps the engine under
// the driver's lock; Next reads the log without it, and waits, without
// it, for the engine to advance when the session waits for the writes it
// asked for.
type exchange struct {
	r *driver
	s *engine.Session
}

var _ cnet.SyncDoc = (*driver)(nil)

// Exchange implements cnet.SyncDoc.
func (r *driver) Exchange(p peer.ID, lim wire.SyncLimits) cnet.Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.eng.NewSession(p, lim)
	s.DeferReads() // the log is read outside the lock
	return &exchange{r: r, s: s}
}

func (x *exchange) locked(fn func()) {
	x.r.mu.Lock()
	defer x.r.mu.Unlock()
	fn()
}

func (x *exchange) Hello() (m *wire.SyncMsg) { x.locked(func() { m = x.s.Hello() }); return m }

func (x *exchange) SnapshotAllowed() (err error) {
	x.locked(func() { err = x.s.SnapshotAllowed() })
	return err
}

// Handle steps the session with m; for deltas it then waits until they
// are durable, so that one peer's stream holds at most one message of
// deltas in memory beyond the store (the reader reads the next frame only
// after).
func (x *exchange) Handle(ctx context.Context, m *wire.SyncMsg) (err error) {
	x.r.step(func(*engine.Doc) { err = x.s.Handle(x.r.d.now(), m) })
	if err != nil || m.Type != wire.TypeSyncDeltas {
		return err
	}
	for {
		x.r.mu.Lock()
		done := x.r.closed || x.s.Settled()
		advanced := x.r.advanced
		x.r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (x *exchange) Next(ctx context.Context) (*wire.SyncMsg, error) {
	for {
		var (
			m        *wire.SyncMsg
			wait     bool
			err      error
			advanced <-chan struct{}
		)
		var read *engine.LogRead
		x.r.mu.Lock()
		closed := x.r.closed
		if !closed {
			m, wait, err = x.s.Next()
			read = x.s.PendingRead()
		}
		// Only a pass that produced work wakes other waiters: two sessions
		// waiting on one document would otherwise wake each other forever.
		x.r.queueLocked(x.r.takeLocked(x.r.eng.HasReady()))
		advanced = x.r.advanced
		x.r.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case read != nil:
			read.Do() // I/O, without the lock
			continue
		case !wait:
			return m, err
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (x *exchange) GotHello() (ok bool) { x.locked(func() { ok = x.s.GotHello() }); return ok }
func (x *exchange) GotDone() (ok bool)  { x.locked(func() { ok = x.s.GotDone() }); return ok }
func (x *exchange) Finished() (ok bool) { x.locked(func() { ok = x.s.Finished() }); return ok }

func (x *exchange) Stats() (st cnet.SyncStats) {
	x.locked(func() { st = cnet.SyncStats(x.s.Stats()) })
	return st
}

func (x *exchange) Close() { x.locked(x.s.Close) }
