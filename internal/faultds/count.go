package faultds

import (
	"context"
	"sync/atomic"

	"github.com/ipfs/go-datastore"
)

// Count is a datastore that counts the write operations it passes to the
// datastore below: Puts, Deletes, batch Commits and Syncs, whether or not
// they then succeed. Reads and Close pass through uncounted.
type Count struct {
	datastore.Batching // the datastore below
	n                  [OpSync + 1]atomic.Int64
}

var _ datastore.Batching = (*Count)(nil)

// NewCount wraps inner.
func NewCount(inner datastore.Batching) *Count { return &Count{Batching: inner} }

// Of returns the number of operations of kind k so far.
func (c *Count) Of(k Kind) int64 {
	if k < OpPut || k > OpSync {
		return 0
	}
	return c.n[k].Load()
}

// Syncs returns the number of Syncs so far.
func (c *Count) Syncs() int64 { return c.Of(OpSync) }

// Writes returns the number of write operations of every kind so far.
func (c *Count) Writes() int64 {
	return c.Of(OpPut) + c.Of(OpDelete) + c.Of(OpCommit) + c.Of(OpSync)
}

// Put counts and passes on a Put.
func (c *Count) Put(ctx context.Context, k datastore.Key, v []byte) error {
	c.n[OpPut].Add(1)
	return c.Batching.Put(ctx, k, v)
}

// Delete counts and passes on a Delete.
func (c *Count) Delete(ctx context.Context, k datastore.Key) error {
	c.n[OpDelete].Add(1)
	return c.Batching.Delete(ctx, k)
}

// Sync counts and passes on a Sync.
func (c *Count) Sync(ctx context.Context, prefix datastore.Key) error {
	c.n[OpSync].Add(1)
	return c.Batching.Sync(ctx, prefix)
}

// Batch returns a batch buffered here; its Commit is counted and writes it
// to the datastore below as one batch.
func (c *Count) Batch(context.Context) (datastore.Batch, error) {
	return &buffered{commit: func(ctx context.Context, ops []bufOp) error {
		c.n[OpCommit].Add(1)
		return applyBatch(ctx, c.Batching, ops)
	}}, nil
}
