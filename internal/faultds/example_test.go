package faultds_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/concord-p2p/concord/internal/faultds"
	"github.com/ipfs/go-datastore"
)

// A disk that loses unsynced writes when the test pulls the plug.
func ExampleCrash() {
	ctx := context.Background()
	c := faultds.NewCrash()
	_ = c.Put(ctx, datastore.NewKey("/synced"), []byte("1"))
	_ = c.Sync(ctx, datastore.NewKey("/"))
	_ = c.Put(ctx, datastore.NewKey("/unsynced"), []byte("1"))
	lost, _ := c.Crash(ctx)
	_, err := c.Get(ctx, datastore.NewKey("/unsynced"))
	fmt.Println(lost, errors.Is(err, datastore.ErrNotFound))
	// Output: 1 true
}

// Fail the second Sync and every write after it.
func ExampleFail() {
	ctx := context.Background()
	f := faultds.NewFail(faultds.NewCrash(), faultds.Sticky(faultds.If(faultds.Kinds(faultds.OpSync), faultds.OnIndex(2))))
	for i := range 3 {
		err := f.Sync(ctx, datastore.NewKey("/"))
		fmt.Println(i+1, errors.Is(err, faultds.ErrInjected))
	}
	fmt.Println(f.Injected())
	// Output:
	// 1 false
	// 2 true
	// 3 true
	// 2
}
