package concord

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// With the group commit wait on (Config.GroupCommitWait), on Pebble
// (synced), concurrent writers all get their answers — no write waits on
// a cut that never comes — every write is durable and reaches the other
// peer, and the writes share deltas.
func TestGroupCommitWaitEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := testNode(t, dir, func(c *Config) { c.GroupCommitWait = 2 * time.Millisecond })
	b := testNode(t, "")
	connect(t, a, b)
	da, db := openDoc(t, a, "g"), openDoc(t, b, "g")
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := da.Set(ctx, []string{fmt.Sprintf("w%d-%d", w, i)}, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitConverged(t, 30*time.Second, da, db)
	if n := len(da.Status().Version); n == 0 {
		t.Fatal("no version after the writes")
	}
	seq := da.Status().Version[a.self]
	t.Logf("%d writes in %d deltas", writers*each, seq)
	if seq >= writers*each {
		t.Fatalf("%d deltas for %d concurrent writes: none shared", seq, writers*each)
	}
	// Durable: a restart holds every write.
	_ = a.Close()
	a2 := testNode(t, dir)
	d2 := openDoc(t, a2, "g")
	var got map[string]any
	if err := json.Unmarshal(d2.JSON(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*each {
		t.Fatalf("%d keys after the restart, want %d", len(got), writers*each)
	}
}
