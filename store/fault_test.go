package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/internal/faultds"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
)

// faultModel records what the workload was told succeeded.
type faultModel struct {
	acked    map[crdt.ReplicaID]map[uint64]bool
	snaps    []Snapshot // acknowledged compactions, in order
	tried    []Snapshot // attempted compactions (the last may have landed)
	ackedOut uint64     // highest acknowledged Ack
	triedAck uint64     // highest attempted Ack (a failed one may have landed)
	doc      string
}

// faultWorkload appends, acks and compacts until the first error, exercising
// the append path, the outbox and the compaction path.
func faultWorkload(ctx context.Context, s *Store, m *faultModel) error {
	m.acked = map[crdt.ReplicaID]map[uint64]bool{}
	if m.doc == "" {
		m.doc = "d"
	}
	ack := func(es []Entry) {
		for _, e := range es {
			if m.acked[e.Replica] == nil {
				m.acked[e.Replica] = map[uint64]bool{}
			}
			m.acked[e.Replica][e.Seq] = true
		}
	}
	step := func(es []Entry) error {
		if err := s.Append(ctx, m.doc, "me", es); err != nil {
			return err
		}
		ack(es)
		return nil
	}
	compact := func(vv crdt.VersionVector) error {
		snap := Snapshot{State: []byte(fmt.Sprint(vv)), VV: vv}
		m.tried = append(m.tried, snap)
		if err := s.Compact(ctx, m.doc, snap); err != nil {
			return err
		}
		m.snaps = append(m.snaps, snap)
		return nil
	}
	for i := uint64(1); i <= 6; i++ {
		if err := step(append(ents("me", 2*i-1, 2*i), ents("you", i)...)); err != nil {
			return err
		}
	}
	m.triedAck = 4
	if err := s.Ack(ctx, m.doc, 4); err != nil {
		return err
	}
	m.ackedOut = 4
	if err := compact(crdt.VersionVector{"me": 8, "you": 3}); err != nil {
		return err
	}
	if err := step(ents("you", 9, 7, 8)); err != nil {
		return err
	}
	if err := compact(crdt.VersionVector{"me": 12, "you": 9}); err != nil {
		return err
	}
	return step(ents("me", 13))
}

