package faultds

import (
	"context"
	"errors"
	"testing"
	"time"
)

// within fails the test unless ch yields within the deadline.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestGateHoldsSelected(t *testing.T) {
	ctx := context.Background()
	inner := newMem()
	g := NewGate(inner, Kinds(OpSync, OpCommit))
	arrived := g.Hold()
	if again := g.Hold(); again != arrived {
		t.Fatal("Hold on a held gate returned a new channel")
	}
	mustPut(t, g, "/a", "1") // not selected: passes while held
	done := make(chan error, 1)
	go func() { done <- commit(g, "/b", "1") }()
	within(t, arrived, "the commit to wait at the gate")
	if n := g.Waiting(); n != 1 {
		t.Fatalf("Waiting = %d", n)
	}
	if value(t, inner, "/b") != "" {
		t.Fatal("held commit applied")
	}
	select {
	case err := <-done:
		t.Fatalf("held commit returned: %v", err)
	default:
	}
	g.Release()
	if err := within(t, done, "the released commit"); err != nil {
		t.Fatal(err)
	}
	if value(t, inner, "/a") != "1" || value(t, inner, "/b") != "1" {
		t.Fatal("writes missing after release")
	}
	if g.Waiting() != 0 {
		t.Fatal("still waiting after release")
	}
	if err := g.Sync(ctx, key("/")); err != nil { // open gate: passes
		t.Fatal(err)
	}
	g.Release() // on an open gate: nothing
}

func TestGateContext(t *testing.T) {
	inner := newMem()
	g := NewGate(inner, nil)
	defer g.Release()
	arrived := g.Hold()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Put(ctx, key("/a"), []byte("1")) }()
	within(t, arrived, "the put to wait at the gate")
	cancel()
	if err := within(t, done, "the cancelled put"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled put: %v", err)
	}
	if value(t, inner, "/a") != "" {
		t.Fatal("a put that gave up waiting was applied")
	}
}

// TestGateHoldAgain: after a Release, a new Hold holds again and has a new
// arrival channel.
func TestGateHoldAgain(t *testing.T) {
	g := NewGate(newMem(), Kinds(OpSync))
	first := g.Hold()
	g.Release()
	second := g.Hold()
	if first == second {
		t.Fatal("same arrival channel after Release")
	}
	done := make(chan error, 1)
	go func() { done <- g.Sync(context.Background(), key("/")) }()
	within(t, second, "the sync to wait")
	g.Release()
	if err := within(t, done, "the released sync"); err != nil {
		t.Fatal(err)
	}
}
