// Package sim is a deterministic multi-replica simulation of Concord's
// replication, in the style of etcd raft's rafttest and pebble's
// metamorphic tests: 5–10 replicas, each the real engine (package engine)
// over the real store on a datastore that loses what was not synced, driven
// on one thread by one seeded scheduler, with a list of in-flight gossip
// messages and faults — drop, duplicate, reorder, partition and heal,
// crash and restart (the store is reopened over the same datastore),
// interrupted anti-entropy exchanges, compaction. The engine's own pull
// rules (summaries, gap timers) decide when to pull; the simulation only
// decides when a pull runs. Each run must end with every replica
// byte-identical and with every acknowledged write present everywhere.
// In half the seeds writes also splice into two texts and a list (seq.go),
// and the run must end with every acknowledged insert that no one deleted
// present, once, in insertion order.
//
// A seed is a complete description of a run: Run(seed) twice gives the
// same trace. The tests in this package run the seeds:
//
//	go test ./internal/sim                          # the default seeds
//	CONCORD_SIM_SEEDS=5000 go test ./internal/sim
//	CONCORD_SIM_SEED=17 go test ./internal/sim -run 'TestSim$' -v   # replay with a trace
//
// Imports: engine, store, crdt, wire; no goroutines of its own.
package sim

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/engine"
	"github.com/concord-p2p/concord/internal/faultds"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

const (
	simDoc    = "sim"
	simAckKey = "acks" // the set of acknowledgment markers; never removed
)

// simKeys is the key space of random ops (simAckKey is not in it), each
// with the op kind mostly used on it: 0 register, 1 counter, 2 set, -1 any.
// The other kinds are used now and then, so type conflicts (refused
// locally, resolved by the CRDT when concurrent) happen too.
var simKeys = []struct {
	path []string
	kind int
}{
	{[]string{"a"}, 0}, {[]string{"b"}, 1}, {[]string{"c"}, 2}, {[]string{"d"}, -1},
	{[]string{"m", "x"}, 2}, {[]string{"m", "y"}, 1}, {[]string{"m", "n", "z"}, 0}, {[]string{"m"}, -1},
}

var simScalars = []string{`1`, `2`, `"x"`, `"y"`, `true`, `null`, `-7`}

// Message kinds in flight.
const (
	simDelta = iota
	simSummary
)

type simMsg struct {
	id       uint64
	kind     int
	from, to int
	data     []byte // the encoded envelope or summary, as on the wire
}

func (m *simMsg) String() string {
	k := "delta"
	if m.kind == simSummary {
		k = "summary"
	}
	return fmt.Sprintf("#%d %s %d→%d", m.id, k, m.from, m.to)
}

// Stats counts what a run exercised.
type Stats struct {
	writes, refused, delivered, dropped, dups, reorders, summaries      int
	exchanges, interrupted, snapshots, partitions, crashes, compactions int
	hlcRegressions, aggregates, splits, pulls                           int
	seqOps, seqDeleted, keyDeleted, seqSeeds                            int
	collected                                                           int // tombstones, counted at the end
}

func (a *Stats) add(b Stats) {
	a.writes += b.writes
	a.refused += b.refused
	a.delivered += b.delivered
	a.dropped += b.dropped
	a.dups += b.dups
	a.reorders += b.reorders
	a.summaries += b.summaries
	a.exchanges += b.exchanges
	a.interrupted += b.interrupted
	a.snapshots += b.snapshots
	a.partitions += b.partitions
	a.crashes += b.crashes
	a.compactions += b.compactions
	a.hlcRegressions += b.hlcRegressions
	a.aggregates += b.aggregates
	a.splits += b.splits
	a.pulls += b.pulls
	a.seqOps += b.seqOps
	a.seqDeleted += b.seqDeleted
	a.keyDeleted += b.keyDeleted
	a.seqSeeds += b.seqSeeds
	a.collected += b.collected
}

func (a Stats) String() string {
	return fmt.Sprintf("writes=%d refused=%d delivered=%d dropped=%d dups=%d reorders=%d summaries=%d "+
		"exchanges=%d interrupted=%d snapshots=%d partitions=%d crashes=%d compactions=%d hlc_regressions=%d gossip_aggregates=%d split_writes=%d pulls=%d "+
		"sequence_seeds=%d splices=%d seq_deleted=%d seq_deleted_by_key=%d tombstones_collected=%d",
		a.writes, a.refused, a.delivered, a.dropped, a.dups, a.reorders, a.summaries,
		a.exchanges, a.interrupted, a.snapshots, a.partitions, a.crashes, a.compactions, a.hlcRegressions, a.aggregates, a.splits, a.pulls,
		a.seqSeeds, a.seqOps, a.seqDeleted, a.keyDeleted, a.collected)
}

