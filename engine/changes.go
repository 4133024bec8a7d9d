package engine

import "github.com/concord-p2p/concord/crdt"

// Change events. Every change of the state — a run of local transactions,
// a batch of received deltas, a snapshot, a fork proof — is announced once
// what it depends on is durable (a local transaction's delta, a received
// delta's log entry, a snapshot), and in the order the changes were applied
// to the state: a change applied after another waits for it. So a
// subscriber that applies each change's sequence patches, in order, to the
// view it had gets the state's view, whatever the disk does.

// pendingChange is one change applied to the state, not yet announced.
type pendingChange struct {
	ch    Change
	ready bool // durable: may be announced once those before it are
}

// newChange queues ch as applied now.
func (d *Doc) newChange(ch Change) *pendingChange {
	ch.N = d.rebase.next()
	d.rebase.record(ch.N, d.track, ch.Paths, ch.Patches)
	c := &pendingChange{ch: ch}
	d.changes = append(d.changes, c)
	return c
}

// noteLocal records a local transaction that changed paths. Consecutive
// local transactions that nothing else came between are one change.
func (d *Doc) noteLocal(paths [][]string, patches []crdt.SeqPatch) {
	c := d.openLocal
	if n := len(d.changes); c == nil || n == 0 || d.changes[n-1] != c {
		c = d.newChange(Change{Local: true, Origin: d.cfg.Self})
		d.openLocal = c
		d.pendChanges = append(d.pendChanges, c)
	}
	c.ch.Paths = append(c.ch.Paths, paths...)
	c.ch.Patches = append(c.ch.Patches, patches...)
	d.rebase.record(c.ch.N, d.track, paths, patches)
}

// settle marks cs durable and announces what may be announced.
func (d *Doc) settle(cs ...*pendingChange) {
	for _, c := range cs {
		c.ready = true
	}
	i := 0
	for ; i < len(d.changes) && d.changes[i].ready; i++ {
		c := d.changes[i]
		c.ch.Paths = dedupPaths(c.ch.Paths)
		d.rd.Changes = append(d.rd.Changes, c.ch)
		if c == d.openLocal {
			d.openLocal = nil
		}
	}
	if i > 0 {
		clear(d.changes[:i])
		d.changes = d.changes[i:]
	}
}

// takeLocal hands the local changes of the pending writes to the delta
// being cut.
func (d *Doc) takeLocal() []*pendingChange {
	cs := d.pendChanges
	d.pendChanges, d.openLocal = nil, nil
	return cs
}

// noteSeqLost counts, as drops, the inserts merges into the state's texts
// and lists dropped since the last call (naming collected or inconsistent
// origins).
func (d *Doc) noteSeqLost() {
	n := d.state.SeqLost()
	for ; d.seqLost < n; d.seqLost++ {
		d.drop("seq_insert", "orphaned")
	}
}
