package faultds

import (
	"context"
	"testing"
)

func TestCount(t *testing.T) {
	ctx := context.Background()
	c := NewCount(newMem())
	mustPut(t, c, "/a", "1")
	mustPut(t, c, "/b", "1")
	if err := c.Delete(ctx, key("/a")); err != nil {
		t.Fatal(err)
	}
	if err := commit(c, "/c", "1", "/d", "1"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.Sync(ctx, key("/")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Get(ctx, key("/b")); err != nil { // reads are not counted
		t.Fatal(err)
	}
	if c.Of(OpPut) != 2 || c.Of(OpDelete) != 1 || c.Of(OpCommit) != 1 || c.Syncs() != 3 || c.Writes() != 7 {
		t.Fatalf("put %d delete %d commit %d sync %d writes %d",
			c.Of(OpPut), c.Of(OpDelete), c.Of(OpCommit), c.Syncs(), c.Writes())
	}
	if c.Of(0) != 0 || c.Of(Kind(99)) != 0 {
		t.Fatal("count of an unknown kind")
	}
	if value(t, c, "/d") != "1" {
		t.Fatal("batch not applied")
	}
}