// checkAfterFault reopens the store on the inner datastore and checks that
// nothing acknowledged is lost and no half state is visible.
func checkAfterFault(t *testing.T, inner datastore.Batching, m *faultModel, label string) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, inner, Options{CompactChunk: 2})
	if err != nil {
		t.Fatalf("%s: reopen: %v", label, err)
	}
	defer mustClose(t, s)
	if err := s.Problems(); err != nil {
		t.Fatalf("%s: problems: %v", label, err)
	}
	doc := m.doc
	if doc == "" {
		doc = "d"
	}
	snap, ok, err := s.Snapshot(ctx, doc)
	if err != nil {
		t.Fatalf("%s: snapshot: %v", label, err)
	}
	if ok {
		// The snapshot is exactly one of the attempted ones, whole.
		found := false
		for _, c := range m.tried {
			if bytes.Equal(c.State, snap.State) && c.VV.Equal(snap.VV) {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: snapshot %q/%v was never written", label, snap.State, snap.VV)
		}
	}
	if n := len(m.snaps); n > 0 && (!ok || !snap.VV.Covers(m.snaps[n-1].VV)) {
		t.Fatalf("%s: acknowledged compaction to %v lost (have %v)", label, m.snaps[n-1].VV, snap.VV)
	}
	log := map[crdt.ReplicaID]map[uint64]bool{}
	for _, e := range allEntries(t, s, doc) {
		if !bytes.Equal(e.Data, data(e.Replica, e.Seq)) {
			t.Fatalf("%s: entry %s/%d has wrong data", label, e.Replica, e.Seq)
		}
		if e.Seq <= snap.VV[e.Replica] {
			t.Fatalf("%s: Entries shows covered %s/%d", label, e.Replica, e.Seq)
		}
		if log[e.Replica] == nil {
			log[e.Replica] = map[uint64]bool{}
		}
		log[e.Replica][e.Seq] = true
	}
	for r, seqs := range m.acked {
		for seq := range seqs {
			if !log[r][seq] && seq > snap.VV[r] {
				t.Fatalf("%s: acknowledged %s/%d lost", label, r, seq)
			}
			if !s.Has(doc, r, seq) {
				t.Fatalf("%s: index lost %s/%d", label, r, seq)
			}
		}
	}
	// Recovery left no intent and no covered log entries on disk.
	res, err := inner.Query(ctx, query.Query{Prefix: docPrefix(doc), KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rest, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rest {
		p, err := parseDocKey(e.Key)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		if p.kind == kindIntent || p.kind == kindLog && p.seq <= snap.VV[p.replica] {
			t.Fatalf("%s: recovery left %s", label, e.Key)
		}
		if p.kind == kindOutbox && p.seq <= m.ackedOut {
			t.Fatalf("%s: acked outbox entry %s still on disk", label, e.Key)
		}
	}
	for _, seq := range s.Outbox(doc) {
		if seq <= m.ackedOut {
			t.Fatalf("%s: acked %d still in outbox", label, seq)
		}
	}
	for seq := range m.acked["me"] {
		if seq > m.triedAck && !containsSeq(s.Outbox(doc), seq) {
			t.Fatalf("%s: unacked own %d missing from outbox %v", label, seq, s.Outbox(doc))
		}
	}
	// The reopened store is writable.
	if err := s.Append(ctx, doc, "me", ents("me", 100)); err != nil {
		t.Fatalf("%s: append after recovery: %v", label, err)
	}
}

func containsSeq(xs []uint64, x uint64) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestFaultSweep fails the Nth write (Put/Delete/Commit/Sync) of a workload
// covering append, ack and compaction, for every N until the workload runs
// clean, in both modes (fail before applying / apply then fail), on the
// memory and the Pebble backends; after each failure it reopens and checks.
func TestFaultSweep(t *testing.T) {
	ctx := context.Background()
	type innerDS struct {
		name string
		open func(t *testing.T) datastore.Batching // called once per subtest
	}
	inners := []innerDS{
		{"memory", func(t *testing.T) datastore.Batching {
			return dssync.MutexWrap(datastore.NewMapDatastore())
		}},
		{"pebble", func(t *testing.T) datastore.Batching {
			s, err := OpenPebble(t.TempDir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mustClose(t, s) })
			return s.ds
		}},
	}
	total := 0
	for _, in := range inners {
		for _, after := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/after=%v", in.name, after), func(t *testing.T) {
				// One datastore per subtest; each run uses its own document,
				// and the node records are written by the first run only.
				inner := in.open(t)
				for n := int64(1); ; n++ {
					// The n-th write (Put, Delete, batch Commit or Sync) fails,
					// applied first or not, and every later write fails too (a
					// dead disk).
					inj := faultds.OnIndex(n)
					if after {
						inj = faultds.AfterApply(inj)
					}
					f := faultds.NewFail(inner, faultds.Sticky(inj))
					label := fmt.Sprintf("failAt=%d", n)
					m := faultModel{doc: fmt.Sprintf("d/%d", n)}
					s, err := Open(ctx, f, Options{CompactChunk: 2})
					if err == nil {
						err = faultWorkload(ctx, s, &m)
						if cerr := s.Close(); cerr != nil {
							t.Fatal(cerr)
						}
					}
					if err != nil && !errors.Is(err, faultds.ErrInjected) {
						t.Fatalf("%s: unexpected error %v", label, err)
					}
					checkAfterFault(t, inner, &m, label)
					total++
					if f.Injected() == 0 {
						t.Logf("swept %d fault points", n)
						return
					}
				}
			})
		}
	}
	t.Logf("fault sweep: %d runs", total)
}
