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
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/internal/faultds"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

func openTestDriver(t *testing.T, ds datastore.Batching, key crypto.PrivKey, mod ...func(*driverDeps)) (*driver, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), ds, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	deps := driverDeps{
		store: st, key: key, self: wire.ReplicaFor(id, st.Incarnation()), selfPeer: id, ackPeers: 1,
		now: time.Now, log: slog.New(slog.DiscardHandler),
	}
	for _, m := range mod {
		m(&deps)
	}
	r, err := openDriver("fail", deps)
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
			// From the failAt-th Sync on, every Sync fails and loses what was
			// written since the last good one, as a disk that never made it
			// durable would.
			mem := faultds.NewCrash()
			var sw faultds.Switch
			cnt := faultds.NewCount(mem)
			fds := faultds.NewFail(cnt, mem.CrashOn(faultds.If(faultds.Kinds(faultds.OpSync), &sw)))
			r, st := openTestDriver(t, fds, key)
			sw.Set(faultds.FromIndex(failAt))

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
				t.Fatalf("no writer saw the failure (%d syncs)", cnt.Syncs())
			}
			if err := r.waitAcked(ctx); !errors.Is(err, ErrStorage) {
				t.Fatalf("WaitAcked after failure: %v", err)
			}
			r.close()
			_ = st.Close()

			// Every acknowledged write survives a reopen of what was synced.
			r2, st2 := openTestDriver(t, mem, key)
			defer func() { r2.close(); _ = st2.Close() }()
			var view string
			r2.view(func(st *crdt.State) { view = string(st.JSON()) })
			for _, k := range acked {
				if !strings.Contains(view, `"`+k+`"`) {
					t.Fatalf("acknowledged write %s lost (%d acknowledged, %d writers failed)", k, len(acked), failed.Load())
				}
			}
			t.Logf("fail at sync %d: %d acknowledged, %d writers failed", failAt, len(acked), failed.Load())
		})
	}
}
