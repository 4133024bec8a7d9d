package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/concord-p2p/concord"
	cnet "github.com/concord-p2p/concord/net"
)

// orderCases are run in the page against order.js (TodoOrder). apply
// plays a batch on a view as a peer would (a splice past the list's end
// refuses the whole batch); shown gives the texts a view shows.
const orderCases = `(() => {
  const apply = (v, ops) => {
    const order = (v.order || []).slice(), items = {...v.items};
    for (const op of ops) {
      if (op.op === "splice") {
        if (op.index > order.length || op.index + op.delete > order.length) return "409";
        order.splice(op.index, op.delete, ...(op.values || []));
      } else if (op.op === "delete") {
        delete items[op.path[1]];
      } else if (op.op === "set") {
        items[op.path[1]] = {...items[op.path[1]], [op.path[2]]: op.value};
      }
    }
    return {items, order};
  };
  const shown = (v) => typeof v === "string" ? v : TodoOrder.model(v).rows.map((r) => r.item.text).join(" ");
  const M = TodoOrder.model;
  const items = {a: {text: "A"}, b: {text: "B"}, c: {text: "C"}};
  // b twice, an id whose item is gone, a number, and c missing.
  const v = {items, order: ["b", "gone", "a", "b", 7]};
  const old = {items: {b: {text: "B"}, a: {text: "A"}}};
  return {
    shown: shown(v),
    dups: M(v).dups,
    repaired: apply(v, TodoOrder.repairOps(M(v))).order,
    noRepair: TodoOrder.repairOps(M({items, order: ["a", "b", "c"]})),
    cUp: shown(apply(v, TodoOrder.moveBy(M(v), "c", -1))),
    bDown: shown(apply(v, TodoOrder.moveBy(M(v), "b", 1))),
    bDownOrder: apply(v, TodoOrder.moveBy(M(v), "b", 1)).order,
    aDown: shown(apply(v, TodoOrder.moveBy(M(v), "a", 1))),
    bToC: shown(apply(v, TodoOrder.moveTo(M(v), "b", "c"))),
    cToB: shown(apply(v, TodoOrder.moveTo(M(v), "c", "b"))),
    pastEnds: [TodoOrder.moveBy(M(v), "b", -1), TodoOrder.moveBy(M(v), "c", 1), TodoOrder.moveTo(M(v), "a", "a")],
    deleted: apply(v, TodoOrder.deleteOps(M(v), "b")),
    added: apply(v, TodoOrder.addOps(M(v), "d", "D")),
    old: shown(old),
    oldAdded: apply(old, TodoOrder.addOps(M(old), "d", "D")).order,
    oldDown: apply(old, TodoOrder.moveBy(M(old), "a", 1)).order,
    stale: apply({items, order: v.order.slice(1)}, TodoOrder.moveBy(M(v), "a", -1)),
    staleRepair: apply({items, order: ["b", "a", "b"]}, TodoOrder.repairOps(M(v))),
  };
})()`

// The page's model of the document, against views no single peer would
// write: an id twice (shown once, where it comes first; the later one
// repaired away), an id whose item is gone (skipped), items the list lacks
// (shown at the end, adopted by the next add or move), and batches built
// on a list longer than the peer's (refused whole).
func TestOrderModelInChromium(t *testing.T) {
	br := startBrowser(t)
	_, srv := todoPeer(t)
	page := br.Open(srv.URL + "/")
	br.WaitEval(page, `typeof TodoOrder === "object"`, 20*time.Second, "order.js")
	var got map[string]json.RawMessage
	if err := json.Unmarshal(br.Eval(page, orderCases), &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"shown":       `"B A C"`,
		"dups":        `[3]`,
		"repaired":    `["b","gone","a",7]`,
		"noRepair":    `null`,
		"cUp":         `"B C A"`,
		"bDown":       `"A B C"`,
		"bDownOrder":  `["gone","a","b",7,"c"]`,
		"aDown":       `"B C A"`,
		"bToC":        `"A C B"`,
		"cToB":        `"C B A"`,
		"pastEnds":    `[null,null,null]`,
		"deleted":     `{"items":{"a":{"text":"A"},"c":{"text":"C"}},"order":["gone","a",7]}`,
		"added":       `{"items":{"a":{"text":"A"},"b":{"text":"B"},"c":{"text":"C"},"d":{"text":"D","done":false}},"order":["b","gone","a","b",7,"c","d"]}`,
		"old":         `"A B"`,
		"oldAdded":    `["a","b","d"]`,
		"oldDown":     `["b","a"]`,
		"stale":       `"409"`,
		"staleRepair": `"409"`,
	} {
		if string(got[k]) != want {
			t.Errorf("%s = %s, want %s", k, got[k], want)
		}
	}
}

