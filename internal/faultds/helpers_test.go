package faultds

import (
	"context"
	"errors"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

func newMem() datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }

func key(s string) datastore.Key { return datastore.NewKey(s) }

// value returns k's value in ds, or "" if absent.
func value(t *testing.T, ds datastore.Read, k string) string {
	t.Helper()
	v, err := ds.Get(context.Background(), key(k))
	if errors.Is(err, datastore.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func mustPut(t *testing.T, ds datastore.Write, k, v string) {
	t.Helper()
	if err := ds.Put(context.Background(), key(k), []byte(v)); err != nil {
		t.Fatal(err)
	}
}

// commit writes kvs (key, value, key, value...; an empty value deletes) as
// one batch of ds.
func commit(ds datastore.Batching, kvs ...string) error {
	ctx := context.Background()
	b, err := ds.Batch(ctx)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(kvs); i += 2 {
		if kvs[i+1] == "" {
			err = b.Delete(ctx, key(kvs[i]))
		} else {
			err = b.Put(ctx, key(kvs[i]), []byte(kvs[i+1]))
		}
		if err != nil {
			return err
		}
	}
	return b.Commit(ctx)
}
