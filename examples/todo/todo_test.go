package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/concord-p2p/concord"
)

// todoPeer is an in-memory peer serving the todo page; mods adjust its
// config.
func todoPeer(t *testing.T, mods ...func(*concord.Config)) (*concord.Node, *httptest.Server) {
	t.Helper()
	cfg := concord.Config{
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, FastGossip: true, SummaryInterval: 200 * time.Millisecond,
	}
	for _, m := range mods {
		m(&cfg)
	}
	n, err := concord.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Doc(context.Background(), "todo"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(NewHandler(n, "todo"))
	ctx, cancel := context.WithCancel(context.Background())
	srv.Config.BaseContext = func(_ net.Listener) context.Context { return ctx }
	srv.Start()
	t.Cleanup(func() {
		cancel() // ends the pages' event streams
		srv.CloseClientConnections()
		srv.Close()
		_ = n.Close()
	})
	return n, srv
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Expressions over a page: the texts and the ids of its items, in the
// order shown.
const (
	shownTexts = `[...document.querySelectorAll("#items li .text")].map(e => e.textContent)`
	shownIDs   = `[...document.querySelectorAll("#items li")].map(li => li.dataset.id)`
)

// addItem adds an item in page, as a user would.
func (b *browser) addItem(page context.Context, text string) {
	b.t.Helper()
	b.Eval(page, `(() => { document.getElementById("new").value = `+jsString(text)+`;
		document.getElementById("add-form").requestSubmit(); return true })()`)
}

// click clicks the button of class cls (up, down, delete) in the row of
// the item shown with text.
func (b *browser) click(page context.Context, text, cls string) {
	b.t.Helper()
	expr := `(() => { const li = [...document.querySelectorAll("#items li")].find(li => li.querySelector(".text").textContent === ` + jsString(text) + `);
		const bt = li && li.querySelector("button.` + cls + `"); if (!bt || bt.disabled) return false; bt.click(); return true })()`
	if got := string(b.Eval(page, expr)); got != "true" {
		b.t.Fatalf("no enabled %s button in the row of %q", cls, text)
	}
}

// drag drags the row of the item shown with text from onto the row of
// the one shown with text to, with the events a user's drag and drop
// fires.
func (b *browser) drag(page context.Context, from, to string) {
	b.t.Helper()
	expr := `(() => { const row = (t) => [...document.querySelectorAll("#items li")].find(li => li.querySelector(".text").textContent === t);
		const from = row(` + jsString(from) + `), to = row(` + jsString(to) + `);
		if (!from || !to) return false;
		const dt = new DataTransfer();
		for (const [el, type] of [[from, "dragstart"], [to, "dragover"], [to, "drop"], [from, "dragend"]]) {
			el.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
		}
		return true })()`
	if got := string(b.Eval(page, expr)); got != "true" {
		b.t.Fatalf("no rows %q and %q to drag between", from, to)
	}
}

// waitTexts waits until page shows the items with texts want, in order.
func (b *browser) waitTexts(page context.Context, want []string, d time.Duration, what string) {
	b.t.Helper()
	w, _ := json.Marshal(want)
	b.WaitEval(page, `JSON.stringify(`+shownTexts+`) === `+jsString(string(w)), d, what+" "+string(w))
}

// shownIDs returns the ids of the items page shows, in order.
func (b *browser) shownIDs(page context.Context) []string {
	b.t.Helper()
	var ids []string
	if err := json.Unmarshal(b.Eval(page, shownIDs), &ids); err != nil {
		b.t.Fatal(err)
	}
	return ids
}

// orderOf returns the document's list of item ids, read through the Go
// API.
func orderOf(t *testing.T, d *concord.Doc) []string {
	t.Helper()
	vs, ok := d.List("order")
	if !ok {
		t.Fatalf("no list at order in %s", d.JSON())
	}
	ids := make([]string, len(vs))
	for i, v := range vs {
		if err := json.Unmarshal(v, &ids[i]); err != nil {
			t.Fatalf("order[%d] = %s: %v", i, v, err)
		}
	}
	return ids
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Two pages on two peers: items added in either show in both, in the
// order of the document's list; a done flag set in one shows in the
// other; moves with the up and down buttons, a delete, and a move by drag
// and drop show in both,
// and the list read through the Go API on either peer is what the pages
// show. Neither page reloads.
func TestTodoPageInChromium(t *testing.T) {
	br := startBrowser(t)
	a, srvA := todoPeer(t)
	b, srvB := todoPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	dA, _ := a.Doc(ctx, "todo")
	dB, _ := b.Doc(ctx, "todo")
	pageA, pageB := br.Open(srvA.URL+"/"), br.Open(srvB.URL+"/")
	t.Cleanup(func() {
		if t.Failed() {
			page := `document.getElementById("state").textContent + " " + document.getElementById("items").outerHTML + document.getElementById("error").textContent`
			t.Logf("A: %s %v\nB: %s %v\npage A: %s\npage B: %s", dA.JSON(), dA.Status().Version, dB.JSON(), dB.Status().Version,
				br.Eval(pageA, page), br.Eval(pageB, page))
		}
	})
	live := `document.getElementById("state")?.textContent === "live"`
	br.WaitEval(pageA, live, 20*time.Second, "page A's event stream")
	br.WaitEval(pageB, live, 20*time.Second, "page B's event stream")

	// Add an item in page A, as a user would.
	br.addItem(pageA, "buy milk")
	br.waitTexts(pageA, []string{"buy milk"}, 10*time.Second, "page A to show")
	// It shows in page B without a reload.
	br.waitTexts(pageB, []string{"buy milk"}, 20*time.Second, "the item added in page A to show in page B:")
	if got := string(dB.JSON()); !strings.Contains(got, `"text":"buy milk"`) || !strings.Contains(got, `"done":false`) {
		t.Fatalf("peer B holds %s", got)
	}
	// Tick it off in page B: page A follows.
	br.Eval(pageB, `(() => { document.querySelector("#items li input[type=checkbox]").click(); return true })()`)
	br.WaitEval(pageA, `document.querySelector("#items li")?.classList.contains("done") === true`, 20*time.Second, "the done flag set in page B to appear in page A")

	// Two more, one from each page; each goes at the end of the list.
	br.addItem(pageB, "bread")
	br.waitTexts(pageA, []string{"buy milk", "bread"}, 20*time.Second, "page A to show")
	br.addItem(pageA, "eggs")
	abc := []string{"buy milk", "bread", "eggs"}
	br.waitTexts(pageA, abc, 20*time.Second, "page A to show")
	br.waitTexts(pageB, abc, 20*time.Second, "page B to show")

	// Reorder with the buttons, in one page and then in the other.
	br.click(pageB, "eggs", "up")
	acb := []string{"buy milk", "eggs", "bread"}
	br.waitTexts(pageB, acb, 20*time.Second, "page B to show")
	br.waitTexts(pageA, acb, 20*time.Second, "page A to show")
	br.click(pageA, "buy milk", "down")
	cab := []string{"eggs", "buy milk", "bread"}
	br.waitTexts(pageA, cab, 20*time.Second, "page A to show")
	br.waitTexts(pageB, cab, 20*time.Second, "page B to show")
	// The first row cannot go up, the last cannot go down.
	if got := string(br.Eval(pageA, `document.querySelector("#items li:first-child button.up").disabled && document.querySelector("#items li:last-child button.down").disabled`)); got != "true" {
		t.Fatalf("the first row's up or the last row's down button is enabled")
	}
	// Both pages show the document's list, on both peers: each id once.
	ids := br.shownIDs(pageA)
	if got := br.shownIDs(pageB); !slices.Equal(got, ids) {
		t.Fatalf("page A shows %v, page B %v", ids, got)
	}
	for name, d := range map[string]*concord.Doc{"A": dA, "B": dB} {
		if got := orderOf(t, d); !slices.Equal(got, ids) {
			t.Fatalf("peer %s's list is %v, the pages show %v", name, got, ids)
		}
	}

	// Delete "bread" in page B: it goes from both pages, and from the list
	// and the items of both peers.
	bread := ids[2]
	br.click(pageB, "bread", "delete")
	br.waitTexts(pageB, cab[:2], 20*time.Second, "page B to show")
	br.waitTexts(pageA, cab[:2], 20*time.Second, "page A to show")
	for name, d := range map[string]*concord.Doc{"A": dA, "B": dB} {
		if got := orderOf(t, d); !slices.Equal(got, ids[:2]) {
			t.Fatalf("peer %s's list is %v after the delete, want %v", name, got, ids[:2])
		}
		if _, ok := d.Get("items", bread); ok {
			t.Fatalf("peer %s still holds the deleted item: %s", name, d.JSON())
		}
	}
	// Drag "buy milk" onto "eggs" in page A: it moves above it, in both
	// pages.
	br.drag(pageA, "buy milk", "eggs")
	ac := []string{"buy milk", "eggs"}
	br.waitTexts(pageA, ac, 20*time.Second, "page A to show")
	br.waitTexts(pageB, ac, 20*time.Second, "page B to show")
	if got, want := orderOf(t, dB), []string{ids[1], ids[0]}; !slices.Equal(got, want) {
		t.Fatalf("peer B's list is %v after the drag, want %v", got, want)
	}
	// Neither page was reloaded: the first navigation is still the only one.
	for _, p := range []context.Context{pageA, pageB} {
		if got := string(br.Eval(p, `performance.getEntriesByType("navigation").length === 1 && performance.getEntriesByType("navigation")[0].type === "navigate"`)); got != "true" {
			t.Fatalf("page was reloaded")
		}
	}
}
