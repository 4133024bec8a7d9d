package faultds

import (
	"context"
	"sync/atomic"

	"github.com/ipfs/go-datastore"
)

// Fail is a datastore that asks an Injector before every write operation
// (Put, Delete, batch Commit, Sync) and fails those it is told to fail. A
// failing operation is not applied, unless the error comes from AfterApply.
// Reads and Close pass through to the datastore below. It is safe for
// concurrent use if the datastore below is.
type Fail struct {
	datastore.Batching // the datastore below
	inj                Injector
	injected           atomic.Int64
}

var _ datastore.Batching = (*Fail)(nil)

// NewFail wraps inner; inj decides which write operations fail (nil: none).
func NewFail(inner datastore.Batching, inj Injector) *Fail {
	return &Fail{Batching: inner, inj: inj}
}

// Injected returns the number of operations failed so far.
func (f *Fail) Injected() int64 { return f.injected.Load() }

// check runs do unless the injector fails op; with an AfterApply error it
// runs do first and reports do's error, if any, else the injected one.
func (f *Fail) check(op Op, do func() error) error {
	if f.inj == nil {
		return do()
	}
	err := f.inj.MaybeError(op)
	if err == nil {
		return do()
	}
	f.injected.Add(1)
	if Applied(err) {
		if derr := do(); derr != nil {
			return derr
		}
	}
	return err
}

// Put writes the value unless the injector fails the put.
func (f *Fail) Put(ctx context.Context, k datastore.Key, v []byte) error {
	return f.check(Op{Kind: OpPut, Keys: []datastore.Key{k}}, func() error { return f.Batching.Put(ctx, k, v) })
}

// Delete deletes the key unless the injector fails the delete.
func (f *Fail) Delete(ctx context.Context, k datastore.Key) error {
	return f.check(Op{Kind: OpDelete, Keys: []datastore.Key{k}}, func() error { return f.Batching.Delete(ctx, k) })
}

// Sync syncs the datastore below unless the injector fails the sync.
func (f *Fail) Sync(ctx context.Context, prefix datastore.Key) error {
	return f.check(Op{Kind: OpSync, Keys: []datastore.Key{prefix}}, func() error { return f.Batching.Sync(ctx, prefix) })
}

// Batch returns a batch that is buffered here and, at Commit, unless the
// injector fails the commit, written to the datastore below as one batch.
func (f *Fail) Batch(context.Context) (datastore.Batch, error) {
	return &buffered{commit: func(ctx context.Context, ops []bufOp) error {
		return f.check(commitOp(ops), func() error { return applyBatch(ctx, f.Batching, ops) })
	}}, nil
}
