package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/wire"
)

func newCache() engine.VerifiedCache {
	c, err := simplelru.NewLRU[[32]byte, struct{}](1024, nil)
	if err != nil {
		panic(err)
	}
	return c
}

// exchange runs one anti-entropy exchange between a (initiator) and b over
// an in-memory reliable stream, interleaving the two sides randomly. With
// interrupt >= 0 the stream breaks after that many steps. It reports
// whether any delta or snapshot was received by either side.
func (s *sim) exchange(a, b int, interrupt int) (moved bool) {
	ra, rb := s.reps[a], s.reps[b]
	lim := wire.DefaultSyncLimits()
	sides := [2]*engine.Session{ra.d.NewSession(rb.peer, lim), rb.d.NewSession(ra.peer, lim)}
	defer sides[0].Close()
	defer sides[1].Close()
	idx := [2]int{a, b}
	var (
		queue    [2][][]byte // queue[k]: frames from side k to side 1-k
		sentDone [2]bool
	)
	send := func(k int, m *wire.SyncMsg) {
		f, err := wire.EncodeSyncMsg(m)
		if err != nil {
			s.fail("encode sync message: %v", err)
		}
		queue[k] = append(queue[k], f)
		if m.Type == wire.TypeSyncDone {
			sentDone[k] = true
		}
	}
	send(0, sides[0].Hello())
	send(1, sides[1].Hello())
	s.stats.exchanges++
	for n := 0; ; n++ {
		if sides[0].Finished() && sides[1].Finished() && len(queue[0]) == 0 && len(queue[1]) == 0 {
			break
		}
		if interrupt >= 0 && n >= interrupt {
			s.stats.interrupted++
			s.logf("exchange %d↔%d interrupted after %d steps", a, b, n)
			return moved
		}
		// 0,1: side k reads a frame; 2,3: side k-2 produces one.
		var can []int
		for k := range 2 {
			if len(queue[1-k]) > 0 {
				can = append(can, k)
			}
			if sides[k].GotHello() && !sentDone[k] {
				can = append(can, k+2)
			}
		}
		if len(can) == 0 {
			s.fail("exchange %d↔%d stalled: finished=%v/%v", a, b, sides[0].Finished(), sides[1].Finished())
		}
		c := can[s.rng.IntN(len(can))]
		if c >= 2 {
			k := c - 2
			m, wait, err := sides[k].Next()
			if err != nil {
				s.fail("exchange %d↔%d: Next on %d: %v", a, b, idx[k], err)
			}
			if wait {
				// The engine waits for writes it asked for: do them.
				s.drain(idx[k])
				if m, wait, err = sides[k].Next(); err != nil || wait {
					s.fail("exchange %d↔%d: Next on %d still waits after its Ready was handled (err %v)", a, b, idx[k], err)
				}
			}
			if m == nil {
				s.fail("exchange %d↔%d: Next on %d returned nothing before Done", a, b, idx[k])
			}
			send(k, m)
			continue
		}
		k := c
		f := queue[1-k][0]
		queue[1-k] = queue[1-k][1:]
		m, err := wire.DecodeSyncMsg(f, lim)
		if err != nil {
			s.fail("exchange %d↔%d: decode: %v", a, b, err)
		}
		switch m.Type {
		case wire.TypeSyncDeltas:
			moved = true
			s.logf("exchange %d→%d: %d deltas", idx[1-k], idx[k], len(m.Envelopes))
		case wire.TypeSyncSnapshot:
			moved = true
			s.stats.snapshots++
			s.logf("exchange %d→%d: snapshot vv=%s", idx[1-k], idx[k], fmtVV(s, m.VV))
		}
		if err := sides[k].Handle(s.clock(idx[k]), m); err != nil {
			s.fail("exchange %d↔%d: Handle on %d: %v", a, b, idx[k], err)
		}
		s.drain(idx[k])
	}
	s.logf("exchange %d↔%d done (%d/%d deltas)", a, b, sides[0].Stats().DeltasIn, sides[1].Stats().DeltasIn)
	return moved
}

