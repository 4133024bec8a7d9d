package concord

import (
	"context"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
)

// The work queue: Readys carried out in order, and the outcomes of the
// writes they asked for.

// work is one item of the queue: a Ready to carry out, or an append's
// outcome to report to the engine.
type work struct {
	rd        *engine.Ready
	appendID  uint64 // an append's outcome
	ackUpTo   uint64 // an acknowledgment's outcome
	compacted bool   // a compaction's outcome
	forks     uint64 // fork proofs' outcome (added: the new side was stored)
	added     bool
	err       error
}

// outcome queues a write's outcome (the store's commit goroutine calls it:
// it never waits).
func (r *driver) outcome(w work) {
	r.qmu.Lock()
	r.outcomes = append(r.outcomes, w)
	r.scheduleLocked()
	r.qmu.Unlock()
}

func (r *driver) scheduleLocked() {
	if !r.scheduled {
		r.scheduled = true
		r.pool.Schedule(r)
	}
}

// maxRun bounds the items one turn of run takes before the document
// goes back to the end of the pool's queue, so a busy document cannot hold
// a worker while others wait.
const maxRun = 64

// inboxTurn is how many queued items at most go before the inbox's next
// message (see Run).
const inboxTurn = 8

// Run drains the work queue; the pool calls it on one worker at a time.
func (r *driver) Run() {
	sinceInbox := 0 // items taken since the inbox's last message
	for n := 0; ; n++ {
		r.qmu.Lock()
		if n == maxRun && (len(r.outcomes) > 0 || len(r.work) > 0 || len(r.inbox) > 0) {
			r.pool.Schedule(r) // still scheduled: back in line
			r.qmu.Unlock()
			return
		}
		var w work
		// Gossip's messages come after the work queued before them, so
		// that each adds at most one Ready to a short queue — but one
		// every inboxTurn items at least, so that writers and sync
		// sessions keeping the queue busy do not starve the inbox.
		takeIn := len(r.inbox) > 0 && (sinceInbox >= inboxTurn || len(r.outcomes)+len(r.work) == 0) && len(r.work) < maxWork
		sinceInbox++
		switch {
		case takeIn:
			sinceInbox = 0
			in := r.takeInboxLocked()
			r.qmu.Unlock()
			r.stepInbound(in)
			continue
		case len(r.outcomes) > 0:
			w = r.outcomes[0]
			r.outcomes = r.outcomes[1:]
		case len(r.work) > 0:
			w = r.work[0]
			r.work = r.work[1:]
			r.room.Broadcast()
		default:
			r.scheduled = false
			r.room.Broadcast()
			r.qmu.Unlock()
			return
		}
		r.qmu.Unlock()
		if w.rd == nil {
			if w.compacted {
				r.stepFromWork(func(e *engine.Doc) { e.Compacted(w.err) })
			} else if w.forks != 0 {
				r.stepFromWork(func(e *engine.Doc) { e.ForksStored(w.forks, w.added, w.err) })
			} else if w.ackUpTo != 0 {
				r.updateOutboxMetric()
				r.stepFromWork(func(e *engine.Doc) { e.Acknowledged(w.ackUpTo, w.err) })
			} else {
				r.stepFromWork(func(e *engine.Doc) { e.Persisted(r.d.now(), w.appendID, w.err) })
			}
			r.qmu.Lock()
			r.inflight--
			r.room.Broadcast()
			r.qmu.Unlock()
			continue
		}
		r.carryOut(w.rd)
	}
}

