package faultds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
)

// Crash is an in-memory datastore whose writes survive a crash only once
// synced. Writes apply at once (reads see them), and Crash keeps an undo
// record of every change since the last Sync; Crash rolls them back, as a
// power cut loses what the disk had not made durable.
//
// Sync, whatever its prefix, makes everything written so far durable. A
// batch is applied at Commit, each of its operations recorded like a Put or
// Delete, so a crash after an unsynced Commit loses the whole batch and a
// crash after the Sync that follows it loses none of it. Close keeps the
// contents: a datastore reopened over the same Crash sees what survived.
// It is safe for concurrent use.
type Crash struct {
	live datastore.Batching // the contents, synced or not

	mu   sync.Mutex // serialises writes and their undo records
	undo []crashUndo
}

type crashUndo struct {
	key datastore.Key
	old []byte // nil: absent before
}

var _ datastore.Batching = (*Crash)(nil)

// NewCrash returns an empty Crash.
func NewCrash() *Crash {
	return &Crash{live: dssync.MutexWrap(datastore.NewMapDatastore())}
}

// record notes k's current value for Crash; the caller holds c.mu.
func (c *Crash) record(ctx context.Context, k datastore.Key) error {
	old, err := c.live.Get(ctx, k)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		old = nil
	case err != nil:
		return fmt.Errorf("faultds: crash record of %s: %w", k, err)
	default:
		old = slices.Clone(old)
		if old == nil {
			old = []byte{} // present but empty, not absent
		}
	}
	c.undo = append(c.undo, crashUndo{k, old})
	return nil
}

// Put writes the value, undone by a Crash before the next Sync.
func (c *Crash) Put(ctx context.Context, k datastore.Key, v []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record(ctx, k); err != nil {
		return err
	}
	return c.live.Put(ctx, k, slices.Clone(v))
}

// Delete deletes the key, undone by a Crash before the next Sync.
func (c *Crash) Delete(ctx context.Context, k datastore.Key) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record(ctx, k); err != nil {
		return err
	}
	return c.live.Delete(ctx, k)
}

// Sync makes everything written so far durable, whatever the prefix.
func (c *Crash) Sync(context.Context, datastore.Key) error {
	c.mu.Lock()
	c.undo = nil
	c.mu.Unlock()
	return nil
}

// Batch returns a batch applied at Commit, operation by operation, each
// recorded as a Put or Delete is.
func (c *Crash) Batch(context.Context) (datastore.Batch, error) {
	return &buffered{commit: func(ctx context.Context, ops []bufOp) error {
		for _, o := range ops {
			var err error
			if o.del {
				err = c.Delete(ctx, o.key)
			} else {
				err = c.Put(ctx, o.key, o.value)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}}, nil
}

// Crash loses every change since the last Sync, newest first, and returns
// how many there were.
func (c *Crash) Crash(ctx context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.undo)
	for i := len(c.undo) - 1; i >= 0; i-- {
		u := c.undo[i]
		var err error
		if u.old == nil {
			err = c.live.Delete(ctx, u.key)
		} else {
			err = c.live.Put(ctx, u.key, u.old)
		}
		if err != nil {
			return n, fmt.Errorf("faultds: crash: restore %s: %w", u.key, err)
		}
	}
	c.undo = nil
	return n, nil
}

// Unsynced returns the number of changes a Crash now would lose.
func (c *Crash) Unsynced() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.undo)
}

// CrashOn returns an Injector that fails as inj does and, each time it
// does, crashes c first: put between a Fail and c, a failing Sync loses
// everything written since the last good one, as a disk that never made it
// durable would.
func (c *Crash) CrashOn(inj Injector) Injector {
	return InjectorFunc(func(op Op) error {
		err := inj.MaybeError(op)
		if err == nil {
			return nil
		}
		if _, cerr := c.Crash(context.Background()); cerr != nil {
			return errors.Join(err, cerr)
		}
		return err
	})
}

// Get reads the current contents (synced or not).
func (c *Crash) Get(ctx context.Context, k datastore.Key) ([]byte, error) {
	return c.live.Get(ctx, k)
}

// Has reports whether the current contents hold k.
func (c *Crash) Has(ctx context.Context, k datastore.Key) (bool, error) {
	return c.live.Has(ctx, k)
}

// GetSize returns the size of k's current value.
func (c *Crash) GetSize(ctx context.Context, k datastore.Key) (int, error) {
	return c.live.GetSize(ctx, k)
}

// Query queries the current contents.
func (c *Crash) Query(ctx context.Context, q query.Query) (query.Results, error) {
	return c.live.Query(ctx, q)
}

// Close does nothing: the contents stay for the next user.
func (c *Crash) Close() error { return nil }