// Two peers, cut apart, move the same item at once: each deletes it and
// inserts it again, so the healed list holds it twice (and an item the
// list lacked, as an older version of the page left it, which each
// peer's first move appended). Both pages show each item once, where it
// comes first, and repair the list: it ends with each id once, in the
// order the pages show, on both peers.
func TestConcurrentMovesInChromium(t *testing.T) {
	br := startBrowser(t)
	ga, gb := cnet.NewGater(), cnet.NewGater()
	a, srvA := todoPeer(t, func(c *concord.Config) { c.Gater = ga })
	b, srvB := todoPeer(t, func(c *concord.Config) { c.Gater = gb })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	dA, _ := a.Doc(ctx, "todo")
	dB, _ := b.Doc(ctx, "todo")
	// Items x, y, z in the list, and o, which the list lacks.
	err := dA.Update(ctx, func(tx *concord.Txn) {
		for _, it := range [][2]string{{"x", "one"}, {"y", "two"}, {"z", "three"}, {"o", "old"}} {
			tx.Set([]string{"items", it[0], "text"}, it[1]).Set([]string{"items", it[0], "done"}, false)
		}
		tx.SpliceList([]string{"order"}, 0, 0, "x", "y", "z")
	})
	if err != nil {
		t.Fatal(err)
	}
	pageA, pageB := br.Open(srvA.URL+"/"), br.Open(srvB.URL+"/")
	t.Cleanup(func() {
		if t.Failed() {
			page := `document.getElementById("state").textContent + " " + document.getElementById("items").outerHTML + document.getElementById("error").textContent`
			t.Logf("A: %s %v\nB: %s %v\npage A: %s\npage B: %s", dA.JSON(), dA.Status().Version, dB.JSON(), dB.Status().Version,
				br.Eval(pageA, page), br.Eval(pageB, page))
		}
	})
	start := []string{"one", "two", "three", "old"}
	br.waitTexts(pageA, start, 20*time.Second, "page A to show")
	br.waitTexts(pageB, start, 20*time.Second, "page B to show")

	if err := cnet.Partition(a.Host(), ga, b.ID()); err != nil {
		t.Fatal(err)
	}
	if err := cnet.Partition(b.Host(), gb, a.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the partition", func() bool {
		return a.Host().Network().Connectedness(b.ID()) != network.Connected &&
			b.Host().Network().Connectedness(a.ID()) != network.Connected
	})
	// A moves "three" up once, B twice.
	br.click(pageA, "three", "up")
	br.waitTexts(pageA, []string{"one", "three", "two", "old"}, 20*time.Second, "page A to show")
	br.click(pageB, "three", "up")
	br.waitTexts(pageB, []string{"one", "three", "two", "old"}, 20*time.Second, "page B to show")
	br.click(pageB, "three", "up")
	br.waitTexts(pageB, []string{"three", "one", "two", "old"}, 20*time.Second, "page B to show")
	if la, lb := orderOf(t, dA), orderOf(t, dB); !slices.Equal(la, []string{"x", "z", "y", "o"}) || !slices.Equal(lb, []string{"z", "x", "y", "o"}) {
		t.Fatalf("apart, the lists are %v and %v", la, lb)
	}

	ga.Unblock(b.ID())
	gb.Unblock(a.ID())
	if err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	// Merged, the list holds z twice (B's copy first) and o twice; the
	// pages delete the later ones.
	want := []string{"z", "x", "y", "o"}
	waitFor(t, 20*time.Second, fmt.Sprintf("both lists to be %v", want), func() bool {
		return slices.Equal(orderOf(t, dA), want) && slices.Equal(orderOf(t, dB), want)
	})
	shown := []string{"three", "one", "two", "old"}
	br.waitTexts(pageA, shown, 20*time.Second, "page A to show")
	br.waitTexts(pageB, shown, 20*time.Second, "page B to show")
	for name, p := range map[string]context.Context{"A": pageA, "B": pageB} {
		if got := br.shownIDs(p); !slices.Equal(got, want) {
			t.Fatalf("page %s shows %v, the list is %v", name, got, want)
		}
		if got := string(br.Eval(p, `document.getElementById("error").textContent`)); got != `""` {
			t.Fatalf("page %s shows the error %s", name, got)
		}
	}
}
