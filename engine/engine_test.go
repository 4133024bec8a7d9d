package engine

import (
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

type author struct {
	key  crypto.PrivKey
	peer peer.ID
	rep  crdt.ReplicaID
}

func newAuthor(t *testing.T) author {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return author{k, p, wire.ReplicaFor(p, 1)}
}

// env signs a delta of a by hand: seq (through last, for an aggregate)
// setting key to v at HLC hlc.
func (a author) env(t *testing.T, doc string, seq, last uint64, delta *crdt.State, hlc uint64) *wire.Envelope {
	t.Helper()
	e := &wire.Envelope{Doc: doc, Origin: a.rep, Seq: seq, Last: last, HLC: hlc, Payload: crdt.EncodeDelta(delta, a.rep)}
	if err := wire.SignEnvelope(a.key, e); err != nil {
		t.Fatal(err)
	}
	return e
}

// newDoc returns an engine of doc over a fresh MemoryLog.
func newDoc(t *testing.T, doc string, mod ...func(*Config)) (*Doc, *MemoryLog, author) {
	t.Helper()
	me := newAuthor(t)
	log := NewMemoryLog()
	cfg := Config{Doc: doc, Self: me.rep, SelfPeer: me.peer, Key: me.key, AckPeers: 1, SnapshotAfter: 1000, CompactAfter: 10, Storage: log}
	for _, m := range mod {
		m(&cfg)
	}
	d, warn, err := New(cfg)
	if err != nil || warn != nil {
		t.Fatal(err, warn)
	}
	return d, log, me
}

// settle carries out every Ready until there is none, returning them.
func settle(d *Doc, log *MemoryLog) []Ready {
	var out []Ready
	for d.HasReady() {
		rd := d.Ready()
		out = append(out, rd)
		log.Apply(d, rd)
	}
	return out
}

func set(k, v string) []crdt.Op { return []crdt.Op{crdt.Set([]string{k}, []byte(v))} }

// Persist before publish: an own delta is published, and its writer
// answered, only in the Ready after its append was reported durable; the
// writes made meanwhile gather into the next delta (group commit).
func TestPersistBeforePublishAndGroupCommit(t *testing.T) {
	d, log, _ := newDoc(t, "d")
	id1, err := d.Propose(epoch, set("a", "1"))
	if err != nil {
		t.Fatal(err)
	}
	rd := d.Ready()
	if len(rd.Appends) != 1 || len(rd.Publish) != 0 || len(rd.Committed) != 0 {
		t.Fatalf("first Ready: %d appends, %d published, %d committed; want the append alone", len(rd.Appends), len(rd.Publish), len(rd.Committed))
	}
	var ids []uint64
	for i := range 5 {
		id, err := d.Propose(epoch, set(fmt.Sprint("b", i), "2"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if d.HasReady() {
		t.Fatalf("a second own delta was cut while the first is not durable: %+v", d.Ready())
	}
	log.Apply(d, rd) // the first append is durable
	rd = d.Ready()
	if len(rd.Publish) != 1 || len(rd.Committed) != 1 || rd.Committed[0].ID != id1 {
		t.Fatalf("after the first append: published %d, committed %+v", len(rd.Publish), rd.Committed)
	}
	if len(rd.Appends) != 1 || len(rd.Appends[0].Entries) != 1 {
		t.Fatalf("the five writes made meanwhile went out as %+v, want one delta", rd.Appends)
	}
	log.Apply(d, rd)
	rd = d.Ready()
	if len(rd.Committed) != 5 || rd.Committed[4].ID != ids[4] || len(rd.Publish) != 1 {
		t.Fatalf("the group's Ready: committed %+v, published %d", rd.Committed, len(rd.Publish))
	}
	if d.NextSeq() != 3 {
		t.Fatalf("next seq %d, want 3", d.NextSeq())
	}
}

// While a gossip aggregate (seqs 1..3, stored at 3 with markers at 1 and 2)
// is not yet durable, a single delta for seq 3 arriving by sync is not
// placed over the aggregate's slot (that would leave the markers pointing
// at a delta that lacks 1 and 2), and it is not stored a second time.
func TestQueuedSlotsNotReplaced(t *testing.T) {
	d, log, _ := newDoc(t, "fail")
	a := newAuthor(t)
	st := crdt.New()
	joined := crdt.New()
	var singles []*wire.Envelope
	for i := uint64(1); i <= 3; i++ {
		delta, err := st.Apply(a.rep, crdt.HLC(i), crdt.Set([]string{fmt.Sprint(i)}, []byte("1")))
		if err != nil {
			t.Fatal(err)
		}
		joined.Merge(delta)
		singles = append(singles, a.env(t, "fail", i, 0, delta, i))
	}
	agg := a.env(t, "fail", 1, 3, joined, 3)
	if id := d.Receive(epoch, a.peer, []*wire.Envelope{agg}, true); id == 0 {
		t.Fatal("the aggregate was not stored")
	}
	first := d.Ready() // not carried out yet: the append is in flight
	if id := d.Receive(epoch, a.peer, []*wire.Envelope{singles[2]}, false); id != 0 {
		t.Fatalf("the single for a queued slot was stored again (append %d)", id)
	}
	log.Apply(d, first)
	settle(d, log)
	got, err := log.Get(a.rep, 3)
	if err != nil {
		t.Fatal(err)
	}
	env, err := wire.DecodeEnvelope(got.Data, StoredLimits)
	if err != nil || env.Seq != 1 || env.Last != 3 {
		t.Fatalf("slot 3 holds %+v (%v), want the aggregate 1..3", env, err)
	}
}

// The second side of a fork that arrives while the first is still being
// written (its append not yet durable) is found too: an equivocator
// publishing both sides at once.
func TestForkWhileFirstSideInFlight(t *testing.T) {
	d, log, _ := newDoc(t, "inflight")
	a := newAuthor(t)
	dx, _ := crdt.New().Apply(a.rep, 1, crdt.Set([]string{"k"}, []byte(`"x"`)))
	dy, _ := crdt.New().Apply(a.rep, 2, crdt.Set([]string{"k"}, []byte(`"y"`)))
	x, y := a.env(t, "inflight", 1, 0, dx, 1), a.env(t, "inflight", 1, 0, dy, 2)
	d.Receive(epoch, a.peer, []*wire.Envelope{x}, true)
	first := d.Ready()
	d.Receive(epoch, a.peer, []*wire.Envelope{y}, true)
	rd := d.Ready()
	if len(rd.Equivocations) != 1 || rd.Equivocations[0].Seq != 1 || len(rd.Forks) != 1 || len(rd.Forks[0].Proofs) != 2 {
		t.Fatalf("fork not found while the first side is in flight: %+v", rd)
	}
	log.Apply(d, first)
	log.Apply(d, rd)
	settle(d, log)
	d.Receive(epoch, a.peer, []*wire.Envelope{x, y}, false)
	if rd := d.Ready(); len(rd.Equivocations) != 0 {
		t.Fatalf("a known fork reported again: %+v", rd.Equivocations)
	}
	if n := d.ForkProofs(a.rep); n != 2 {
		t.Fatalf("%d proofs, want 2", n)
	}
}

// A peer that holds nothing of our writes keeps them in the log while it
// is heard from; once it has been silent for longer than the retention,
// the next observation of another peer compacts the log.
func TestCompactionRetention(t *testing.T) {
	d, log, me := newDoc(t, "ret", func(c *Config) { c.CompactAfter, c.Retention = 10, time.Hour })
	for i := range 30 {
		if _, err := d.Propose(epoch, set(fmt.Sprint(i), "1")); err != nil {
			t.Fatal(err)
		}
		settle(d, log)
	}
	gone, live := newAuthor(t).peer, newAuthor(t).peer
	all := crdt.VersionVector{me.rep: 30}
	d.Observe(epoch, gone, crdt.VersionVector{})
	d.Observe(epoch, live, all)
	settle(d, log)
	if _, ok, _ := log.Snapshot(); ok {
		t.Fatal("compacted past a peer heard from a moment ago")
	}
	d.Observe(epoch.Add(2*time.Hour), live, all)
	settle(d, log)
	if snap, ok, _ := log.Snapshot(); !ok || snap.VV[me.rep] != 30 {
		t.Fatalf("not compacted past the silent peer: %v %v", ok, snap.VV)
	}
	if d.Acked() != 30 || len(log.Outbox()) != 0 {
		t.Fatalf("acked %d, outbox %v", d.Acked(), log.Outbox())
	}
}

// An aggregate over sequence numbers we hold, with a bad signature, is
// refused as forged (a signature check), not ignored as a duplicate after
// a lookup per covered number; a genuine one is a duplicate.
func TestForgedAggregateCheckedFirst(t *testing.T) {
	d, log, me := newDoc(t, "fail")
	for i := range 5 {
		if _, err := d.Propose(epoch, set(fmt.Sprint(i), "1")); err != nil {
			t.Fatal(err)
		}
		settle(d, log)
	}
	from := newAuthor(t).peer
	chk := d.checker()
	forged := &wire.Envelope{Doc: "fail", Origin: me.rep, Seq: 1, Last: 5, Payload: crdt.EncodeDelta(crdt.New(), me.rep), Sig: make([]byte, 64)}
	var rej *RejectError
	if err := Validate(log, chk, from, forged); !errors.As(err, &rej) || rej.Reason() != "bad_signature" {
		t.Fatalf("forged aggregate over held seqs: %v", err)
	}
	genuine := &wire.Envelope{Doc: "fail", Origin: me.rep, Seq: 1, Last: 5, Payload: crdt.EncodeDelta(crdt.New(), me.rep)}
	if err := wire.SignEnvelope(me.key, genuine); err != nil {
		t.Fatal(err)
	}
	if err := Validate(log, chk, from, genuine); !errors.Is(err, wire.ErrDuplicate) {
		t.Fatalf("genuine aggregate over held seqs: %v", err)
	}
}

// A gap (seq 2 of an author before seq 1) is pulled from its sender once
// GapGrace has passed, and only if it is still open then.
func TestGapPulledAfterGrace(t *testing.T) {
	d, log, _ := newDoc(t, "gap")
	a := newAuthor(t)
	st := crdt.New()
	var envs []*wire.Envelope
	for i := uint64(1); i <= 4; i++ {
		delta, _ := st.Apply(a.rep, crdt.HLC(i), crdt.Set([]string{fmt.Sprint(i)}, []byte("1")))
		envs = append(envs, a.env(t, "gap", i, 0, delta, i))
	}
	d.Receive(epoch, a.peer, envs[1:2], true) // seq 2 before seq 1
	settle(d, log)
	at, ok := d.Deadline()
	if !ok || !at.Equal(epoch.Add(GapGrace)) {
		t.Fatalf("deadline %v %v, want %v", at, ok, epoch.Add(GapGrace))
	}
	d.Tick(at.Add(-time.Millisecond))
	if rd := d.Ready(); len(rd.Pulls) != 0 {
		t.Fatalf("pulled before the grace ended: %v", rd.Pulls)
	}
	d.Tick(at)
	if rd := d.Ready(); len(rd.Pulls) != 1 || rd.Pulls[0] != a.peer {
		t.Fatalf("pulls %v, want the sender", rd.Pulls)
	}
	// A gap filled within the grace is not pulled.
	d.Receive(epoch, a.peer, envs[3:4], true)
	d.Receive(epoch, a.peer, envs[2:3], true)
	d.Receive(epoch, a.peer, envs[0:1], true)
	settle(d, log)
	at, _ = d.Deadline()
	d.Tick(at)
	if rd := d.Ready(); len(rd.Pulls) != 0 {
		t.Fatalf("pulled a gap that closed: %v", rd.Pulls)
	}
}

// A summary pulls only what the previous summary of the same origin
// announced and we still lack, and of two peers that both lack something
// only the lower ID starts.
func TestSummaryPullRule(t *testing.T) {
	d, log, me := newDoc(t, "sum")
	if _, err := d.Propose(epoch, set("mine", "1")); err != nil {
		t.Fatal(err)
	}
	settle(d, log)
	o := newAuthor(t)
	ahead := &wire.Summary{Doc: "sum", Origin: o.rep, VV: crdt.VersionVector{o.rep: 3, me.rep: 1}}
	d.Summary(epoch, o.peer, ahead, true)
	if rd := d.Ready(); len(rd.Pulls) != 0 {
		t.Fatalf("the first summary of an origin pulled (its deltas are likely in flight): %v", rd.Pulls)
	}
	d.Summary(epoch.Add(time.Second), o.peer, ahead, true)
	if rd := d.Ready(); len(rd.Pulls) != 1 || rd.Pulls[0] != o.peer {
		t.Fatalf("pulls %v, want the origin", rd.Pulls)
	}
	// Both lack something: only the lower peer ID starts.
	both := &wire.Summary{Doc: "sum", Origin: o.rep, VV: crdt.VersionVector{o.rep: 3}}
	d.Summary(epoch.Add(2*time.Second), o.peer, both, true)
	d.Summary(epoch.Add(3*time.Second), o.peer, both, true)
	pulled := len(d.Ready().Pulls) > 0
	if want := me.peer < o.peer; pulled != want {
		t.Fatalf("both lacking: pulled %v, want %v (us %s, them %s)", pulled, want, me.peer, o.peer)
	}
}

// A write held back for a snapshot (an own delta in flight, a fresh
// snapshot wanted) is answered with the failure when the storage fails,
// not left waiting.
func TestHeldWriteAnsweredOnFailure(t *testing.T) {
	d, log, _ := newDoc(t, "held", func(c *Config) { c.SnapshotAfter = 0 })
	if _, err := d.Propose(epoch, set("a", "1")); err != nil {
		t.Fatal(err)
	}
	log.Apply(d, d.Ready())
	d.Ready()
	if _, err := d.Propose(epoch, set("b", "1")); err != nil { // in flight
		t.Fatal(err)
	}
	inflight := d.Ready()
	s := d.NewSession(newAuthor(t).peer, wire.DefaultSyncLimits())
	s.Hello()
	if err := s.Handle(epoch, &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: "held", Features: wire.SupportedFeatures}); err != nil {
		t.Fatal(err)
	}
	if _, wait, _ := s.Next(); !wait {
		t.Fatal("the fresh snapshot did not wait for the write in flight")
	}
	held, err := d.Propose(epoch, set("c", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if n := d.Pending(); n != 2 {
		t.Fatalf("%d pending, want the one in flight and the held one", n)
	}
	d.Persisted(time.Now(), inflight.Appends[0].ID, errors.New("disk gone"))
	answered := false
	for _, c := range d.Ready().Committed {
		if c.ID == held {
			answered = errors.Is(c.Err, ErrStorage)
		}
	}
	if !answered {
		t.Fatal("the held write was not answered with the storage failure")
	}
}

// A fork's new side is merged only once its proofs are stored; when the
// store is full it is counted and neither merged nor taken as known.
func TestForkMergedOnceStored(t *testing.T) {
	for _, added := range []bool{true, false} {
		d, log, _ := newDoc(t, "f")
		a := newAuthor(t)
		dx, _ := crdt.New().Apply(a.rep, 1, crdt.Set([]string{"k"}, []byte(`"x"`)))
		dy, _ := crdt.New().Apply(a.rep, 2, crdt.Set([]string{"k"}, []byte(`"y"`)), crdt.Set([]string{"only_y"}, []byte(`1`)))
		d.Receive(epoch, a.peer, []*wire.Envelope{a.env(t, "f", 1, 0, dx, 1)}, true)
		settle(d, log)
		d.Receive(epoch, a.peer, []*wire.Envelope{a.env(t, "f", 1, 0, dy, 2)}, true)
		rd := d.Ready()
		if len(rd.Forks) != 1 {
			t.Fatalf("fork writes %d, want 1", len(rd.Forks))
		}
		if _, ok := d.State().Get([]string{"only_y"}); ok {
			t.Fatal("the new side was merged before its proofs were stored")
		}
		d.ForksStored(rd.Forks[0].ID, added, nil)
		_, merged := d.State().Get([]string{"only_y"})
		if merged != added || (d.ForkProofs(a.rep) == 2) != added {
			t.Fatalf("stored=%v: merged %v, proofs %d", added, merged, d.ForkProofs(a.rep))
		}
	}
}
