package net

import (
	"context"
	"errors"
	"testing"

	ds "github.com/ipfs/go-datastore"
)

// The DHT's record store refuses new keys past its bound, counts what
// leaves, and bounds batches too.
func TestBoundedDatastore(t *testing.T) {
	ctx := context.Background()
	b := newBoundedDatastore(2)
	for _, k := range []string{"/a", "/b", "/a"} {
		if err := b.Put(ctx, ds.NewKey(k), []byte("x")); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	if err := b.Put(ctx, ds.NewKey("/c"), nil); !errors.Is(err, errDatastoreFull) {
		t.Fatalf("third key: %v", err)
	}
	if err := b.Delete(ctx, ds.NewKey("/a")); err != nil {
		t.Fatal(err)
	}
	bt, _ := b.Batch(ctx)
	_ = bt.Put(ctx, ds.NewKey("/c"), nil)
	_ = bt.Put(ctx, ds.NewKey("/d"), nil)
	if err := bt.Commit(ctx); !errors.Is(err, errDatastoreFull) {
		t.Fatalf("batch past the bound: %v", err)
	}
	if ok, _ := b.Has(ctx, ds.NewKey("/c")); !ok {
		t.Fatal("the batch's first key is missing")
	}
}