func (s *sim) partition() {
	k := 2 + s.rng.IntN(2)
	for i := range s.group {
		s.group[i] = s.rng.IntN(k)
	}
	s.stats.partitions++
	s.logf("partition %v", s.group)
}

func (s *sim) heal() {
	clear(s.group)
	s.logf("heal")
}

// crash closes replica i's store without a word to its engine. Every
// Ready was handled synchronously, so nothing acknowledged is lost.
func (s *sim) crash(i int) {
	sr := s.reps[i]
	sr.crashEnc = crdt.Encode(sr.d.State())
	sr.crashVV = sr.d.Version()
	sr.d.Close()
	if err := sr.st.Close(); err != nil {
		s.fail("close store %d: %v", i, err)
	}
	sr.d, sr.st, sr.pulls = nil, nil, nil
	lost, err := sr.ds.Crash(s.ctx)
	if err != nil {
		s.fail("crash %d: %v", i, err)
	}
	s.stats.crashes++
	s.logf("crash %d (%d unsynced changes lost)", i, lost)
}

// restart reopens replica i over the same datastore and checks that it
// comes back exactly as it was, with every write it acknowledged.
func (s *sim) restart(i int) {
	sr := s.reps[i]
	if err := s.open(i); err != nil {
		s.fail("restart: %v", err)
	}
	s.logf("restart %d", i)
	if enc := crdt.Encode(sr.d.State()); !bytes.Equal(enc, sr.crashEnc) {
		s.fail("replica %d restarted with a different state:\nbefore %x\nafter  %x", i, sr.crashEnc, enc) // hex: crdt states are binary
	}
	if vv := sr.d.Version(); !vvEqual(vv, sr.crashVV) {
		s.fail("replica %d restarted at version %s, crashed at %s", i, fmtVV(s, vv), fmtVV(s, sr.crashVV))
	}
	s.checkOwnMarks(i)
}

func (s *sim) checkOwnMarks(i int) {
	sr := s.reps[i]
	have := s.marks(i)
	for _, m := range sr.acked {
		if !have[m] {
			s.fail("replica %d lost its acknowledged write %s", i, m)
		}
	}
}

// marks returns the acknowledgment markers replica i holds.
func (s *sim) marks(i int) map[string]bool {
	out := map[string]bool{}
	raw, ok := s.reps[i].d.State().Get([]string{simAckKey})
	if !ok {
		return out
	}
	var elems []string
	if err := json.Unmarshal(raw, &elems); err != nil {
		s.fail("replica %d: marker set %s: %v", i, raw, err)
	}
	for _, e := range elems {
		out[e] = true
	}
	return out
}

func vvEqual(a, b crdt.VersionVector) bool { return a.Covers(b) && b.Covers(a) }

// compact folds replica i's log as Doc.Compact does.
func (s *sim) compact(i int) {
	sr := s.reps[i]
	s.msgID++
	ticket := s.msgID
	sr.d.RequestCompaction(s.clock(i), ticket)
	s.drain(i)
	err, ok := sr.commits[ticket]
	if !ok {
		s.fail("compaction of replica %d not answered after its Ready was handled", i)
	}
	delete(sr.commits, ticket)
	if err != nil {
		s.fail("compact replica %d: %v", i, err)
	}
	s.logf("compact %d", i)
}

// pull runs a pull one engine asked for (its summary and gap rules), if the
// peer is reachable.
func (s *sim) pull() {
	var asking []int
	for i, sr := range s.reps {
		if sr.d != nil && len(sr.pulls) > 0 {
			asking = append(asking, i)
		}
	}
	if len(asking) == 0 {
		return
	}
	i := asking[s.rng.IntN(len(asking))]
	sr := s.reps[i]
	p := sr.pulls[0]
	sr.pulls = sr.pulls[1:]
	j := s.byPeer[p]
	if !s.connected(i, j) {
		s.logf("pull %d→%d: not connected", i, j)
		return
	}
	s.stats.pulls++
	s.logf("pull %d→%d", i, j)
	s.exchange(i, j, -1)
}

