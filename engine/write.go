package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// Local writes: a proposal is applied to the state at once (reads see it)
// and joins the pending delta; the pending delta is cut — signed, split
// when too big, and handed out as one Append — whenever no own delta is
// being persisted. While one is, the writes arriving meanwhile gather into
// the next (group commit). A proposal is answered (Ready.Committed) once
// the delta carrying it is durable, in the same Ready that publishes it.

// TxnBytes is the size a transaction counts against MaxTxnBytes.
func TxnBytes(ops []crdt.Op) int {
	n := 0
	for _, op := range ops {
		n += len(op.Value) + len(op.Text) + 16
		for _, v := range op.Values {
			n += len(v) + 1
		}
		for _, k := range op.Path {
			n += len(k)
		}
	}
	return n
}

// Propose applies ops as one local transaction at time now. It returns the
// proposal's ID, answered in a later Ready's Committed, or an error when
// the transaction is refused (nothing is applied).
func (d *Doc) Propose(now time.Time, ops []crdt.Op) (uint64, error) {
	id, _, err := d.ProposeAt(now, ops, nil)
	return id, err
}

// ProposeAt is Propose where ops[i] with bases[i] != 0 is a splice made
// on the view after change bases[i]: it is rebased over the changes since
// (see RebaseSplice) when applied, and refused with ErrStaleBase when that
// cannot be done. It also returns the number of the change that holds the
// write, or 0 when the write is held back (a snapshot is being taken) and
// applied later.
func (d *Doc) ProposeAt(now time.Time, ops []crdt.Op, bases []uint64) (id, change uint64, err error) {
	if n := TxnBytes(ops); n > MaxTxnBytes {
		return 0, 0, fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	d.now = now
	switch {
	case d.closed:
		return 0, 0, ErrClosed
	case d.failed != nil:
		return 0, 0, d.failed
	case d.cfg.Writers != nil && !d.cfg.Writers[d.cfg.SelfPeer]:
		return 0, 0, ErrNotWriter
	}
	d.nextProp++
	id = d.nextProp
	if d.holdWrites {
		// A snapshot of durable state is being taken: the write waits.
		d.held = append(d.held, heldProposal{id, slices.Clone(ops), slices.Clone(bases), now})
		return id, 0, nil
	}
	if err := d.apply(now, ops, bases); err != nil {
		d.nextProp-- // nothing of it remains
		return 0, 0, err
	}
	if d.openLocal != nil {
		change = d.openLocal.ch.N
	}
	d.pendProps = append(d.pendProps, id)
	d.cut()
	return id, change, nil
}

// propose applies a held proposal; a refusal is its answer.
func (d *Doc) propose(id uint64, now time.Time, ops []crdt.Op, bases []uint64) {
	if err := d.apply(now, ops, bases); err != nil {
		d.rd.Committed = append(d.rd.Committed, Commit{id, err})
		return
	}
	d.pendProps = append(d.pendProps, id)
}

func (d *Doc) apply(now time.Time, ops []crdt.Op, bases []uint64) error {
	ops, err := d.rebaseOps(ops, bases)
	if err != nil {
		return err
	}
	ts := d.clock.Now(now.UnixMilli())
	if d.pending == nil {
		d.pending = crdt.New()
	}
	var patches []crdt.SeqPatch
	if d.track {
		patches, err = d.state.ApplyEdits(d.pending, d.cfg.Self, ts, ops...)
	} else {
		err = d.state.ApplyTo(d.pending, d.cfg.Self, ts, ops...)
	}
	if err != nil {
		if d.pending.IsEmpty() {
			d.pending = nil
		}
		return err
	}
	d.clock = ts
	var paths [][]string
	if d.track {
		for _, op := range ops {
			paths = append(paths, op.Path)
		}
		patches = replacedWithout(ops, patches)
	}
	d.noteLocal(paths, patches)
	d.lastNow = now
	return nil
}

// cut turns the pending writes into one signed delta (or several pieces)
// when no own delta is being persisted and the cut does not wait for more
// (group.go).
func (d *Doc) cut() {
	if d.pending == nil || d.ownFlight > 0 || d.holding() {
		return
	}
	delta, props, changes := d.pending, d.pendProps, d.takeLocal()
	d.pending, d.pendProps = nil, nil
	if d.failed != nil {
		d.settle(changes...)
		for _, p := range props {
			d.rd.Committed = append(d.rd.Committed, Commit{p, d.failed})
		}
		return
	}
	dot := d.state.Context().Max(d.cfg.Self) // pending writes are applied to state already
	envs, entries, err := d.sign(delta, dot)
	if err != nil {
		d.fail(err)
		d.settle(changes...)
		for _, p := range props {
			d.rd.Committed = append(d.rd.Committed, Commit{p, d.failed})
		}
		return
	}
	b := d.append(entries, true)
	b.envs, b.props, b.changes, b.cutAt = envs, props, changes, d.now
	a := &d.rd.Appends[len(d.rd.Appends)-1]
	a.envs, a.key = envs, d.cfg.Key
	d.ownFlight++
	d.checkWaiters()
}

// sign makes an own delta one envelope or, when its payload would
// exceed the bound (a delete of a big map whose values' dots are
// scattered, a group commit of many writes), as pieces that each fit
// (crdt.SplitDelta) at consecutive sequence numbers, each signed with dot,
// the author's dot count once the whole delta is applied (signed when the
// Append is sealed). All go into one Append, so they become durable
// together. Receivers may merge the pieces
// apart, in any order; together they are the delta.
func (d *Doc) sign(delta *crdt.State, dot uint64) ([]*wire.Envelope, []store.Entry, error) {
	bound := d.cfg.PieceBytes
	if bound <= 0 {
		bound = MaxPayload
	}
	self := d.cfg.Self
	pieces := []*crdt.State{delta}
	var payloads [][]byte
	// One splice of a text or list (a keystroke) in the compact form,
	// when the peers speak it; anything else in the classic one.
	compact := d.features().Has(wire.FeatureCompactSplice)
	encode := func(p *crdt.State) []byte {
		if compact {
			if b, ok := crdt.EncodeDeltaCompact(p, self); ok {
				return b
			}
		}
		return crdt.EncodeDelta(p, self)
	}
	// Each context interval and each value costs at least two bytes: a
	// delta over the bound by that count alone is not encoded whole.
	if 2*(delta.Context().CloudSize()+delta.Dots()) <= bound {
		payloads = append(payloads, encode(delta))
	}
	if len(payloads) == 0 || len(payloads[0]) > bound {
		pieces = crdt.SplitDelta(delta, self, crdt.Limits{MaxBytes: bound, MaxElements: payloadLimits.MaxElements})
		payloads = payloads[:0]
		for _, p := range pieces {
			payloads = append(payloads, encode(p))
		}
	}
	// Each piece has a timestamp of its own: an author's envelopes never
	// share one, and never go back.
	seq := d.nextSeq
	d.nextSeq += uint64(len(pieces))
	ts := d.clock
	envs := make([]*wire.Envelope, len(pieces))
	entries := make([]store.Entry, len(pieces))
	for i, p := range pieces {
		if i > 0 || ts <= d.signedHLC {
			d.clock = d.clock.Now(d.lastNow.UnixMilli())
			ts = d.clock
		}
		d.signedHLC = ts
		d.noteClaims(p, self, seq+uint64(i), seq+uint64(i))
		// Signed by the driver, outside its lock (Append.Seal): signing is
		// the costliest step of a local write, and writers wait for the lock.
		envs[i] = &wire.Envelope{Doc: d.cfg.Doc, Origin: self, Seq: seq + uint64(i), HLC: uint64(ts), Dot: dot, Features: payloadFeatures(p, payloads[i]), Payload: payloads[i], Delta: p}
		entries[i] = store.Entry{Replica: self, Seq: envs[i].Seq}
	}
	return envs, entries, nil
}

// deltaFeatures returns the optional parts of the format delta uses.
func deltaFeatures(delta *crdt.State) wire.Features {
	if delta.HasSequences() {
		return wire.FeatureSequences
	}
	return 0
}

// payloadFeatures returns the optional parts of the format that delta,
// encoded as payload, uses: its content's, and the compact splice form.
func payloadFeatures(delta *crdt.State, payload []byte) wire.Features {
	f := deltaFeatures(delta)
	if crdt.IsCompactDelta(payload) {
		f |= wire.FeatureCompactSplice
	}
	return f
}

// features returns the optional features the document speaks.
func (d *Doc) features() wire.Features {
	if d.cfg.Features == 0 {
		return wire.SupportedFeatures
	}
	return d.cfg.Features
}

// WaitAcked registers a wait until peers (as many as AckPeers) hold every
// own delta of the proposals made so far; it is answered in a later
// Ready's AckWaits, with the given ticket id.
func (d *Doc) WaitAcked(id uint64) {
	switch {
	case d.closed:
		d.rd.AckWaits = append(d.rd.AckWaits, Commit{id, ErrClosed})
		return
	case d.failed != nil:
		d.rd.AckWaits = append(d.rd.AckWaits, Commit{id, d.failed})
		return
	}
	d.waiters = append(d.waiters, ackWaiter{id: id, prop: d.nextProp})
	d.checkWaiters()
}

// checkWaiters answers the ack waits that are satisfied.
func (d *Doc) checkWaiters() {
	if len(d.waiters) == 0 {
		return
	}
	// Every proposal up to cut has its sequence numbers (or was refused).
	cut := d.nextProp
	if len(d.held) > 0 {
		cut = d.held[0].id - 1
	}
	if len(d.pendProps) > 0 {
		cut = min(cut, d.pendProps[0]-1)
	}
	kept := d.waiters[:0]
	for _, w := range d.waiters {
		if !w.resolved && w.prop <= cut {
			w.target, w.resolved = d.nextSeq-1, true
		}
		if w.resolved && d.acked >= w.target {
			d.rd.AckWaits = append(d.rd.AckWaits, Commit{w.id, nil})
			continue
		}
		kept = append(kept, w)
	}
	d.waiters = kept
}

// replacedWithout drops the patches of the sequences that a transaction's
// other ops replaced or removed (a delete, a set at or above the path):
// patches describe splices only, so with such an op in between they would
// not turn the old view into the new one. The path then changed without
// patches: subscribers read it again, and no splice is rebased over it.
func replacedWithout(ops []crdt.Op, patches []crdt.SeqPatch) []crdt.SeqPatch {
	if len(patches) == 0 {
		return patches
	}
	var replaced [][]string
	for _, op := range ops {
		if op.Kind != crdt.OpSplice {
			replaced = append(replaced, op.Path)
		}
	}
	if len(replaced) == 0 {
		return patches
	}
	out := patches[:0:0]
	for _, p := range patches {
		if !slices.ContainsFunc(replaced, func(r []string) bool { return isPrefix(r, p.Path) || isPrefix(p.Path, r) }) {
			out = append(out, p)
		}
	}
	return out
}
