package engine

import "time"

// Group commit: own writes that arrive while an own delta is being
// persisted gather into the next one (write.go). With several writers that
// each wait for their write to be durable before the next, cutting the
// next delta the moment the previous one is durable splits them into two
// alternating groups: the writers just answered write again only after
// that cut, so each write waits for two syncs and a delta carries about
// half of them. So when a delta that carried more than one proposal
// becomes durable, the next cut waits until as many proposals are pending
// as were outstanding then (the answered ones and those already pending):
// the answered writers, writing again, join the others in one delta. The
// wait ends at the latest after the time that delta took to persist (and
// GroupWait), so a write waits at most about two syncs, as without it; a
// lone writer (one outstanding proposal) never waits.
//
// Nor does anyone when persisting took less than minGroupWait (a memory
// store).
//
// The wait is off unless Config.GroupWait asks for it: the writers
// answered come back one after the other through the document's lock
// (~10 µs each on 2 busy cores, so ~0.6 ms for 64), and when deltas
// persist sooner than that (tmpfs, a fast disk) a wait that runs out
// leaves many writers on their way back when the next delta becomes
// durable, which then settles on small deltas, each signed, sent and
// checked on its own (measured on tmpfs: 3-6 writes a delta against ~16
// without the wait; BENCHMARKS.md, "Scale: durable throughput").

// minGroupWait: a delta that persisted quicker than this is not worth
// waiting after.
const minGroupWait = 50 * time.Microsecond

// groupHold is the wait of the next cut (zero: none).
type groupHold struct {
	want  int       // cut once this many proposals are pending
	until time.Time // or at this time (Tick)
}

// holdCut starts the wait of the next cut after own batch b became durable
// at now.
func (d *Doc) holdCut(now time.Time, b *batch) {
	d.hold = groupHold{}
	outstanding := len(b.props) + len(d.pendProps)
	if d.cfg.GroupWait <= 0 {
		return
	}
	wait := min(d.cfg.GroupWait, now.Sub(b.cutAt))
	if outstanding < 2 || wait < minGroupWait || d.ownFlight > 0 || d.failed != nil || d.closed {
		return
	}
	d.hold = groupHold{want: outstanding, until: now.Add(wait)}
}

// holding reports whether the cut waits for more proposals; once they are
// there (or a snapshot wants the pending writes durable) the wait ends.
func (d *Doc) holding() bool {
	if d.hold.want == 0 {
		return false
	}
	if len(d.pendProps) < d.hold.want && len(d.wantSnap) == 0 && !d.holdWrites && !d.closed && d.failed == nil {
		return true
	}
	d.hold = groupHold{}
	return false
}

// tickHold ends a wait that has run its time, and cuts.
func (d *Doc) tickHold(now time.Time) {
	if d.hold.want == 0 || now.Before(d.hold.until) {
		return
	}
	d.hold = groupHold{}
	d.step()
}
