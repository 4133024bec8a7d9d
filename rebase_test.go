package concord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
)

// A client edits the view it read; by the time its splice arrives another
// writer changed the text. Named with its base, the splice lands where its
// author saw it; the change events carry consecutive numbers, the view's
// number is the last one, and the commit names the change that holds it.
func TestSpliceAtRebasesOverLaterChanges(t *testing.T) {
	ctx := context.Background()
	a, b := testNode(t, ""), testNode(t, "")
	connect(t, a, b)
	da, db := openDoc(t, a, "notes"), openDoc(t, b, "notes")
	sub := da.Subscribe(256)
	defer sub.Close()
	path := []string{"body"}
	if err := da.Splice(ctx, path, 0, 0, "hello world"); err != nil {
		t.Fatal(err)
	}
	v, base := da.JSONAt()
	if string(v) != `{"body":"hello world"}` {
		t.Fatalf("view %s", v)
	}
	// Another peer's edit before the client's index, and a local one.
	waitFor(t, 10*time.Second, "the text on b", func() bool { s, _ := db.Text(path...); return s == "hello world" })
	if err := db.Splice(ctx, path, 0, 0, ">> "); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b's edit on a", func() bool { s, _ := da.Text(path...); return s == ">> hello world" })
	if err := da.Splice(ctx, path, 11+3, 0, "!"); err != nil {
		t.Fatal(err)
	}
	// The client replaces "world" (5..11 on its view) with "there".
	n, err := da.Commit(ctx, func(tx *Txn) { tx.SpliceAt(base, path, 6, 5, "there") })
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := da.Text(path...); s != ">> hello there!" {
		t.Fatalf("text %q", s)
	}
	var last uint64
	deadline := time.After(10 * time.Second)
	for last < n {
		select {
		case ch := <-sub.C:
			if ch.N <= base { // in the view already, announced after
				continue
			}
			if last == 0 && ch.N != base+1 || last != 0 && ch.N != last+1 {
				t.Fatalf("change %d after %d (base %d)", ch.N, last, base)
			}
			last = ch.N
		case <-deadline:
			t.Fatalf("no change event %d (last %d)", n, last)
		}
	}
	if last != n {
		t.Fatalf("the commit's change %d never came (last %d)", n, last)
	}

	// A pure delete of what someone deleted already does nothing.
	_, base = da.JSONAt()
	if err := da.Splice(ctx, path, 0, 3, ""); err != nil {
		t.Fatal(err)
	}
	if err := da.Update(ctx, func(tx *Txn) { tx.SpliceAt(base, path, 1, 2, "") }); err != nil {
		t.Fatal(err)
	}
	if s, _ := da.Text(path...); s != "hello there!" {
		t.Fatalf("text %q", s)
	}

	// Cursors on an old view, and back to indexes.
	_, base = da.JSONAt()
	if err := da.Splice(ctx, path, 0, 0, "¡"); err != nil {
		t.Fatal(err)
	}
	c, err := da.CursorAt(base, path, 6) // the "t" of there
	if err != nil {
		t.Fatal(err)
	}
	idx, at := da.CursorIndexes(path, []Cursor{c, End, {}})
	if idx[0] != 7 || idx[1] != 13 || at < base+1 {
		t.Fatalf("indexes %v at %d", idx, at)
	}
	bogus, _ := ParseCursor("5@nobody")
	if idx, _ := da.CursorIndexes(path, []Cursor{bogus}); idx[0] != -1 {
		t.Fatalf("unknown cursor at %d", idx[0])
	}
}

