package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// ---- actions ----

func (s *sim) pickUp() int {
	var ups []int
	for i := range s.reps {
		if s.up(i) {
			ups = append(ups, i)
		}
	}
	if len(ups) == 0 {
		return -1
	}
	return ups[s.rng.IntN(len(ups))]
}

func (s *sim) pickPair() (int, int, bool) {
	var pairs [][2]int
	for i := range s.reps {
		for j := i + 1; j < len(s.reps); j++ {
			if s.connected(i, j) {
				pairs = append(pairs, [2]int{i, j})
			}
		}
	}
	if len(pairs) == 0 {
		return 0, 0, false
	}
	p := pairs[s.rng.IntN(len(pairs))]
	if s.chance(0.5) {
		return p[1], p[0], true
	}
	return p[0], p[1], true
}

func (s *sim) randomOp() crdt.Op {
	k := simKeys[s.rng.IntN(len(simKeys))]
	path := slices.Clone(k.path)
	scalar := func() []byte { return []byte(simScalars[s.rng.IntN(len(simScalars))]) }
	op := s.rng.IntN(6)
	if k.kind >= 0 && s.chance(0.85) {
		switch k.kind {
		case 0:
			op = []int{0, 0, 0, 1}[s.rng.IntN(4)]
		case 1:
			op = []int{2, 2, 2, 1}[s.rng.IntN(4)]
		case 2:
			op = []int{3, 4, 5, 1}[s.rng.IntN(4)]
		}
	}
	switch op {
	case 0:
		if s.chance(0.2) {
			return crdt.Set(path, []byte(fmt.Sprintf(`{"v":%d}`, s.rng.IntN(10))))
		}
		return crdt.Set(path, scalar())
	case 1:
		return crdt.Delete(path)
	case 2:
		return crdt.Inc(path, int64(s.rng.IntN(11)-5))
	case 3, 4:
		return crdt.Add(path, scalar())
	default:
		return crdt.Remove(path, scalar())
	}
}

// simSeqShare is the share of a write's random ops that edit a text or
// the list.
const simSeqShare = 0.3

// write applies 1–3 random ops (map ops and splices) plus a unique marker
// as one transaction.
func (s *sim) write() {
	i := s.pickUp()
	if i < 0 {
		return
	}
	sr := s.reps[i]
	sr.marks++
	mark := fmt.Sprintf("w%d-%d", i, sr.marks)
	ops := make([]crdt.Op, 0, 4)
	tx := &seqTxn{st: sr.d.State()}
	for range 1 + s.rng.IntN(3) {
		var op crdt.Op
		if s.seqEdits && s.chance(simSeqShare) {
			op = s.seqOp(tx)
		} else {
			op = s.randomOp()
		}
		tx.apply(op)
		ops = append(ops, op)
	}
	ops = slices.Insert(ops, s.rng.IntN(len(ops)+1), crdt.Add([]string{simAckKey}, []byte(`"`+mark+`"`)))
	seq := sr.d.NextSeq()
	id, err := sr.d.Propose(s.clock(i), ops)
	if err == nil {
		s.drain(i)
		var ok bool
		if err, ok = sr.commits[id]; !ok {
			s.fail("write on replica %d: not answered after its Ready was handled", i)
		}
		delete(sr.commits, id)
	}
	if n := sr.d.NextSeq() - seq; n > 1 {
		s.stats.splits++
		s.logf("write %d %s: %d pieces", i, mark, n)
	}
	switch {
	case err == nil:
		sr.acked = append(sr.acked, mark)
		s.seqAcked(tx)
		s.stats.writes++
		s.logf("write %d %s %s", i, mark, opsString(ops))
	case errors.Is(err, crdt.ErrTypeConflict), errors.Is(err, engine.ErrNotWriter):
		s.stats.refused++
		s.logf("write %d %s refused: %v", i, mark, err)
	default:
		s.fail("write on replica %d: %v", i, err)
	}
}

func opsString(ops []crdt.Op) string {
	var b strings.Builder
	for k, op := range ops {
		if k > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s", op.Kind, strings.Join(op.Path, "."))
		if op.Value != nil {
			fmt.Fprintf(&b, " %s", op.Value)
		}
		if op.Kind == crdt.OpInc {
			fmt.Fprintf(&b, " %d", op.By)
		}
		if op.Kind == crdt.OpSplice {
			fmt.Fprintf(&b, " @%d -%d", op.Index, op.Del)
			if op.Text != "" {
				fmt.Fprintf(&b, " %+q", op.Text)
			}
			for _, v := range op.Values {
				fmt.Fprintf(&b, " %s", v)
			}
		}
	}
	return b.String()
}

