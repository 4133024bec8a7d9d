package store

import (
	"context"
	"testing"
	"time"
)

// AppendNotify and AckNotify report their outcome through the callback
// once durable, and what they wrote is visible by then.
func TestNotifyVariants(t *testing.T) {
	forBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := b.reopen(t)
		defer mustClose(t, s)
		got := make(chan error, 1)
		if err := s.AppendNotify(ctx, "d", "me", ents("me", 1, 2, 3), func(err error) { got <- err }); err != nil {
			t.Fatal(err)
		}
		wait := func(what string) {
			t.Helper()
			select {
			case err := <-got:
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no callback", what)
			}
		}
		wait("append")
		if !s.Has("d", "me", 3) || s.OutboxDepth("d") != 3 {
			t.Fatalf("after the append's callback: has=%v outbox=%d", s.Has("d", "me", 3), s.OutboxDepth("d"))
		}
		if err := s.AckNotify(ctx, "d", 2, func(err error) { got <- err }); err != nil {
			t.Fatal(err)
		}
		wait("ack")
		if ob := s.Outbox("d"); len(ob) != 1 || ob[0] != 3 {
			t.Fatalf("outbox after the ack's callback: %v", ob)
		}
		// Nothing to write: the callback runs at once.
		if err := s.AckNotify(ctx, "d", 1, func(err error) { got <- err }); err != nil {
			t.Fatal(err)
		}
		wait("no-op ack")
	})
}