// replica is one node of the simulation. ds survives crashes; st and d are
// nil while the node is down.
type replica struct {
	idx  int
	key  crypto.PrivKey
	peer peer.ID
	id   crdt.ReplicaID
	skew time.Duration
	ds   *faultds.Crash
	st   *store.Store
	d    *engine.Doc

	marks   int      // markers minted (acknowledged or not)
	acked   []string // markers of acknowledged writes
	lastHLC uint64   // HLC of the last own delta published
	pulls   []peer.ID
	commits map[uint64]error // proposals answered, not yet read

	// State when it crashed, compared with the state after restart.
	crashEnc []byte
	crashVV  crdt.VersionVector
}

// failure is the panic value of a failed invariant; Run recovers it.
type failure struct{ msg string }

type sim struct {
	seed  uint64
	rng   *rand.Rand
	now   time.Time
	step  int
	trace func(string)
	ctx   context.Context

	reps     []*replica
	byPeer   map[peer.ID]int
	group    []int // partition group per replica; connected iff equal
	inflight []*simMsg
	msgID    uint64

	// Parameters drawn from the seed.
	steps         int
	ackPeers      int
	snapshotAfter int
	compactAfter  int
	batchBytes    int
	pieceBytes    int  // bound on own deltas' payloads (0: the default)
	seqEdits      bool // writes splice into texts and a list (seq.go)
	writers       map[peer.ID]bool

	seqs   seqTrack
	stats  Stats
	h      hash.Hash // of the trace, for the determinism test
	digest []byte
}

func (s *sim) fail(format string, a ...any) {
	panic(failure{fmt.Sprintf("step %d: ", s.step) + fmt.Sprintf(format, a...)})
}

func (s *sim) logf(format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	_, _ = s.h.Write([]byte(line + "\n"))
	if s.trace != nil {
		s.trace(fmt.Sprintf("[%4d] %s", s.step, line))
	}
}

// chance reports true with probability p.
func (s *sim) chance(p float64) bool { return s.rng.Float64() < p }

func (s *sim) up(i int) bool { return s.reps[i].d != nil }

func (s *sim) connected(i, j int) bool {
	return i != j && s.up(i) && s.up(j) && s.group[i] == s.group[j]
}

// key derives replica i's Ed25519 key from the run's seed, so peer IDs
// (and with them replica IDs, sort orders and signatures) are a function
// of the seed.
func key(seed uint64, i int) (crypto.PrivKey, peer.ID, error) {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	binary.LittleEndian.PutUint64(b[8:], uint64(i))
	h := sha256.Sum256(append([]byte("concord/sim-key\x00"), b[:]...))
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(h[:]))
	if err != nil {
		return nil, "", err
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, "", err
	}
	return priv, id, nil
}

