package net

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// fakeReplica is an in-memory testDoc: its log is a memory store (for real
// Missing cursors and batching), payloads are opaque bytes, and a snapshot
// is the list of (origin, seq) it covers.
type fakeReplica struct {
	doc  string
	peer peer.ID
	key  crypto.PrivKey
	self crdt.ReplicaID
	st   *store.Store

	snap       []byte             // the stored snapshot SnapshotFor offers
	snapVV     crdt.VersionVector // what snap covers
	gotSnaps   [][]byte           // snapshots received
	observed   map[peer.ID]crdt.VersionVector
	rejected   int   // envelopes that failed verification
	ingestErr  error // returned by Ingest when set
	ingestions int
}

var _ testDoc = (*fakeReplica)(nil)

func newFakeReplica(t *testing.T, keyByte byte, batchBytes int) *fakeReplica {
	t.Helper()
	st, err := store.OpenMemory(store.Options{MaxBatchBytes: batchBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	key, id := testKey(t, keyByte)
	return &fakeReplica{
		doc: "doc", peer: id, key: key, self: wire.ReplicaFor(id, 1), st: st,
		observed: map[peer.ID]crdt.VersionVector{},
	}
}

// envelope returns the signed envelope seq of f's replica.
func (f *fakeReplica) envelope(t *testing.T, seq uint64) []byte {
	t.Helper()
	e := &wire.Envelope{Doc: f.doc, Origin: f.self, Seq: seq, HLC: seq, Payload: fmt.Appendf(nil, "payload %d of %s", seq, f.self)}
	if err := wire.SignEnvelope(f.key, e); err != nil {
		t.Fatal(err)
	}
	b, err := wire.EncodeEnvelope(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// write appends own deltas lo..hi.
func (f *fakeReplica) write(t *testing.T, lo, hi uint64) {
	t.Helper()
	var es []store.Entry
	for seq := lo; seq <= hi; seq++ {
		es = append(es, store.Entry{Replica: f.self, Seq: seq, Data: f.envelope(t, seq)})
	}
	if err := f.st.Append(context.Background(), f.doc, f.self, es); err != nil {
		t.Fatal(err)
	}
}

// compact folds own deltas 1..upTo into a snapshot.
func (f *fakeReplica) compact(t *testing.T, upTo uint64) {
	t.Helper()
	f.snap = fmt.Appendf(nil, "snapshot of %s up to %d", f.self, upTo)
	f.snapVV = crdt.VersionVector{f.self: upTo}
	if err := f.st.Compact(context.Background(), f.doc, store.Snapshot{State: f.snap, VV: f.snapVV}); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeReplica) Doc() string                 { return f.doc }
func (f *fakeReplica) Version() crdt.VersionVector { return f.st.Contiguous(f.doc) }

func (f *fakeReplica) Missing(ctx context.Context, have crdt.VersionVector, cur store.Cursor) ([]store.Entry, store.Cursor, bool, error) {
	return f.st.Missing(ctx, f.doc, have, cur)
}

func (f *fakeReplica) AcceptsSnapshot(peer.ID) bool { return true }

func (f *fakeReplica) SnapshotFor(_ context.Context, _ peer.ID, have crdt.VersionVector) (wire.Snapshot, bool, error) {
	if f.snap == nil || have.Covers(f.snapVV) {
		return wire.Snapshot{}, false, nil
	}
	return wire.Snapshot{State: f.snap, VV: f.snapVV}, true, nil
}

func (f *fakeReplica) Ingest(ctx context.Context, _ peer.ID, envs []*wire.Envelope) error {
	f.ingestions++
	if f.ingestErr != nil {
		return f.ingestErr
	}
	var es []store.Entry
	for _, e := range envs {
		if err := e.Verify(); err != nil || e.Doc != f.doc {
			f.rejected++
			continue
		}
		b, err := wire.EncodeEnvelope(e)
		if err != nil {
			return err
		}
		es = append(es, store.Entry{Replica: e.Origin, Seq: e.Seq, Data: b})
	}
	return f.st.Append(ctx, f.doc, f.self, es)
}

func (f *fakeReplica) IngestSnapshot(ctx context.Context, _ peer.ID, snap wire.Snapshot) error {
	state, vv := snap.State, snap.VV
	f.gotSnaps = append(f.gotSnaps, state)
	old, _, err := f.st.Snapshot(ctx, f.doc)
	if err != nil {
		return err
	}
	merged := crdt.VersionVector{}
	merged.Merge(old.VV)
	merged.Merge(vv)
	return f.st.Compact(ctx, f.doc, store.Snapshot{State: state, VV: merged})
}

func (f *fakeReplica) Observed(p peer.ID, vv crdt.VersionVector) {
	f.observed[p] = vv.Clone()
}

// pumpResult is what one exchange did.
type pumpResult struct {
	a, b   SyncStats
	frames int
}

// pump runs an exchange between sessions for a and b to the end, passing
// every message through EncodeSyncMsg/DecodeSyncMsg, the two sides taking
// turns. It fails on stalls and returns the first Handle/Next error.
func pump(t *testing.T, a, b *fakeReplica) (pumpResult, error) {
	t.Helper()
	ctx := context.Background()
	lim := wire.DefaultSyncLimits()
	sa, sb := NewSyncSession(a, b.peer, lim), NewSyncSession(b, a.peer, lim)
	sess := [2]*SyncSession{sa, sb}
	var q [2][][]byte // q[k]: frames sent by side k
	put := func(k int, m *wire.SyncMsg) {
		f, err := wire.EncodeSyncMsg(m)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		q[k] = append(q[k], f)
	}
	put(0, sa.Hello())
	put(1, sb.Hello())
	res := pumpResult{}
	for guard := 0; !(sa.Finished() && sb.Finished() && len(q[0]) == 0 && len(q[1]) == 0); guard++ {
		if guard > 10_000 {
			t.Fatal("exchange does not end")
		}
		progress := false
		for k := range 2 {
			for len(q[1-k]) > 0 {
				m, err := wire.DecodeSyncMsg(q[1-k][0], lim)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				q[1-k] = q[1-k][1:]
				res.frames++
				if err := sess[k].Handle(ctx, m); err != nil {
					return res, err
				}
				progress = true
			}
			m, err := sess[k].Next(ctx)
			if err != nil {
				return res, err
			}
			if m != nil {
				put(k, m)
				progress = true
			}
		}
		if !progress {
			t.Fatalf("exchange stalled: finished %v/%v", sa.Finished(), sb.Finished())
		}
	}
	res.a, res.b = sa.Stats(), sb.Stats()
	return res, nil
}

func vvEq(a, b crdt.VersionVector) bool { return a.Covers(b) && b.Covers(a) }

func TestSyncSession(t *testing.T) {
	type setup func(t *testing.T, a, b *fakeReplica)
	tests := []struct {
		name       string
		batchBytes int
		setup      setup
		// Expected deltas received by a and by b, and whether b gets a
		// snapshot.
		inA, inB int
		snapB    bool
	}{
		{name: "both empty", setup: func(*testing.T, *fakeReplica, *fakeReplica) {}},
		{name: "equal", setup: func(t *testing.T, a, b *fakeReplica) {
			a.write(t, 1, 3)
			b.Ingest(context.Background(), a.peer, decodeAll(t, a, 1, 3))
		}},
		{name: "a ahead", inB: 5, setup: func(t *testing.T, a, b *fakeReplica) { a.write(t, 1, 5) }},
		{name: "b ahead", inA: 4, setup: func(t *testing.T, a, b *fakeReplica) { b.write(t, 1, 4) }},
		{name: "both directions in one exchange", inA: 3, inB: 6, setup: func(t *testing.T, a, b *fakeReplica) {
			a.write(t, 1, 6)
			b.write(t, 1, 3)
		}},
		{name: "partial overlap", inA: 2, inB: 4, setup: func(t *testing.T, a, b *fakeReplica) {
			a.write(t, 1, 6)
			b.write(t, 1, 2)
			b.Ingest(context.Background(), a.peer, decodeAll(t, a, 1, 2))
		}},
		{name: "gap filled", inB: 3, setup: func(t *testing.T, a, b *fakeReplica) {
			a.write(t, 1, 5)
			// b holds 1, 2 and 5 of a: it lacks 3 and 4, and 5 is re-sent as
			// part of the log past its contiguous 2.
			envs := decodeAll(t, a, 1, 5)
			b.Ingest(context.Background(), a.peer, []*wire.Envelope{envs[0], envs[1], envs[4]})
		}},
		{name: "small batches", batchBytes: 1, inA: 7, inB: 9, setup: func(t *testing.T, a, b *fakeReplica) {
			a.write(t, 1, 9)
			b.write(t, 1, 7)
		}},
		{name: "snapshot then log", inB: 3, snapB: true, setup: func(t *testing.T, a, b *fakeReplica) {
			a.write(t, 1, 7)
			a.compact(t, 4)
		}},
		{name: "snapshot already covered", inB: 2, setup: func(t *testing.T, a, b *fakeReplica) {
			a.write(t, 1, 6)
			b.Ingest(context.Background(), a.peer, decodeAll(t, a, 1, 4))
			a.compact(t, 4)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newFakeReplica(t, 1, tc.batchBytes)
			b := newFakeReplica(t, 2, tc.batchBytes)
			tc.setup(t, a, b)
			res, err := pump(t, a, b)
			if err != nil {
				t.Fatal(err)
			}
			if res.a.DeltasIn != tc.inA || res.b.DeltasIn != tc.inB {
				t.Errorf("deltas in: a %d b %d, want %d %d", res.a.DeltasIn, res.b.DeltasIn, tc.inA, tc.inB)
			}
			if res.b.Snapshot != tc.snapB || len(b.gotSnaps) != map[bool]int{false: 0, true: 1}[tc.snapB] || res.a.Snapshot {
				t.Errorf("snapshot: b %v (%d received), a %v; want b %v", res.b.Snapshot, len(b.gotSnaps), res.a.Snapshot, tc.snapB)
			}
			if tc.batchBytes == 1 && res.a.MsgsIn < 2+tc.inA {
				t.Errorf("a received %d messages; with one delta per batch want >= %d", res.a.MsgsIn, 2+tc.inA)
			}
			if va, vb := a.Version(), b.Version(); !vvEq(va, vb) {
				t.Fatalf("not converged in one exchange: a %v, b %v", va, vb)
			}
			// Each side's Done told the other what it held.
			if got := a.observed[b.peer]; got == nil {
				t.Error("a did not observe b's Done")
			}
			if got := b.observed[a.peer]; got == nil {
				t.Error("b did not observe a's Done")
			}
			if a.rejected+b.rejected != 0 {
				t.Errorf("rejected %d/%d envelopes", a.rejected, b.rejected)
			}
			// A second exchange has nothing left to do.
			res, err = pump(t, a, b)
			if err != nil {
				t.Fatal(err)
			}
			if res.a.DeltasOut+res.b.DeltasOut != 0 || res.a.Snapshot || res.b.Snapshot {
				t.Errorf("second exchange moved data: %+v %+v", res.a, res.b)
			}
			if !vvEq(a.observed[b.peer], b.Version()) || !vvEq(b.observed[a.peer], a.Version()) {
				t.Errorf("observed after a quiet exchange: %v / %v", a.observed[b.peer], b.observed[a.peer])
			}
		})
	}
}

// decodeAll returns f's own envelopes lo..hi.
func decodeAll(t *testing.T, f *fakeReplica, lo, hi uint64) []*wire.Envelope {
	t.Helper()
	var out []*wire.Envelope
	for seq := lo; seq <= hi; seq++ {
		e, err := wire.DecodeEnvelope(f.envelope(t, seq), wire.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestSyncSessionProtocolViolations(t *testing.T) {
	ctx := context.Background()
	hello := func(r *fakeReplica) *wire.SyncMsg {
		return &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: r.doc, VV: r.Version()}
	}
	tests := []struct {
		name string
		msgs func(a, b *fakeReplica) []*wire.SyncMsg // sent to a's session, in order
		// wantErr is checked on the last message; earlier ones must succeed.
		wantErr error
	}{
		{"deltas before hello", func(a, b *fakeReplica) []*wire.SyncMsg {
			return []*wire.SyncMsg{{Type: wire.TypeSyncDeltas}}
		}, ErrSyncProtocol},
		{"done before hello", func(a, b *fakeReplica) []*wire.SyncMsg {
			return []*wire.SyncMsg{{Type: wire.TypeSyncDone}}
		}, ErrSyncProtocol},
		{"second hello", func(a, b *fakeReplica) []*wire.SyncMsg {
			return []*wire.SyncMsg{hello(b), hello(b)}
		}, ErrSyncProtocol},
		{"message after done", func(a, b *fakeReplica) []*wire.SyncMsg {
			return []*wire.SyncMsg{hello(b), {Type: wire.TypeSyncDone}, {Type: wire.TypeSyncDeltas}}
		}, ErrSyncProtocol},
		{"wrong document", func(a, b *fakeReplica) []*wire.SyncMsg {
			return []*wire.SyncMsg{{Type: wire.TypeSyncHello, Doc: "other"}}
		}, ErrSyncProtocol},
		{"wrong document later", func(a, b *fakeReplica) []*wire.SyncMsg {
			return []*wire.SyncMsg{hello(b), {Type: wire.TypeSyncDone, Doc: "other"}}
		}, ErrSyncProtocol},
		{"unknown type", func(a, b *fakeReplica) []*wire.SyncMsg {
			return []*wire.SyncMsg{hello(b), {Type: 99}}
		}, ErrSyncProtocol},
		{"undecodable envelope", func(a, b *fakeReplica) []*wire.SyncMsg {
			return []*wire.SyncMsg{hello(b), {Type: wire.TypeSyncDeltas, Envelopes: [][]byte{{0xff, 0x00}}}}
		}, ErrSyncProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newFakeReplica(t, 1, 0), newFakeReplica(t, 2, 0)
			s := NewSyncSession(a, b.peer, wire.DefaultSyncLimits())
			msgs := tc.msgs(a, b)
			for i, m := range msgs {
				err := s.Handle(ctx, m)
				if i < len(msgs)-1 {
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					continue
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
			}
		})
	}

	t.Run("good envelopes next to a bad one are kept", func(t *testing.T) {
		a, b := newFakeReplica(t, 1, 0), newFakeReplica(t, 2, 0)
		s := NewSyncSession(a, b.peer, wire.DefaultSyncLimits())
		if err := s.Handle(ctx, hello(b)); err != nil {
			t.Fatal(err)
		}
		err := s.Handle(ctx, &wire.SyncMsg{Type: wire.TypeSyncDeltas, Envelopes: [][]byte{b.envelope(t, 1), {0x01}, b.envelope(t, 2)}})
		if !errors.Is(err, ErrSyncProtocol) {
			t.Fatalf("got %v, want ErrSyncProtocol", err)
		}
		if got := a.Version()[b.self]; got != 2 {
			t.Fatalf("a holds %d of b's deltas, want 2", got)
		}
	})

	t.Run("replica errors are not protocol errors", func(t *testing.T) {
		a, b := newFakeReplica(t, 1, 0), newFakeReplica(t, 2, 0)
		boom := errors.New("disk on fire")
		a.ingestErr = boom
		s := NewSyncSession(a, b.peer, wire.DefaultSyncLimits())
		if err := s.Handle(ctx, hello(b)); err != nil {
			t.Fatal(err)
		}
		err := s.Handle(ctx, &wire.SyncMsg{Type: wire.TypeSyncDeltas, Envelopes: [][]byte{b.envelope(t, 1)}})
		if !errors.Is(err, boom) || errors.Is(err, ErrSyncProtocol) {
			t.Fatalf("got %v, want the replica's error", err)
		}
	})

	t.Run("nothing to send before hello or after done", func(t *testing.T) {
		a, b := newFakeReplica(t, 1, 0), newFakeReplica(t, 2, 0)
		a.write(t, 1, 2)
		s := NewSyncSession(a, b.peer, wire.DefaultSyncLimits())
		if m, err := s.Next(ctx); m != nil || err != nil {
			t.Fatalf("Next before hello: %v, %v", m, err)
		}
		if err := s.Handle(ctx, hello(b)); err != nil {
			t.Fatal(err)
		}
		var types []uint64
		for {
			m, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m == nil {
				break
			}
			types = append(types, m.Type)
		}
		if fmt.Sprint(types) != fmt.Sprint([]uint64{wire.TypeSyncDeltas, wire.TypeSyncDone}) {
			t.Fatalf("sent %v", types)
		}
		if s.Finished() {
			t.Fatal("finished before the peer's Done")
		}
		if err := s.Handle(ctx, &wire.SyncMsg{Type: wire.TypeSyncDone}); err != nil {
			t.Fatal(err)
		}
		if !s.Finished() {
			t.Fatal("not finished after both Dones")
		}
	})
}
