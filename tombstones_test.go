package concord

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/concord-p2p/concord/engine"
)

// tombstonesCollected returns how many sequence elements d's engine has
// garbage-collected.
func tombstonesCollected(d *Doc) uint64 {
	d.r.mu.Lock()
	defer d.r.mu.Unlock()
	return d.r.eng.TombstonesCollected()
}

// TestTombstonesCollectedAndRepaired: over real libp2p, a compaction
// collects the tombstones every peer holds; the other peer, which still
// holds them, then types right after them — its insert names a collected
// element — and the collector holds that insert back, asks for a whole
// state, gets the element back and shows the insert.
func TestTombstonesCollectedAndRepaired(t *testing.T) {
	a, b := testNode(t, ""), testNode(t, "")
	connect(t, a, b)
	da, db := openDoc(t, a, "gc"), openDoc(t, b, "gc")
	ctx := context.Background()
	note := []string{"note"}
	if err := da.Splice(ctx, note, 0, 0, "hello world"); err != nil {
		t.Fatal(err)
	}
	if err := da.Splice(ctx, note, 5, 6, ""); err != nil { // " world": tombstones at the end
		t.Fatal(err)
	}
	waitConverged(t, 10*time.Second, da, db)
	// A collects once it knows that B holds the deletes.
	waitFor(t, 10*time.Second, "a compaction collecting the tombstones", func() bool {
		if err := da.Compact(ctx); err != nil && !isUnproven(err) {
			t.Fatal(err)
		}
		return tombstonesCollected(da) > 0
	})
	if got, _ := da.Text(note...); got != "hello" {
		t.Fatalf("collecting changed the text: %q", got)
	}
	// B still holds them: "!" typed at the end names the last one.
	if err := db.Splice(ctx, note, 5, 0, "!"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the collector to repair the insert", func() bool {
		ta, _ := da.Text(note...)
		return ta == "hello!"
	})
	waitConverged(t, 10*time.Second, da, db)
	if tombstonesCollected(db) != 0 {
		t.Fatal("b collected without compacting")
	}
}

func isUnproven(err error) bool { return errors.Is(err, engine.ErrUnproven) }
