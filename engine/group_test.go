package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
)

// waiting turns the group commit's wait on (2 ms at most).
func waiting(c *Config) { c.GroupWait = 2 * time.Millisecond }

// groupStart cuts a delta carrying one write, then proposes n more while
// it is in flight, and reports it durable at epoch+took. It returns the
// Ready of that report and the IDs of the n pending proposals.
func groupStart(t *testing.T, d *Doc, log *MemoryLog, n int, took time.Duration) (Ready, []uint64) {
	t.Helper()
	if _, err := d.Propose(epoch, set("first", "1")); err != nil {
		t.Fatal(err)
	}
	first := d.Ready()
	if len(first.Appends) != 1 {
		t.Fatalf("first write: %d appends, want 1", len(first.Appends))
	}
	var ids []uint64
	for i := range n {
		id, err := d.Propose(epoch, set(string(rune('a'+i)), "2"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	log.ApplyAt(d, first, epoch.Add(took))
	return d.Ready(), ids
}

// appended returns the proposals answered once rd's appends are durable.
func appended(t *testing.T, d *Doc, log *MemoryLog, rd Ready, at time.Time) []Commit {
	t.Helper()
	if len(rd.Appends) != 1 {
		t.Fatalf("%d appends, want one delta", len(rd.Appends))
	}
	log.ApplyAt(d, rd, at)
	return d.Ready().Committed
}

// Two writers: one was answered by the delta that became durable, the other
// waits in the next. The next cut waits until the answered writer wrote
// again, and both writes go out as one delta.
func TestGroupCommitWaitsForAnsweredWriters(t *testing.T) {
	d, log, _ := newDoc(t, "g", waiting)
	rd, ids := groupStart(t, d, log, 1, 1500*time.Microsecond)
	if len(rd.Committed) != 1 || len(rd.Appends) != 0 {
		t.Fatalf("after the first delta: committed %+v, %d appends; want its writer answered and the next cut waiting", rd.Committed, len(rd.Appends))
	}
	at, ok := d.Deadline()
	if want := epoch.Add(3 * time.Millisecond); !ok || !at.Equal(want) {
		t.Fatalf("deadline %v %v, want %v (as long as the first delta took)", at, ok, want)
	}
	again, err := d.Propose(epoch.Add(time.Millisecond), set("first", "3"))
	if err != nil {
		t.Fatal(err)
	}
	got := appended(t, d, log, d.Ready(), epoch.Add(2*time.Millisecond))
	if len(got) != 2 || got[0].ID != ids[0] || got[1].ID != again {
		t.Fatalf("the next delta answered %+v, want %d and %d", got, ids[0], again)
	}
	if d.NextSeq() != 3 {
		t.Fatalf("next seq %d, want 3 (two deltas)", d.NextSeq())
	}
}

// A writer answered that does not write again holds the others back only
// until the wait is over (Tick), and no longer than the delta took to
// persist.
func TestGroupCommitWaitEnds(t *testing.T) {
	d, log, _ := newDoc(t, "g", waiting)
	rd, ids := groupStart(t, d, log, 2, time.Millisecond)
	if len(rd.Appends) != 0 {
		t.Fatalf("%d appends, want the cut waiting", len(rd.Appends))
	}
	d.Tick(epoch.Add(1900 * time.Microsecond))
	if d.HasReady() {
		t.Fatalf("cut before the wait was over: %+v", d.Ready())
	}
	d.Tick(epoch.Add(2 * time.Millisecond))
	got := appended(t, d, log, d.Ready(), epoch.Add(3*time.Millisecond))
	if len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] {
		t.Fatalf("answered %+v, want %v", got, ids)
	}
	// The two writers just answered are waited for in turn, again as long
	// as their delta took.
	if at, ok := d.Deadline(); !ok || !at.Equal(epoch.Add(4*time.Millisecond)) {
		t.Fatalf("deadline %v %v, want a wait for the two answered", at, ok)
	}
}

// The wait is bounded by Config.GroupWait, and without GroupWait there is
// none.
func TestGroupCommitWaitBound(t *testing.T) {
	d, log, _ := newDoc(t, "g", func(c *Config) { c.GroupWait = 3 * time.Millisecond })
	groupStart(t, d, log, 1, 10*time.Millisecond)
	if at, ok := d.Deadline(); !ok || !at.Equal(epoch.Add(13*time.Millisecond)) {
		t.Fatalf("deadline %v %v, want GroupWait after the delta was durable", at, ok)
	}
	d, log, _ = newDoc(t, "g", func(c *Config) { c.GroupWait = 0 })
	rd, _ := groupStart(t, d, log, 1, 10*time.Millisecond)
	if len(rd.Appends) != 1 {
		t.Fatalf("no GroupWait: %d appends, want the next delta cut at once", len(rd.Appends))
	}
}

// No wait for a lone writer (one outstanding proposal), nor when persisting
// took less than minGroupWait (a memory store).
func TestGroupCommitNoWait(t *testing.T) {
	d, log, _ := newDoc(t, "g", waiting)
	rd, _ := groupStart(t, d, log, 0, time.Millisecond)
	if _, ok := d.Deadline(); ok || len(rd.Committed) != 1 {
		t.Fatalf("lone writer: a wait was started (committed %+v)", rd.Committed)
	}
	if _, err := d.Propose(epoch.Add(time.Millisecond), set("first", "2")); err != nil {
		t.Fatal(err)
	}
	if rd := d.Ready(); len(rd.Appends) != 1 {
		t.Fatalf("lone writer's next write: %d appends, want it cut at once", len(rd.Appends))
	}
	d, log, _ = newDoc(t, "g", waiting)
	if rd, _ := groupStart(t, d, log, 3, 10*time.Microsecond); len(rd.Appends) != 1 {
		t.Fatalf("quick persist: %d appends, want the pending writes cut at once", len(rd.Appends))
	}
}

// A write refused while the cut waits fails alone and does not count; the
// others still go out together. Closing the engine ends the wait: the
// pending writes are persisted still.
func TestGroupCommitRefusalAndClose(t *testing.T) {
	d, log, _ := newDoc(t, "g", waiting)
	_, ids := groupStart(t, d, log, 1, time.Millisecond)
	if _, err := d.Propose(epoch.Add(time.Millisecond), []crdt.Op{crdt.Set(nil, []byte("1"))}); err == nil {
		t.Fatal("a set of the root was accepted")
	}
	if d.HasReady() && len(d.Ready().Appends) != 0 {
		t.Fatal("the refused write ended the wait")
	}
	d.Close()
	got := appended(t, d, log, d.Ready(), epoch.Add(time.Millisecond))
	if len(got) != 1 || got[0].ID != ids[0] || got[0].Err != nil {
		t.Fatalf("after close: answered %+v, want %d durable", got, ids[0])
	}
	if _, err := d.Propose(epoch, set("x", "1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}
