package concord

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
)

// simFailure is the panic value of a failed simulation invariant; runSim
// recovers it so the seed can be reported and every replica closed.
type simFailure struct{ msg string }

// simKey derives replica i's Ed25519 key from the run's seed, so peer IDs
// (and with them replica IDs, sort orders and signatures) are a function
// of the seed.
func simKey(seed uint64, i int) (crypto.PrivKey, peer.ID, error) {
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

// waitCompaction waits for a compaction that Observed may have started on
// its own goroutine (replica.maybeCompact), so that the simulation's next
// step sees a settled store and replays are exact.
func waitCompaction(r *replica) {
	for {
		r.mu.Lock()
		on := r.compactOn
		r.mu.Unlock()
		if !on {
			return
		}
		runtime.Gosched()
	}
}

// simView is the replica as the sim's sync sessions see it: Observed waits
// for the compaction it may trigger.
type simView struct{ *replica }

func (v simView) Observed(p peer.ID, vv crdt.VersionVector) {
	v.replica.Observed(p, vv)
	waitCompaction(v.replica)
}

var _ cnet.Replica = simView{}

// marks returns the acknowledgment markers held at simAckKey.
func (r *replica) simMarks() (map[string]bool, error) {
	r.mu.Lock()
	raw, ok := r.state.Get([]string{simAckKey})
	r.mu.Unlock()
	out := map[string]bool{}
	if !ok {
		return out, nil
	}
	var elems []string
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("marker set %s: %w", raw, err)
	}
	for _, e := range elems {
		out[e] = true
	}
	return out, nil
}

// simSeedsFromEnv returns the seeds to run: CONCORD_SIM_SEED=S replays one
// seed verbosely; CONCORD_SIM_SEEDS=N runs seeds 1..N; otherwise def.
func simSeedsFromEnv(t *testing.T, def int) (first uint64, n int, verbose bool) {
	if s := os.Getenv("CONCORD_SIM_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CONCORD_SIM_SEED=%q: %v", s, err)
		}
		return seed, 1, true
	}
	n = def
	if s := os.Getenv("CONCORD_SIM_SEEDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("CONCORD_SIM_SEEDS=%q: want a positive integer", s)
		}
		n = v
	}
	return 1, n, false
}

// crashDS is a datastore whose writes survive a crash only once synced:
// it keeps an undo record of every change since the last Sync, and crash
// rolls them back. The store promises that every acknowledged write was
// synced, so a crash must never lose one (the sim checks that restarted
// replicas come back exactly as they were).
type crashDS struct {
	datastore.Batching // the live contents (a MutexWrap'd MapDatastore)

	mu   sync.Mutex
	undo []crashUndo
}

type crashUndo struct {
	key datastore.Key
	old []byte // nil: absent before
}

var _ datastore.Batching = (*crashDS)(nil)

func newCrashDS() *crashDS {
	return &crashDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore())}
}

func (c *crashDS) record(ctx context.Context, k datastore.Key) error {
	old, err := c.Batching.Get(ctx, k)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		old = nil
	case err != nil:
		return err
	}
	c.undo = append(c.undo, crashUndo{k, old})
	return nil
}

func (c *crashDS) Put(ctx context.Context, k datastore.Key, v []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record(ctx, k); err != nil {
		return err
	}
	return c.Batching.Put(ctx, k, slices.Clone(v))
}

func (c *crashDS) Delete(ctx context.Context, k datastore.Key) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record(ctx, k); err != nil {
		return err
	}
	return c.Batching.Delete(ctx, k)
}

// Sync makes everything written so far durable (any prefix: the store
// syncs "/").
func (c *crashDS) Sync(context.Context, datastore.Key) error {
	c.mu.Lock()
	c.undo = nil
	c.mu.Unlock()
	return nil
}

func (c *crashDS) Batch(context.Context) (datastore.Batch, error) {
	return &crashBatch{ds: c}, nil
}

// crash loses every unsynced change and reports how many there were.
func (c *crashDS) crash(ctx context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.undo)
	for i := len(c.undo) - 1; i >= 0; i-- {
		u := c.undo[i]
		var err error
		if u.old == nil {
			err = c.Batching.Delete(ctx, u.key)
		} else {
			err = c.Batching.Put(ctx, u.key, u.old)
		}
		if err != nil {
			return n, err
		}
	}
	c.undo = nil
	return n, nil
}

type crashBatch struct {
	ds  *crashDS
	ops []crashUndo // key and new value; nil value: delete
	del []bool
}

func (b *crashBatch) Put(_ context.Context, k datastore.Key, v []byte) error {
	b.ops = append(b.ops, crashUndo{k, slices.Clone(v)})
	b.del = append(b.del, false)
	return nil
}

func (b *crashBatch) Delete(_ context.Context, k datastore.Key) error {
	b.ops = append(b.ops, crashUndo{k, nil})
	b.del = append(b.del, true)
	return nil
}

// Commit applies the batch (atomically with respect to crash: a crash
// either keeps all of an unsynced batch or none, here none).
func (b *crashBatch) Commit(ctx context.Context) error {
	for i, op := range b.ops {
		var err error
		if b.del[i] {
			err = b.ds.Delete(ctx, op.key)
		} else {
			err = b.ds.Put(ctx, op.key, op.old)
		}
		if err != nil {
			return err
		}
	}
	b.ops, b.del = nil, nil
	return nil
}
