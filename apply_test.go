package concord

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
)

// TestAcceptedWritesReplicate drives the write path with hostile input
// (invalid UTF-8, lone surrogates, odd numbers, long keys, deep values):
// every transaction Apply accepts replicates to a peer and reloads after a
// restart of the writer; every one it refuses is refused with a crdt
// validation error and changes nothing. An outside test lost an
// acknowledged write this way: a set element "e\xff" was accepted
// locally, then refused by every peer and by the store's own decoder.
func TestAcceptedWritesReplicate(t *testing.T) {
	dirA := t.TempDir()
	a := testNode(t, dirA)
	b := testNode(t, "")
	connect(t, a, b)
	da, db := openDoc(t, a, "hostile"), openDoc(t, b, "hostile")
	rng := rand.New(rand.NewPCG(7, 7))
	strs := []string{"", "a", "é", "日本", "😀", "\x00", "\xff", "e\xff", "\xed\xa0\x80", "\xc3", "/", "..", `"`, `\`,
		strings.Repeat("k", 5000), "\U0010ffff"}
	vals := []string{`1`, `-0`, `1e300`, `"x"`, "\"e\xff\"", `"\ud800"`, `"\udc00x"`, `"\ud83d\ude00"`, `"\\ud800"`,
		`null`, `true`, `{"a":[1,{"b":"\u0000"}]}`, strings.Repeat("[", 500) + strings.Repeat("]", 500), `"` + strings.Repeat("v", 100000) + `"`}
	accepted, refused := 0, 0
	ctx := context.Background()
	for i := 0; i < 500; i++ {
		var ops []crdt.Op
		for range 1 + rng.IntN(3) {
			path := []string{strs[rng.IntN(len(strs))]}
			if rng.IntN(2) == 0 {
				path = append(path, strs[rng.IntN(len(strs))])
			}
			v := json.RawMessage(vals[rng.IntN(len(vals))])
			switch rng.IntN(5) {
			case 0:
				ops = append(ops, crdt.Set(path, v))
			case 1:
				ops = append(ops, crdt.Add(path, v))
			case 2:
				ops = append(ops, crdt.Remove(path, v))
			case 3:
				ops = append(ops, crdt.Inc(path, rng.Int64()-rng.Int64()))
			default:
				ops = append(ops, crdt.Delete(path))
			}
		}
		before := string(da.JSON())
		err := da.Apply(ctx, ops...)
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, crdt.ErrInvalidPath), errors.Is(err, crdt.ErrInvalidValue), errors.Is(err, crdt.ErrTypeConflict):
			refused++
			if after := string(da.JSON()); after != before {
				t.Fatalf("refused transaction %d (%v) changed the document", i, err)
			}
		default:
			t.Fatalf("transaction %d: unexpected error %v", i, err)
		}
	}
	t.Logf("%d transactions accepted, %d refused", accepted, refused)
	if accepted < 20 || refused < 20 {
		t.Fatalf("accepted %d, refused %d: the generator does not exercise both", accepted, refused)
	}
	if !json.Valid(da.JSON()) {
		t.Fatal("writer's view is not valid JSON")
	}
	waitConverged(t, 20*time.Second, da, db)
	if !json.Valid(db.JSON()) {
		t.Fatal("peer's view is not valid JSON")
	}
	if err := da.WaitAcked(ctx); err != nil {
		t.Fatal(err)
	}
	want := string(da.JSON())
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2 := testNode(t, dirA)
	if got := string(openDoc(t, a2, "hostile").JSON()); got != want {
		t.Fatalf("after restart the writer shows a different document (%d bytes, want %d)", len(got), len(want))
	}
}

func TestDocNameValidated(t *testing.T) {
	n := testNode(t, "")
	for _, name := range []string{"", "a\xff", strings.Repeat("n", 1025)} {
		if _, err := n.Doc(context.Background(), name); !errors.Is(err, ErrInvalidDocName) {
			t.Fatalf("Doc(%q): err = %v, want ErrInvalidDocName", name, err)
		}
	}
	if _, err := n.Doc(context.Background(), "é/ü.."); err != nil {
		t.Fatal(err)
	}
}
