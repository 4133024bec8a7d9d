package faultds

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/ipfs/go-datastore"
)

// bufOp is one buffered batch operation.
type bufOp struct {
	key   datastore.Key
	value []byte
	del   bool
}

// buffered is the Batch every wrapper returns: it buffers Puts and Deletes
// (values copied) and hands them, in order, to commit. After a successful
// Commit the batch is empty and can be reused.
type buffered struct {
	mu     sync.Mutex
	ops    []bufOp
	commit func(ctx context.Context, ops []bufOp) error
}

var _ datastore.Batch = (*buffered)(nil)

func (b *buffered) Put(_ context.Context, k datastore.Key, v []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, bufOp{key: k, value: slices.Clone(v)})
	return nil
}

func (b *buffered) Delete(_ context.Context, k datastore.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, bufOp{key: k, del: true})
	return nil
}

func (b *buffered) Commit(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.commit(ctx, b.ops); err != nil {
		return err
	}
	b.ops = nil
	return nil
}

// commitOp is the Op a Commit of ops is.
func commitOp(ops []bufOp) Op {
	keys := make([]datastore.Key, len(ops))
	for i, o := range ops {
		keys[i] = o.key
	}
	return Op{Kind: OpCommit, Keys: keys}
}

// applyBatch writes ops to ds as one batch of its own.
func applyBatch(ctx context.Context, ds datastore.Batching, ops []bufOp) error {
	b, err := ds.Batch(ctx)
	if err != nil {
		return fmt.Errorf("faultds: new batch: %w", err)
	}
	for _, o := range ops {
		if o.del {
			err = b.Delete(ctx, o.key)
		} else {
			err = b.Put(ctx, o.key, o.value)
		}
		if err != nil {
			return err
		}
	}
	return b.Commit(ctx)
}
