package concord

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// syncFailDS fails every Sync from the failAt-th on (0: never), and a
// failed Sync loses everything written since the last good one, as a disk
// that never made it durable would.
type syncFailDS struct {
	*crashDS
	syncs, failAt atomic.Int64
}

var errDiskGone = errors.New("disk gone")

func (f *syncFailDS) Sync(ctx context.Context, k datastore.Key) error {
	if n := f.syncs.Add(1); f.failAt.Load() > 0 && n >= f.failAt.Load() {
		if _, err := f.crash(ctx); err != nil {
			return err
		}
		return errDiskGone
	}
	return f.crashDS.Sync(ctx, k)
}

func openTestReplica(t *testing.T, ds datastore.Batching, key crypto.PrivKey, mod ...func(*replicaDeps)) (*replica, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), ds, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	deps := replicaDeps{
		store: st, key: key, self: wire.ReplicaFor(id, st.Incarnation()), selfPeer: id, ackPeers: 1,
		now: time.Now, log: slog.New(slog.DiscardHandler),
	}
	for _, m := range mod {
		m(&deps)
	}
	r, err := openReplica(context.Background(), "fail", deps)
	if err != nil {
		t.Fatal(err)
	}
	return r, st
}

// TestWritersSurviveStorageFailure: 64 concurrent writers (so deltas take
// the pipelined path as well as the inline one) while the disk starts
// failing its syncs. Every writer returns — acknowledged or with an error
// wrapping ErrStorage — none hangs, WaitAcked reports the failure, and
// every acknowledged write is in the log when the store is reopened.
func TestWritersSurviveStorageFailure(t *testing.T) {
	// 64 writers × 40 writes need at least 40 syncs (one write per writer
	// per delta at best), so every failure point below is reached.
	for _, failAt := range []int64{3, 15, 30} {
		t.Run(fmt.Sprint("sync", failAt), func(t *testing.T) {
			key, _, err := crypto.GenerateEd25519Key(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			mem := newCrashDS()
			fds := &syncFailDS{crashDS: mem}
			r, st := openTestReplica(t, fds, key)
			fds.failAt.Store(fds.syncs.Load() + failAt)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			const writers, per = 64, 40
			var mu sync.Mutex
			var acked []string
			var failed atomic.Int64
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						k := fmt.Sprintf("w%d-%d", w, i)
						err := r.apply(ctx, []crdt.Op{crdt.Set([]string{k}, []byte("1"))})
						if err != nil {
							if !errors.Is(err, ErrStorage) {
								t.Errorf("write %s: %v, want ErrStorage", k, err)
							}
							failed.Add(1)
							return
						}
						mu.Lock()
						acked = append(acked, k)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if ctx.Err() != nil {
				t.Fatal("writers hung after the storage failure")
			}
			if failed.Load() == 0 {
				t.Fatalf("no writer saw the failure (%d syncs)", fds.syncs.Load())
			}
			if err := r.waitAcked(ctx); !errors.Is(err, ErrStorage) {
				t.Fatalf("WaitAcked after failure: %v", err)
			}
			r.close()
			_ = st.Close()

			// Every acknowledged write survives a reopen of what was synced.
			r2, st2 := openTestReplica(t, mem, key)
			defer func() { r2.close(); _ = st2.Close() }()
			view := string(r2.state.JSON())
			for _, k := range acked {
				if !strings.Contains(view, `"`+k+`"`) {
					t.Fatalf("acknowledged write %s lost (%d acknowledged, %d writers failed)", k, len(acked), failed.Load())
				}
			}
			t.Logf("fail at sync %d: %d acknowledged, %d writers failed", failAt, len(acked), failed.Load())
		})
	}
}

// TestCompactionRetention: a peer that holds nothing of our writes keeps
// them in the log while it is heard from; once it has been silent for
// longer than the retention, the next summary from another peer lets the
// log be compacted.
func TestCompactionRetention(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r, st := openTestReplica(t, dssync.MutexWrap(datastore.NewMapDatastore()), key, func(d *replicaDeps) {
		d.now, d.compactAfter, d.retention = clock, 10, time.Hour
	})
	defer func() { r.close(); _ = st.Close() }()
	ctx := context.Background()
	for i := range 30 {
		if err := r.apply(ctx, []crdt.Op{crdt.Set([]string{fmt.Sprint(i)}, []byte("1"))}); err != nil {
			t.Fatal(err)
		}
	}
	peerOf := func() peer.ID {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(k)
		return id
	}
	gone, live := peerOf(), peerOf()
	all := crdt.VersionVector{r.d.self: 30}
	r.Observed(gone, crdt.VersionVector{}) // holds nothing
	r.Observed(live, all)
	compacted := func() bool {
		snap, ok, err := st.Snapshot(ctx, "fail")
		return err == nil && ok && snap.VV[r.d.self] == 30
	}
	r.mu.Lock()
	started := r.compactOn
	r.mu.Unlock()
	if started || compacted() {
		t.Fatal("compacted past a peer heard from a moment ago")
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	r.Observed(live, all)
	waitFor(t, 10*time.Second, "compaction past the silent peer", compacted)
}

// TestForgedAggregateCheckedFirst: an aggregate over sequence numbers we
// hold, with a bad signature, is rejected as forged (a signature check),
// not ignored as a duplicate after a lookup per covered number.
func TestForgedAggregateCheckedFirst(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r, st := openTestReplica(t, dssync.MutexWrap(datastore.NewMapDatastore()), key)
	defer func() { r.close(); _ = st.Close() }()
	for i := range 5 {
		if err := r.apply(context.Background(), []crdt.Op{crdt.Set([]string{fmt.Sprint(i)}, []byte("1"))}); err != nil {
			t.Fatal(err)
		}
	}
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	from, _ := peer.IDFromPrivateKey(other)
	forged := &wire.Envelope{Doc: "fail", Origin: r.d.self, Seq: 1, Last: 5, Payload: crdt.EncodeDelta(crdt.New(), r.d.self), Sig: make([]byte, 64)}
	err = r.Validate(from, forged)
	var rej *rejectError
	if !errors.As(err, &rej) || rej.reason != "bad_signature" {
		t.Fatalf("forged aggregate over held seqs: %v", err)
	}
	// A genuine one over the same seqs is a duplicate.
	genuine := &wire.Envelope{Doc: "fail", Origin: r.d.self, Seq: 1, Last: 5, Payload: crdt.EncodeDelta(crdt.New(), r.d.self)}
	if err := wire.SignEnvelope(key, genuine); err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(from, genuine); !errors.Is(err, wire.ErrDuplicate) {
		t.Fatalf("genuine aggregate over held seqs: %v", err)
	}
}

// blockSyncDS holds every Sync while blocked is set.
type blockSyncDS struct {
	datastore.Batching
	mu      sync.Mutex
	blocked chan struct{} // nil: not blocked; closed: release
}

func (b *blockSyncDS) Sync(ctx context.Context, k datastore.Key) error {
	b.mu.Lock()
	ch := b.blocked
	b.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return b.Batching.Sync(ctx, k)
}

// TestQueuedSlotsNotReplaced: while a gossip aggregate (seqs 1..3, stored
// at 3 with markers at 1 and 2) waits for its sync, a single delta for seq
// 3 arriving by sync must not be placed over the aggregate's slot — that
// would leave the markers pointing at a delta that lacks 1 and 2.
func TestQueuedSlotsNotReplaced(t *testing.T) {
	ctx := context.Background()
	akey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	apeer, _ := peer.IDFromPrivateKey(akey)
	arep := wire.ReplicaFor(apeer, 1)
	author := crdt.New()
	var singles []*wire.Envelope
	joined := crdt.New()
	for i := 1; i <= 3; i++ {
		d, err := author.Apply(arep, crdt.HLC(i), crdt.Set([]string{fmt.Sprint(i)}, []byte("1")))
		if err != nil {
			t.Fatal(err)
		}
		joined.Merge(d)
		e := &wire.Envelope{Doc: "fail", Origin: arep, Seq: uint64(i), HLC: uint64(i), Payload: crdt.EncodeDelta(d, arep)}
		if err := wire.SignEnvelope(akey, e); err != nil {
			t.Fatal(err)
		}
		singles = append(singles, e)
	}
	agg := &wire.Envelope{Doc: "fail", Origin: arep, Seq: 1, Last: 3, HLC: 3, Payload: crdt.EncodeDelta(joined, arep)}
	if err := wire.SignEnvelope(akey, agg); err != nil {
		t.Fatal(err)
	}

	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	bds := &blockSyncDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore())}
	r, st := openTestReplica(t, bds, key)
	defer func() { r.close(); _ = st.Close() }()
	release := make(chan struct{})
	bds.mu.Lock()
	bds.blocked = release
	bds.mu.Unlock()
	if err := r.ingest(ctx, apeer, []*wire.Envelope{agg}, true); err != nil { // gossip: queued
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- r.ingest(ctx, apeer, []*wire.Envelope{singles[2]}, false) }()
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the single for a queued slot was written again (it waited for the blocked store)")
	}
	close(release)
	r.settle()
	got, err := st.Get(ctx, "fail", arep, 3)
	if err != nil {
		t.Fatal(err)
	}
	env, err := wire.DecodeEnvelope(got.Data, storedLimits)
	if err != nil || env.Seq != 1 || env.Last != 3 {
		t.Fatalf("slot 3 holds %+v (%v), want the aggregate 1..3", env, err)
	}
}