func newSim(seed uint64, trace func(string)) (*sim, error) {
	s := &sim{
		seed:   seed,
		rng:    rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		now:    time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		trace:  trace,
		ctx:    context.Background(),
		h:      sha256.New(),
		byPeer: map[peer.ID]int{},
	}
	s.seqTrackInit()
	n := 5 + s.rng.IntN(6)
	s.steps = 150 + s.rng.IntN(150)
	s.ackPeers = 1 + s.rng.IntN(3)
	s.snapshotAfter = 2 + s.rng.IntN(30)
	s.compactAfter = 2 + s.rng.IntN(40)
	s.batchBytes = 256 << s.rng.IntN(6) // 256 B … 8 KiB: several Deltas per exchange
	if s.chance(0.5) {
		s.pieceBytes = 48 + s.rng.IntN(200) // many writes split into pieces
	}
	s.seqEdits = s.chance(simSeqSeeds)
	s.group = make([]int, n)
	for i := range n {
		k, id, err := key(seed, i)
		if err != nil {
			return nil, err
		}
		sr := &replica{idx: i, key: k, peer: id, id: wire.ReplicaFor(id, uint64(i+1)), ds: faultds.NewCrash()}
		if s.chance(0.3) {
			sr.skew = time.Duration(s.rng.IntN(20_000)-10_000) * time.Millisecond
		}
		s.reps = append(s.reps, sr)
		s.byPeer[id] = i
	}
	if s.chance(0.5) {
		s.writers = map[peer.ID]bool{}
		for _, sr := range s.reps {
			s.writers[sr.peer] = true
		}
		// Sometimes one replica only reads and relays: it gets no fresh
		// snapshots, its snapshots are refused, its writes are refused.
		if s.chance(0.5) {
			reader := s.reps[1+s.rng.IntN(n-1)]
			delete(s.writers, reader.peer)
			s.logf("replica %d is not a writer", reader.idx)
		}
	}
	s.logf("seed=%d replicas=%d steps=%d ackPeers=%d snapshotAfter=%d compactAfter=%d batchBytes=%d pieceBytes=%d allowlist=%v sequences=%v",
		seed, n, s.steps, s.ackPeers, s.snapshotAfter, s.compactAfter, s.batchBytes, s.pieceBytes, s.writers != nil, s.seqEdits)
	for i, sr := range s.reps {
		s.logf("replica %d = %s skew=%v", i, sr.id, sr.skew)
		if err := s.open(i); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (s *sim) clock(i int) time.Time { return s.now.Add(s.reps[i].skew) }

// open starts replica i over its datastore.
func (s *sim) open(i int) error {
	sr := s.reps[i]
	discard := slog.New(slog.DiscardHandler)
	st, err := store.Open(s.ctx, sr.ds, store.Options{MaxBatchBytes: s.batchBytes, Logger: discard})
	if err != nil {
		return fmt.Errorf("open store %d: %w", i, err)
	}
	d, warn, err := engine.New(engine.Config{
		Doc: simDoc, Self: sr.id, SelfPeer: sr.peer, Key: sr.key, Writers: s.writers,
		AckPeers: s.ackPeers, SnapshotAfter: s.snapshotAfter, CompactAfter: s.compactAfter,
		PieceBytes: s.pieceBytes, Storage: store.DocLog{St: st, Doc: simDoc},
	})
	if err == nil && warn != nil {
		err = fmt.Errorf("replay: %w", warn)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("open replica %d: %w", i, err), st.Close())
	}
	if p := st.Problems(); p != nil {
		return errors.Join(fmt.Errorf("store %d reports problems: %w", i, p), st.Close())
	}
	sr.st, sr.d, sr.commits = st, d, map[uint64]error{}
	return nil
}

// drain does what replica i's engine asks, synchronously, until it asks
// for nothing more: the simulation is its driver.
func (s *sim) drain(i int) {
	sr := s.reps[i]
	for sr.d.HasReady() {
		rd := sr.d.Ready()
		for _, a := range rd.Appends {
			own := crdt.ReplicaID("")
			if a.Own {
				own = sr.id
			}
			if err := a.Seal(); err != nil {
				s.fail("replica %d: seal: %v", i, err)
			}
			sr.d.Persisted(s.clock(i), a.ID, sr.st.Append(s.ctx, simDoc, own, a.Entries))
		}
		for _, fw := range rd.Forks {
			added := false
			for _, f := range fw.Proofs {
				ok, err := sr.st.AddFork(s.ctx, simDoc, f)
				if err != nil {
					s.fail("replica %d: store fork: %v", i, err)
				}
				added = ok
			}
			sr.d.ForksStored(fw.ID, added, nil)
		}
		if rd.AckUpTo != 0 {
			sr.d.Acknowledged(rd.AckUpTo, sr.st.Ack(s.ctx, simDoc, rd.AckUpTo))
		}
		if rd.Compact != nil {
			err := sr.st.Compact(s.ctx, simDoc, rd.Compact.Snapshot)
			if err == nil {
				s.stats.compactions++
				s.logf("replica %d compacted to %s", i, fmtVV(s, rd.Compact.Snapshot.VV))
			}
			sr.d.Compacted(err)
		}
		for _, e := range rd.Publish {
			s.publish(i, e)
		}
		for _, c := range rd.Committed {
			sr.commits[c.ID] = c.Err
		}
		for _, c := range rd.Compacted {
			sr.commits[c.ID] = c.Err
		}
		for _, p := range rd.Pulls {
			if len(sr.pulls) < 16 && !slices.Contains(sr.pulls, p) {
				sr.pulls = append(sr.pulls, p)
			}
		}
		for _, w := range rd.Warnings {
			s.logf("replica %d warns: %v", i, w)
		}
	}
}

// publish is replica i's gossip: the encoded envelope goes in flight to
// every replica connected to i now.
func (s *sim) publish(i int, e *wire.Envelope) {
	sr := s.reps[i]
	if e.HLC <= sr.lastHLC {
		// The HLC of an own delta went backwards (a restart must restore the
		// clock from the snapshot as well as from the log).
		s.stats.hlcRegressions++
		s.logf("note: replica %d seq %d HLC %v <= previous %v", i, e.Seq, crdt.HLC(e.HLC), crdt.HLC(sr.lastHLC))
	}
	sr.lastHLC = e.HLC
	b, err := wire.EncodeEnvelope(e)
	if err != nil {
		s.fail("replica %d: encode envelope: %v", i, err)
	}
	for j := range s.reps {
		if j == i || s.group[j] != s.group[i] || !s.up(j) {
			continue
		}
		s.msgID++
		s.inflight = append(s.inflight, &simMsg{id: s.msgID, kind: simDelta, from: i, to: j, data: b})
	}
}