// tick runs one random action, after advancing the clock and the engines'
// timers.
func (s *sim) tick() {
	s.now = s.now.Add(time.Duration(s.rng.IntN(50)) * time.Millisecond)
	for i, sr := range s.reps {
		if sr.d != nil {
			if at, ok := sr.d.Deadline(); ok && !s.clock(i).Before(at) {
				sr.d.Tick(s.clock(i))
				s.drain(i)
			}
		}
	}
	switch w := s.rng.IntN(100); {
	case w < 22:
		s.write()
	case w < 46:
		if m := s.pickMsg(); m != nil {
			s.deliver(m)
		}
	case w < 51:
		if len(s.inflight) > 0 {
			k := s.rng.IntN(len(s.inflight))
			s.logf("drop %v", s.inflight[k])
			s.inflight = slices.Delete(s.inflight, k, k+1)
			s.stats.dropped++
		}
	case w < 56:
		if len(s.inflight) > 0 {
			m := *s.inflight[s.rng.IntN(len(s.inflight))]
			s.msgID++
			m.id = s.msgID
			s.inflight = slices.Insert(s.inflight, s.rng.IntN(len(s.inflight)+1), &m)
			s.stats.dups++
			s.logf("duplicate as %v", &m)
		}
	case w < 59:
		if n := len(s.inflight); n > 1 {
			x, y := s.rng.IntN(n), s.rng.IntN(n)
			s.inflight[x], s.inflight[y] = s.inflight[y], s.inflight[x]
			s.stats.reorders++
			s.logf("reorder %d↔%d", x, y)
		}
	case w < 67:
		s.summary()
	case w < 72:
		s.pull()
	case w < 80:
		if a, b, ok := s.pickPair(); ok {
			interrupt := -1
			if s.chance(0.25) {
				interrupt = s.rng.IntN(12)
			}
			s.exchange(a, b, interrupt)
		}
	case w < 83:
		s.partition()
	case w < 86:
		s.heal()
	case w < 90:
		if i := s.pickUp(); i >= 0 {
			s.crash(i)
			if s.chance(0.4) {
				s.restart(i)
			}
		}
	case w < 95:
		var down []int
		for i, sr := range s.reps {
			if sr.d == nil {
				down = append(down, i)
			}
		}
		if len(down) > 0 {
			s.restart(down[s.rng.IntN(len(down))])
		}
	default:
		if i := s.pickUp(); i >= 0 {
			s.compact(i)
		}
	}
}

