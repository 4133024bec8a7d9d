package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-datastore"
)

// errInjected is the error faultDS returns.
var errInjected = errors.New("injected fault")

// faultDS wraps a datastore and fails its failAt-th write operation (Put,
// Delete, batch Commit or Sync; 1-based; 0 = never), in the style of
// go-datastore's failstore and pebble's errorfs.OnIndex. With after=true the
// failing operation is applied first and then reports an error (the write
// reached the medium but the caller cannot know). Once failed, every later
// write fails too (a dead disk). Batches are buffered and applied at Commit
// as a unit, like Pebble's.
type faultDS struct {
	datastore.Batching
	failAt int64
	after  bool

	writes atomic.Int64
	failed atomic.Bool
}

func (f *faultDS) check(do func() error) error {
	n := f.writes.Add(1)
	if f.failed.Load() {
		return errInjected
	}
	if f.failAt > 0 && n == f.failAt {
		f.failed.Store(true)
		if f.after {
			if err := do(); err != nil {
				return err
			}
		}
		return fmt.Errorf("write #%d: %w", n, errInjected)
	}
	return do()
}

func (f *faultDS) Put(ctx context.Context, k datastore.Key, v []byte) error {
	return f.check(func() error { return f.Batching.Put(ctx, k, v) })
}

func (f *faultDS) Delete(ctx context.Context, k datastore.Key) error {
	return f.check(func() error { return f.Batching.Delete(ctx, k) })
}

func (f *faultDS) Sync(ctx context.Context, k datastore.Key) error {
	return f.check(func() error { return f.Batching.Sync(ctx, k) })
}

func (f *faultDS) Close() error { return nil } // the test owns the inner store

func (f *faultDS) Batch(ctx context.Context) (datastore.Batch, error) {
	return &faultBatch{f: f}, nil
}

type faultBatch struct {
	f   *faultDS
	mu  sync.Mutex
	ops []op
}

func (b *faultBatch) Put(_ context.Context, k datastore.Key, v []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, op{key: k, value: v})
	return nil
}

func (b *faultBatch) Delete(_ context.Context, k datastore.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, op{key: k, del: true})
	return nil
}

func (b *faultBatch) Commit(ctx context.Context) error {
	return b.f.check(func() error {
		inner, err := b.f.Batching.Batch(ctx)
		if err != nil {
			return err
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, o := range b.ops {
			if o.del {
				err = inner.Delete(ctx, o.key)
			} else {
				err = inner.Put(ctx, o.key, o.value)
			}
			if err != nil {
				return err
			}
		}
		return inner.Commit(ctx)
	})
}

// gateSyncDS counts Syncs and, while held, makes every Sync wait until
// release.
type gateSyncDS struct {
	datastore.Batching
	syncs atomic.Int64

	mu      sync.Mutex
	open    chan struct{} // nil: not held; closed by release
	arrived chan struct{} // closed when a Sync waits at the held gate
	waiting bool
}

// hold makes later Syncs wait for release and returns a channel closed as
// soon as one does.
func (g *gateSyncDS) hold() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open, g.arrived, g.waiting = make(chan struct{}), make(chan struct{}), false
	return g.arrived
}

// release lets every held Sync through; later ones pass until the next hold.
func (g *gateSyncDS) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open != nil {
		close(g.open)
		g.open = nil
	}
}

func (g *gateSyncDS) Sync(ctx context.Context, k datastore.Key) error {
	g.syncs.Add(1)
	g.mu.Lock()
	open := g.open
	if open != nil && !g.waiting {
		g.waiting = true
		close(g.arrived)
	}
	g.mu.Unlock()
	if open != nil {
		select {
		case <-open:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Batching.Sync(ctx, k)
}