// carryOut does what a Ready asks, in its order.
func (r *driver) carryOut(rd *engine.Ready) {
	ctx := context.Background()
	st := r.d.store
	for i := range rd.Appends {
		a := &rd.Appends[i]
		if err := a.Seal(); err != nil {
			r.qmu.Lock()
			r.inflight++
			r.qmu.Unlock()
			r.outcome(work{appendID: a.ID, err: err})
			continue
		}
		own := crdt.ReplicaID("")
		if a.Own {
			own = r.d.self
		}
		id := a.ID
		r.qmu.Lock()
		r.inflight++
		r.qmu.Unlock()
		if err := st.AppendNotify(ctx, r.doc, own, a.Entries, func(err error) { r.outcome(work{appendID: id, err: err}) }); err != nil {
			r.outcome(work{appendID: id, err: err})
		}
	}
	for _, fw := range rd.Forks {
		// Synchronous, on the worker: rare (a fork is a misbehaving author).
		added, ferr := false, error(nil)
		for _, f := range fw.Proofs {
			ok, err := st.AddFork(ctx, r.doc, f)
			if err != nil {
				ferr = err
				break
			}
			added = ok // the new side's outcome decides
		}
		r.qmu.Lock()
		r.inflight++
		r.qmu.Unlock()
		r.outcome(work{forks: fw.ID, added: added, err: ferr})
	}
	if upTo := rd.AckUpTo; upTo != 0 {
		// Asynchronous too: a synced write on the worker would hold the
		// document's next delta back by one sync.
		r.qmu.Lock()
		r.inflight++
		r.qmu.Unlock()
		if err := st.AckNotify(ctx, r.doc, upTo, func(err error) { r.outcome(work{ackUpTo: upTo, err: err}) }); err != nil {
			r.outcome(work{ackUpTo: upTo, err: err})
		}
	}
	if c := rd.Compact; c != nil {
		// On a goroutine of its own (one per document at a time: the engine
		// runs one compaction at once): it rewrites the snapshot and deletes
		// the log it covers, and the document's writes go on meanwhile.
		r.qmu.Lock()
		r.inflight++
		r.qmu.Unlock()
		go func() {
			err := st.Compact(ctx, r.doc, c.Snapshot)
			r.outcome(work{compacted: true, err: err})
		}()
	}
	for _, e := range rd.Publish {
		if r.d.publish != nil {
			r.d.publish(e)
		}
	}
	if len(rd.Publish) > 0 {
		r.updateOutboxMetric()
	}
	for _, c := range rd.Changes {
		r.notify(Change{Doc: r.doc, N: c.N, Local: c.Local, Origin: c.Origin, Peer: c.Peer, Paths: c.Paths, Patches: c.Patches})
	}
	if n := len(rd.Committed) + len(rd.AckWaits) + len(rd.Compacted); n > 0 {
		r.mu.Lock()
		for _, list := range [][]engine.Commit{rd.Committed, rd.AckWaits, rd.Compacted} {
			for _, c := range list {
				if ch := r.commits[c.ID]; ch != nil {
					ch <- c.Err
					delete(r.commits, c.ID)
				}
			}
		}
		r.mu.Unlock()
	}
	for _, p := range rd.Pulls {
		if r.d.pull != nil {
			r.d.pull(p, r)
		}
	}
	m := r.d.metrics
	for _, q := range rd.Equivocations {
		m.Equivocation()
		r.d.log.Warn("equivocation: two deltas signed for one sequence number", "origin", q.Origin, "seq", q.Seq, "from", q.Peer)
		if r.d.onEquivocation != nil {
			r.d.onEquivocation(EquivocationEvent{Doc: r.doc, Origin: q.Origin, Seq: q.Seq, Peer: q.Peer})
		}
	}
	for _, reason := range rd.Rejects {
		m.Reject(reason)
	}
	for _, dq := range rd.Drops {
		m.Drop(dq[0], dq[1])
	}
	if m != nil {
		for _, lat := range rd.Propagation {
			m.DeltaPropagation.Observe(max(lat.Seconds(), 0))
		}
	}
	for _, w := range rd.Warnings {
		r.d.log.Warn("document", "doc", r.doc, "err", w)
	}
}

func (r *driver) updateOutboxMetric() {
	if m := r.d.metrics; m != nil {
		m.OutboxDepth.WithLabelValues(r.doc).Set(float64(r.d.store.OutboxDepth(r.doc)))
	}
}