// finish heals everything, brings every replica back, repairs until
// quiescent and checks convergence and durability.
func (s *sim) finish() {
	s.step = s.steps
	s.heal()
	for i, sr := range s.reps {
		if sr.d == nil {
			s.restart(i)
		}
	}
	if s.chance(0.5) {
		s.logf("drain %d in-flight messages", len(s.inflight))
		for len(s.inflight) > 0 {
			s.deliver(s.pickMsg())
		}
	} else {
		s.logf("drop %d in-flight messages", len(s.inflight))
		s.inflight = nil
	}
	n := len(s.reps)
	var pairs [][2]int
	for i := range n {
		for j := i + 1; j < n; j++ {
			pairs = append(pairs, [2]int{i, j})
		}
	}
	quiet := false
	for round := 0; round < 2*n && !quiet; round++ {
		s.logf("repair round %d", round)
		s.rng.Shuffle(len(pairs), func(x, y int) { pairs[x], pairs[y] = pairs[y], pairs[x] })
		quiet = true
		for _, p := range pairs {
			if s.exchange(p[0], p[1], -1) {
				quiet = false
			}
		}
		if len(s.inflight) > 0 {
			s.fail("gossip published during repair")
		}
	}
	if !quiet {
		s.fail("not quiescent after %d repair rounds", 2*n)
	}
	d0 := s.reps[0].d
	want, wantJSON, wantVV := settled(d0.State()), d0.State().JSON(), d0.Version()
	for i, sr := range s.reps {
		if sr.d.State().WantsCollected() {
			s.fail("replica %d still holds back inserts for collected elements", i)
		}
		s.stats.collected += int(sr.d.TombstonesCollected())
		if got := settled(sr.d.State()); !bytes.Equal(got, want) {
			s.fail("replica %d diverged from replica 0:\n0: %s\n%d: %s", i, wantJSON, i, sr.d.State().JSON())
		}
		if vv := sr.d.Version(); !vvEqual(vv, wantVV) {
			s.fail("replica %d at version %s, replica 0 at %s", i, fmtVV(s, vv), fmtVV(s, wantVV))
		}
		if dp := sr.st.OutboxDepth(simDoc); dp != 0 {
			s.fail("replica %d outbox holds %d deltas after quiescence (%v)", i, dp, sr.st.Outbox(simDoc))
		}
		have := s.marks(i)
		for _, o := range s.reps {
			for _, m := range o.acked {
				if !have[m] {
					s.fail("replica %d lacks acknowledged write %s", i, m)
				}
			}
		}
	}
	s.checkSeqs(d0.State())
	s.logf("converged: %s version=%s", wantJSON, fmtVV(s, wantVV))
	_, _ = s.h.Write(want)
	s.digest = s.h.Sum(nil)
}

// settled encodes st as it is once every tombstone every replica holds
// is collected: replicas that collected at different times hold different
// tombstones (what nothing names) and agree once all have collected.
func settled(st *crdt.State) []byte { return crdt.Encode(settledState(st)) }

func settledState(st *crdt.State) *crdt.State {
	c := st.Clone()
	all := crdt.VersionVector{} // past every dot, clouds included
	for _, rep := range c.Context().Replicas() {
		all[rep] = c.Context().Max(rep)
	}
	c.CollectTombstones(all)
	return c
}

// shutdown closes every running store (end of run).
func (s *sim) shutdown() {
	for _, sr := range s.reps {
		if sr.d != nil {
			sr.d.Close()
			_ = sr.st.Close()
			sr.d, sr.st = nil, nil
		}
		_ = sr.ds.Close()
	}
}

// Run runs one seed and returns what it exercised, the digest of its trace
// and the first violated invariant, if any. trace, when set, receives
// every line of the trace.
func Run(seed uint64, trace func(string)) (stats Stats, digest []byte, err error) {
	s, err := newSim(seed, trace)
	if s != nil {
		defer s.shutdown()
	}
	if err != nil {
		return Stats{}, nil, err
	}
	defer func() {
		if v := recover(); v != nil {
			f, ok := v.(failure)
			if !ok {
				panic(v)
			}
			err = errors.New(f.msg)
		}
	}()
	for s.step = 0; s.step < s.steps; s.step++ {
		s.tick()
	}
	s.finish()
	if s.seqEdits {
		s.stats.seqSeeds++
	}
	return s.stats, s.digest, nil
}

// Exercised returns the counts a run of many seeds must not leave at zero.
func (a Stats) Exercised() map[string]int {
	return map[string]int{
		"writes": a.writes, "snapshots": a.snapshots, "crashes": a.crashes,
		"interrupted": a.interrupted, "compactions": a.compactions, "dups": a.dups,
		"gossip aggregates": a.aggregates, "split writes": a.splits, "pulls": a.pulls,
		"splices": a.seqOps, "sequence deletes": a.seqDeleted, "deletes of sequence keys": a.keyDeleted,
		"collected tombstones": a.collected,
	}
}

// HLCRegressions counts own deltas whose HLC went backwards.
func (a Stats) HLCRegressions() int { return a.hlcRegressions }

var _ = fmt.Sprint
