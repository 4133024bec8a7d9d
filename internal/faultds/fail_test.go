package faultds

import (
	"context"
	"errors"
	"testing"
)

func TestFailBeforeApply(t *testing.T) {
	ctx := context.Background()
	inner := newMem()
	f := NewFail(inner, If(KeyPrefix("/bad"), FromIndex(1)))
	mustPut(t, f, "/good", "1")
	if err := f.Put(ctx, key("/bad/x"), []byte("1")); !errors.Is(err, ErrInjected) {
		t.Fatalf("put under /bad: %v", err)
	}
	if err := commit(f, "/good", "2", "/bad/y", "1"); !errors.Is(err, ErrInjected) {
		t.Fatalf("batch with a key under /bad: %v", err)
	}
	if err := f.Delete(ctx, key("/bad")); !errors.Is(err, ErrInjected) {
		t.Fatalf("delete of /bad: %v", err)
	}
	if err := f.Sync(ctx, key("/")); !errors.Is(err, ErrInjected) {
		t.Fatalf("sync of / covers /bad: %v", err)
	}
	if err := f.Sync(ctx, key("/good")); err != nil {
		t.Fatalf("sync of /good: %v", err)
	}
	if got := value(t, inner, "/good"); got != "1" {
		t.Fatalf("/good = %q: the failed batch was applied", got)
	}
	if got := value(t, inner, "/bad/x") + value(t, inner, "/bad/y"); got != "" {
		t.Fatalf("failed writes applied: %q", got)
	}
	if n := f.Injected(); n != 4 {
		t.Fatalf("Injected = %d, want 4", n)
	}
	if got := value(t, f, "/good"); got != "1" { // reads pass through
		t.Fatalf("read through Fail: %q", got)
	}
}

func TestFailAfterApply(t *testing.T) {
	inner := newMem()
	f := NewFail(inner, Sticky(AfterApply(If(Kinds(OpCommit), OnIndex(2)))))
	if err := commit(f, "/a", "1"); err != nil {
		t.Fatal(err)
	}
	err := commit(f, "/b", "1", "/c", "1")
	if !errors.Is(err, ErrInjected) || !Applied(err) {
		t.Fatalf("second commit: %v", err)
	}
	if value(t, inner, "/b")+value(t, inner, "/c") != "11" {
		t.Fatal("the batch that failed after applying is not there whole")
	}
	if err := f.Put(context.Background(), key("/d"), []byte("1")); !errors.Is(err, ErrInjected) || Applied(err) {
		t.Fatalf("after the fault: %v", err)
	}
	if value(t, inner, "/d") != "" {
		t.Fatal("the dead disk applied a put")
	}
}

func TestFailNilInjector(t *testing.T) {
	inner := newMem()
	f := NewFail(inner, nil)
	mustPut(t, f, "/a", "1")
	if err := commit(f, "/b", "2", "/a", ""); err != nil {
		t.Fatal(err)
	}
	if value(t, inner, "/a") != "" || value(t, inner, "/b") != "2" || f.Injected() != 0 {
		t.Fatal("a Fail without injector changed a write")
	}
}

// TestFailBatchIsOneCommit: the layer below a Fail sees a batch as one
// Commit, not as its Puts.
func TestFailBatchIsOneCommit(t *testing.T) {
	c := NewCount(newMem())
	f := NewFail(c, nil)
	if err := commit(f, "/a", "1", "/b", "2", "/a", ""); err != nil {
		t.Fatal(err)
	}
	if c.Of(OpCommit) != 1 || c.Of(OpPut) != 0 || c.Of(OpDelete) != 0 {
		t.Fatalf("commit %d put %d delete %d", c.Of(OpCommit), c.Of(OpPut), c.Of(OpDelete))
	}
	if value(t, c, "/a") != "" || value(t, c, "/b") != "2" {
		t.Fatal("batch applied out of order")
	}
}
