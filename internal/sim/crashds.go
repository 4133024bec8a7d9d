package sim

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

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
