package faultds

import (
	"context"
	"errors"
	"testing"
)

func TestCrashKeepsOnlySynced(t *testing.T) {
	ctx := context.Background()
	c := NewCrash()
	mustPut(t, c, "/kept", "1")
	mustPut(t, c, "/over", "old")
	mustPut(t, c, "/gone", "1")
	if err := c.Sync(ctx, key("/some/prefix")); err != nil { // any prefix syncs everything
		t.Fatal(err)
	}
	mustPut(t, c, "/over", "new")
	mustPut(t, c, "/over", "newer")
	mustPut(t, c, "/fresh", "1")
	if err := c.Delete(ctx, key("/gone")); err != nil {
		t.Fatal(err)
	}
	if value(t, c, "/over") != "newer" || value(t, c, "/gone") != "" { // writes apply at once
		t.Fatal("unsynced writes not visible")
	}
	if n := c.Unsynced(); n != 4 {
		t.Fatalf("Unsynced = %d", n)
	}
	n, err := c.Crash(ctx)
	if err != nil || n != 4 {
		t.Fatalf("Crash = %d, %v", n, err)
	}
	for k, want := range map[string]string{"/kept": "1", "/over": "old", "/gone": "1", "/fresh": ""} {
		if got := value(t, c, k); got != want {
			t.Errorf("after crash %s = %q, want %q", k, got, want)
		}
	}
	if n, err := c.Crash(ctx); n != 0 || err != nil {
		t.Fatalf("second crash: %d %v", n, err)
	}
}

func TestCrashBatches(t *testing.T) {
	ctx := context.Background()
	c := NewCrash()
	if err := commit(c, "/a", "1", "/b", "1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx, key("/")); err != nil {
		t.Fatal(err)
	}
	// An unsynced batch is lost whole; a synced one survives whole.
	if err := commit(c, "/a", "2", "/b", "", "/c", "2"); err != nil {
		t.Fatal(err)
	}
	if value(t, c, "/b") != "" || value(t, c, "/c") != "2" {
		t.Fatal("committed batch not visible")
	}
	if n, err := c.Crash(ctx); n != 3 || err != nil {
		t.Fatalf("Crash = %d, %v", n, err)
	}
	if value(t, c, "/a") != "1" || value(t, c, "/b") != "1" || value(t, c, "/c") != "" {
		t.Fatal("unsynced batch survived the crash")
	}
	// A batch that is put together but not committed writes nothing.
	b, err := c.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, key("/d"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if value(t, c, "/d") != "" || c.Unsynced() != 0 {
		t.Fatal("an uncommitted batch wrote")
	}
}

// TestCrashValuesCopied: a caller reusing its buffer after Put cannot
// change what is stored, nor what a crash restores.
func TestCrashValuesCopied(t *testing.T) {
	ctx := context.Background()
	c := NewCrash()
	buf := []byte("one")
	if err := c.Put(ctx, key("/a"), buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "two")
	if value(t, c, "/a") != "one" {
		t.Fatal("Put kept the caller's buffer")
	}
	if err := c.Sync(ctx, key("/")); err != nil {
		t.Fatal(err)
	}
	mustPut(t, c, "/a", "three")
	if _, err := c.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	if value(t, c, "/a") != "one" {
		t.Fatalf("restored %q", value(t, c, "/a"))
	}
}

func TestCrashCloseKeepsContents(t *testing.T) {
	c := NewCrash()
	mustPut(t, c, "/a", "1")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if value(t, c, "/a") != "1" {
		t.Fatal("Close dropped the contents")
	}
	if ok, err := c.Has(context.Background(), key("/a")); !ok || err != nil {
		t.Fatalf("Has: %v %v", ok, err)
	}
	if n, err := c.GetSize(context.Background(), key("/a")); n != 1 || err != nil {
		t.Fatalf("GetSize: %v %v", n, err)
	}
}

// TestCrashOnFailedSync: a Fail over a Crash whose Syncs start failing,
// each failure losing what was written since the last good Sync.
func TestCrashOnFailedSync(t *testing.T) {
	ctx := context.Background()
	c := NewCrash()
	var sw Switch
	cnt := NewCount(c)
	f := NewFail(cnt, c.CrashOn(If(Kinds(OpSync), &sw)))
	mustPut(t, f, "/a", "1")
	if err := f.Sync(ctx, key("/")); err != nil {
		t.Fatal(err)
	}
	sw.Set(FromIndex(1))
	mustPut(t, f, "/b", "1")
	if err := f.Sync(ctx, key("/")); !errors.Is(err, ErrInjected) {
		t.Fatalf("sync after switching: %v", err)
	}
	if value(t, c, "/a") != "1" || value(t, c, "/b") != "" {
		t.Fatal("the failed sync did not lose exactly the unsynced write")
	}
	if cnt.Syncs() != 1 {
		t.Fatalf("%d syncs reached the disk, want 1 (the failed one did not)", cnt.Syncs())
	}
}