func TestSpliceAtStaleBase(t *testing.T) {
	ctx := context.Background()
	a := testNode(t, "")
	d := openDoc(t, a, "notes")
	path := []string{"body"}
	if err := d.Splice(ctx, path, 0, 0, "abc"); err != nil {
		t.Fatal(err)
	}
	// Nobody subscribed: the changes carry no patches to rebase over.
	_, base := d.JSONAt()
	if err := d.Splice(ctx, path, 0, 0, "x"); err != nil {
		t.Fatal(err)
	}
	err := d.Update(ctx, func(tx *Txn) { tx.SpliceAt(base, path, 1, 0, "y") })
	if !errors.Is(err, ErrStaleBase) {
		t.Fatalf("got %v, want ErrStaleBase", err)
	}
	sub := d.Subscribe(16)
	defer sub.Close()
	_, base = d.JSONAt()
	if err := d.Update(ctx, func(tx *Txn) { tx.SpliceAt(base+5, path, 1, 0, "y") }); !errors.Is(err, ErrStaleBase) {
		t.Fatalf("future base: %v", err)
	}
	// A delete of the text has no patches: a splice made before cannot move.
	if err := d.Delete(ctx, path...); err != nil {
		t.Fatal(err)
	}
	if err := d.Update(ctx, func(tx *Txn) { tx.SpliceAt(base, path, 1, 0, "y") }); !errors.Is(err, ErrStaleBase) {
		t.Fatalf("after a set: %v", err)
	}
	if err := d.Update(ctx, func(tx *Txn) { tx.OpAt(base, crdt.Set(path, json.RawMessage(`1`))) }); err == nil {
		t.Fatal("a set took a base")
	}
	if v := d.JSON(); string(v) != `{}` {
		t.Fatalf("view %s", v)
	}
}

// A transaction mixing plain ops and splices with bases keeps each base on
// its own op; a second based splice on one path, a huge delete and a
// transaction that replaced the text are refused.
func TestSpliceAtInTransactions(t *testing.T) {
	ctx := context.Background()
	d := openDoc(t, testNode(t, ""), "notes")
	sub := d.Subscribe(64)
	defer sub.Close()
	a, b := []string{"a"}, []string{"b"}
	if err := d.Update(ctx, func(tx *Txn) { tx.Splice(a, 0, 0, "abc").Splice(b, 0, 0, "xyz") }); err != nil {
		t.Fatal(err)
	}
	_, base := d.JSONAt()
	if err := d.Update(ctx, func(tx *Txn) { tx.Splice(a, 0, 0, "0").Splice(b, 0, 0, "0") }); err != nil {
		t.Fatal(err)
	}
	err := d.Update(ctx, func(tx *Txn) {
		tx.SpliceAt(base, a, 1, 0, "1").Set([]string{"title"}, "t").Splice([]string{"c"}, 0, 0, "-").SpliceAt(base, b, 3, 0, "!")
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := string(d.JSON()); v != `{"a":"0a1bc","b":"0xyz!","c":"-","title":"t"}` {
		t.Fatalf("view %s", v)
	}
	_, base = d.JSONAt()
	for _, c := range []struct {
		name string
		fn   func(*Txn)
		want error
	}{
		{"two based splices on one path", func(tx *Txn) { tx.SpliceAt(base, a, 0, 0, "x").SpliceAt(base, a, 1, 0, "y") }, crdt.ErrInvalidOp},
		{"a based splice and a plain one on one path", func(tx *Txn) { tx.Splice(a, 0, 0, "x").SpliceAt(base, a, 1, 0, "y") }, crdt.ErrInvalidOp},
		{"a based splice below a set", func(tx *Txn) { tx.Set(a, 1).SpliceAt(base, []string{"a", "t"}, 0, 0, "y") }, crdt.ErrInvalidOp},
		{"a delete past any length", func(tx *Txn) { tx.SpliceAt(base, a, 1, 1<<40, "") }, crdt.ErrInvalidOp},
		{"a base on a set", func(tx *Txn) { tx.OpAt(base, crdt.Set(a, json.RawMessage(`1`))) }, crdt.ErrInvalidOp},
	} {
		if err := d.Update(ctx, c.fn); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// One transaction deletes the text and makes a new one: its change has
	// no patches for the path, so a splice on the old text cannot move over it.
	if err := d.Update(ctx, func(tx *Txn) { tx.Delete(a...).Splice(a, 0, 0, "new") }); err != nil {
		t.Fatal(err)
	}
	if err := d.Update(ctx, func(tx *Txn) { tx.SpliceAt(base, a, 0, 0, "x") }); !errors.Is(err, ErrStaleBase) {
		t.Fatalf("over a replaced text: %v", err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ch := <-sub.C:
			if len(ch.Paths) == 1 && fmt.Sprint(ch.Paths[0]) == "[a]" && ch.Local && ch.N > base {
				if len(ch.Patches) != 0 {
					t.Fatalf("the replacing change has patches %v", ch.Patches)
				}
				return
			}
		case <-deadline:
			t.Fatal("no change event for the replaced text")
		}
	}
}
