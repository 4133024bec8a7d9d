package concord

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
)

// applyPatches applies a change's text patches at path to text.
func applyPatches(text []rune, path string, ps []crdt.SeqPatch) []rune {
	for _, p := range ps {
		if fmt.Sprint(p.Path) != path {
			continue
		}
		text = append(text[:p.Index:p.Index], append([]rune(p.Text), text[p.Index+p.Delete:]...)...)
	}
	return text
}

// Two peers over real libp2p type into one text at the same time, at
// random places, each keystroke its own transaction: both end with the same
// text, every keystroke in it exactly once, and on each peer the patches of
// the change events, applied in order from the empty text, give that text.
// The keystrokes travel as compact splices, alone or in aggregates.
func TestTwoPeersTypeIntoOneText(t *testing.T) {
	ctx := context.Background()
	a, b := testNode(t, ""), testNode(t, "")
	connect(t, a, b)
	da, db := openDoc(t, a, "notes"), openDoc(t, b, "notes")
	subs := []*Subscription{da.Subscribe(4096), db.Subscribe(4096)}
	path := []string{"body"}
	const perPeer = 150
	var wg sync.WaitGroup
	for i, d := range []*Doc{da, db} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for k := range perPeer {
				n := 0
				if s, ok := d.Text(path...); ok {
					n = len([]rune(s))
				}
				// A code point per peer and keystroke, so each appears once.
				ch := string(rune(0x4e00 + 0x1000*i + k))
				err := d.Update(ctx, func(tx *Txn) { tx.Splice(path, rng.IntN(n+1), 0, ch) })
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitConverged(t, 20*time.Second, da, db)
	text, _ := da.Text(path...)
	if got := len([]rune(text)); got != 2*perPeer {
		t.Fatalf("text has %d code points, want %d: %q", got, 2*perPeer, text)
	}
	// The keystrokes are written in the compact splice form wherever it
	// is the shorter; a burst travels coalesced into aggregates (in the
	// classic form), a lone keystroke as it is: one more each, once the
	// other holds it, is in its log compact, flagged (compactFrom checks
	// every flag).
	for _, x := range [][2]*Doc{{da, db}, {db, da}} {
		if n := compactWhereShorter(t, x[0], x[0].n.self); n == 0 {
			t.Fatalf("%s wrote none of its %d keystrokes compact", x[0].n.self, perPeer)
		}
		before := compactFrom(t, x[1], x[0].n.self)
		if err := x[0].Splice(ctx, path, 0, 0, "."); err != nil {
			t.Fatal(err)
		}
		waitConverged(t, 20*time.Second, da, db)
		if n := compactFrom(t, x[1], x[0].n.self); n != before+1 {
			t.Fatalf("%s's log holds %d compact deltas of %s, want %d", x[1].n.self, n, x[0].n.self, before+1)
		}
	}
	text, _ = da.Text(path...)
	seen := map[rune]int{}
	for _, r := range text {
		seen[r]++
	}
	for i := range 2 {
		for k := range perPeer {
			if r := rune(0x4e00 + 0x1000*i + k); seen[r] != 1 {
				t.Fatalf("keystroke %q appears %d times", r, seen[r])
			}
		}
	}
	for i, s := range subs {
		var view []rune
		waitFor(t, 20*time.Second, "the change events", func() bool {
			for {
				select {
				case ch := <-s.C:
					view = applyPatches(view, fmt.Sprint(path), ch.Patches)
				default:
					return string(view) == text
				}
			}
		})
		if s.Missed() != 0 {
			t.Fatalf("peer %d missed %d changes", i, s.Missed())
		}
	}
}

// The library API of sequences on one node: lists of JSON values, cursors
// that follow their element, errors for bad splices.
func TestSequenceAPI(t *testing.T) {
	ctx := context.Background()
	d := openDoc(t, testNode(t, ""), "todo")
	if err := d.Update(ctx, func(tx *Txn) {
		tx.SpliceList([]string{"order"}, 0, 0, "a", "b", map[string]any{"id": "c"})
		tx.Splice([]string{"title"}, 0, 0, "groceries")
	}); err != nil {
		t.Fatal(err)
	}
	c, err := d.Cursor([]string{"title"}, 3) // on the first "c"
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCursor(c.String())
	if err != nil || back != c {
		t.Fatalf("cursor %q parses to %v, %v", c, back, err)
	}
	if err := d.Splice(ctx, []string{"title"}, 0, 0, "my "); err != nil {
		t.Fatal(err)
	}
	if i, err := d.CursorIndex([]string{"title"}, c); err != nil || i != 6 {
		t.Fatalf("cursor index %d, %v; want 6", i, err)
	}
	if err := d.Update(ctx, func(tx *Txn) { tx.SpliceList([]string{"order"}, 0, 1).SpliceList([]string{"order"}, 2, 0, "a") }); err != nil {
		t.Fatal(err)
	}
	if got := string(d.JSON()); got != `{"order":["b",{"id":"c"},"a"],"title":"my groceries"}` {
		t.Fatalf("view %s", got)
	}
	if err := d.Splice(ctx, []string{"order"}, 0, 0, "x"); !errors.Is(err, crdt.ErrTypeConflict) {
		t.Fatalf("text splice on a list: %v", err)
	}
	if err := d.Splice(ctx, []string{"title"}, 13, 0, "x"); !errors.Is(err, crdt.ErrSeqIndex) {
		t.Fatalf("splice past the end: %v", err)
	}
}