// pickMsg removes and returns an in-flight message: the oldest half the
// time (FIFO), otherwise any (reordering).
func (s *sim) pickMsg() *simMsg {
	if len(s.inflight) == 0 {
		return nil
	}
	k := 0
	if s.chance(0.5) {
		k = s.rng.IntN(len(s.inflight))
	}
	m := s.inflight[k]
	s.inflight = slices.Delete(s.inflight, k, k+1)
	return m
}

// deliver hands a message (and, sometimes, more deltas from the same
// sender, as one gossip batch) to its recipient.
func (s *sim) deliver(m *simMsg) {
	if !s.connected(m.from, m.to) {
		s.stats.dropped++
		s.logf("lost %v (not connected)", m)
		return
	}
	dst := s.reps[m.to]
	from := s.reps[m.from].peer
	if m.kind == simSummary {
		sum, err := wire.DecodeSummary(m.data, wire.DefaultLimits())
		if err != nil {
			s.fail("decode summary %v: %v", m, err)
		}
		s.stats.summaries++
		s.logf("deliver %v vv=%v", m, fmtVV(s, sum.VV))
		dst.d.Summary(s.clock(m.to), from, sum, true)
		s.drain(m.to)
		return
	}
	msgs := []*simMsg{m}
	if s.chance(0.2) {
		for k := 0; k < len(s.inflight) && len(msgs) < 4; k++ {
			o := s.inflight[k]
			if o.kind == simDelta && o.from == m.from && o.to == m.to {
				msgs = append(msgs, o)
				s.inflight = slices.Delete(s.inflight, k, k+1)
				k--
			}
		}
	}
	var envs, raw []*wire.Envelope
	for _, m := range msgs {
		e, err := wire.DecodeEnvelope(m.data, wire.DefaultLimits())
		if err != nil {
			s.fail("decode %v: %v", m, err)
		}
		raw = append(raw, e)
	}
	// As the gossip publisher: a run of the sender's consecutive deltas
	// sent together may travel as one aggregate.
	if src := s.reps[m.from]; len(raw) > 1 && s.chance(0.5) {
		run := true
		for k, e := range raw {
			run = run && e.Origin == src.id && e.Last == 0 && (k == 0 || e.Seq == raw[k-1].Seq+1)
		}
		if run {
			agg, err := engine.Coalesce(simDoc, src.id, src.key, raw)
			if err != nil {
				s.fail("coalesce %v: %v", m, err)
			}
			if agg != nil { // nil: the join is too big; the run goes as it is
				s.stats.aggregates++
				raw = []*wire.Envelope{agg}
			}
		}
	}
	chk := &engine.Checker{Doc: simDoc, Writers: s.writers, Cache: newCache()}
	for _, e := range raw {
		switch err := engine.Validate(store.DocLog{St: dst.st, Doc: simDoc}, chk, from, e); {
		case errors.Is(err, wire.ErrDuplicate):
			s.logf("deliver %v %s/%d: duplicate", m, shortID(e.Origin), e.Seq)
			continue
		case err != nil:
			s.fail("validate %v: %v", m, err)
		}
		s.logf("deliver %v %s/%d", m, shortID(e.Origin), e.Seq)
		envs = append(envs, e)
	}
	s.stats.delivered += len(msgs)
	if len(envs) == 0 {
		return
	}
	// Gossip hands over validated envelopes; sometimes take the unverified
	// path (as the sync stream does) instead.
	dst.d.Receive(s.clock(m.to), from, envs, s.chance(0.7))
	s.drain(m.to)
}

func shortID(r crdt.ReplicaID) string {
	s := string(r)
	if i := strings.LastIndexByte(s, '.'); i > 6 {
		return s[i-6:]
	}
	return s
}

func fmtVV(s *sim, vv crdt.VersionVector) string {
	parts := make([]string, 0, len(vv))
	for i, sr := range s.reps {
		if n := vv[sr.id]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d:%d", i, n))
		}
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// summary makes replica i publish its summary beacon to its connected peers.
func (s *sim) summary() {
	i := s.pickUp()
	if i < 0 {
		return
	}
	sr := s.reps[i]
	b, err := wire.EncodeSummary(&wire.Summary{Doc: simDoc, Origin: sr.id, VV: sr.d.Version()})
	if err != nil {
		s.fail("encode summary: %v", err)
	}
	s.logf("summary from %d", i)
	for j := range s.reps {
		if s.connected(i, j) {
			s.msgID++
			s.inflight = append(s.inflight, &simMsg{id: s.msgID, kind: simSummary, from: i, to: j, data: b})
		}
	}
}
