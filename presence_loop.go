package concord

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	cnet "github.com/concord-p2p/concord/net"
	"github.com/concord-p2p/concord/wire"
)

// The presence loop: one goroutine per node steps every document's
// presence when it is due (see presenceMgr) and publishes what the steps
// produce, outside the lock.

func (m *presenceMgr) run() {
	defer close(m.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		out, next := m.tick(m.now())
		m.send(out, presencePublishTimeout, false)
		var wait <-chan time.Time
		if !next.IsZero() {
			timer.Reset(max(next.Sub(m.now()), 0))
			wait = timer.C
		}
		select {
		case <-m.quit:
			return
		case <-m.kick:
		case <-wait:
		}
		timer.Stop()
	}
}

// tick steps every document that is due and returns the messages to
// publish and when to tick next (zero: nothing scheduled).
func (m *presenceMgr) tick(now time.Time) ([]outMsg, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []outMsg
	var next time.Time
	for _, dp := range m.docs {
		if dp.dirty || !dp.next.IsZero() && !now.Before(dp.next) {
			out = dp.step(now, out)
		}
		if !dp.next.IsZero() && (next.IsZero() || dp.next.Before(next)) {
			next = dp.next
		}
	}
	return out, next
}

// step expires what is due, owes refreshes, builds the messages that are
// due and sets dp.next.
func (dp *docPresence) step(now time.Time, out []outMsg) []outMsg {
	m := dp.mgr
	dp.dirty = false
	for _, ev := range dp.table.Expire(now) {
		dp.emit(ev)
	}
	if !dp.refreshAt.IsZero() && !now.Before(dp.refreshAt) {
		for _, o := range dp.own {
			if o.state != nil {
				o.pending = true
			}
		}
		dp.refreshAt = time.Time{}
	}
	var next time.Time
	at := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	refresh := m.ttl / 3
	for client, o := range dp.own {
		if !o.lease.IsZero() && !now.Before(o.lease) {
			dp.clearLocked(client)
		}
		if o.state != nil && !o.pending && !now.Before(o.sentAt.Add(refresh)) {
			o.pending = true
		}
		if o.pending {
			if due := o.sentAt.Add(presenceCoalesce); !o.sentAt.IsZero() && now.Before(due) {
				at(due)
				continue
			}
			out = append(out, outMsg{dp, dp.message(client, o.state, now)})
			o.pending, o.sentAt = false, now
		}
		switch {
		case o.state != nil:
			at(o.sentAt.Add(refresh))
			if !o.lease.IsZero() {
				at(o.lease)
			}
		case now.Before(o.sentAt.Add(presenceCoalesce)):
			at(o.sentAt.Add(presenceCoalesce)) // kept so a new set waits its turn
		default:
			delete(dp.own, client)
		}
	}
	if t, ok := dp.table.Next(); ok {
		at(t)
	}
	if !dp.refreshAt.IsZero() {
		at(dp.refreshAt)
	}
	dp.next = next
	return out
}

// message builds the next message of an own entry (a goodbye for a nil
// state), stamped.
func (dp *docPresence) message(client string, state json.RawMessage, now time.Time) *wire.Presence {
	m := dp.mgr
	return &wire.Presence{Doc: dp.name, Origin: m.self, Client: client, Stamp: dp.table.NextStamp(client, now),
		TTL: uint64(m.ttl.Milliseconds()), State: state}
}

// send signs and publishes msgs in order, each within timeout; flushed
// waits for each to be written to the topic's peers (for goodbyes at
// shutdown).
func (m *presenceMgr) send(msgs []outMsg, timeout time.Duration, flushed bool) {
	for _, o := range msgs {
		b, err := m.encode(o.p)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			if flushed {
				err = o.dp.topic.PublishFlushed(ctx, b)
			} else {
				err = o.dp.topic.Publish(ctx, b)
			}
			cancel()
		}
		if err != nil {
			m.netm.Drop("presence", "publish")
			m.log.Debug("presence not published", "doc", o.dp.name, "err", err)
			continue
		}
		m.metrics.updates.WithLabelValues(cnet.DirectionOut).Inc()
		m.metrics.bytes.Add(float64(len(b)))
	}
}

func (m *presenceMgr) encode(p *wire.Presence) ([]byte, error) {
	if err := wire.SignPresence(m.key, p); err != nil {
		return nil, fmt.Errorf("concord: sign presence: %w", err)
	}
	return wire.EncodePresence(p)
}

// close says goodbye for every own entry (best effort, within
// presenceGoodbyeTimeout), stops the loop, leaves the topics and closes
// the subscriptions. It is idempotent.
func (m *presenceMgr) close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	now := m.now()
	var out []outMsg
	for _, dp := range m.docs {
		for client, o := range dp.own {
			if o.state != nil || o.pending {
				out = append(out, outMsg{dp, dp.message(client, nil, now)})
			}
		}
		clear(dp.own)
	}
	m.mu.Unlock()
	close(m.quit)
	<-m.done
	deadline := time.Now().Add(presenceGoodbyeTimeout)
	for _, o := range out {
		if left := time.Until(deadline); left > 0 {
			m.send([]outMsg{o}, left, true)
		}
	}
	if len(out) > 0 {
		// Written to the streams is not yet on the wire: the muxer queues
		// frames, and closing the host drops what it still holds.
		time.Sleep(min(presenceGoodbyeGrace, max(time.Until(deadline), 0)))
	}
	m.mu.Lock()
	docs := make([]*docPresence, 0, len(m.docs))
	for _, dp := range m.docs {
		docs = append(docs, dp)
	}
	m.mu.Unlock()
	for _, dp := range docs {
		_ = dp.topic.Close()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, dp := range docs {
		for s := range dp.subs {
			close(s.c)
			delete(dp.subs, s)
		}
		m.metrics.entries.DeleteLabelValues(dp.name)
	}
}
