package main

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/concord-p2p/concord"
)

// todoPeer is an in-memory peer serving the todo page.
func todoPeer(t *testing.T) (*concord.Node, *httptest.Server) {
	t.Helper()
	n, err := concord.Open(context.Background(), concord.Config{
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, FastGossip: true, SummaryInterval: 200 * time.Millisecond,
	})
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

func TestTodoPageInChromium(t *testing.T) {
	br := startBrowser(t)
	a, srvA := todoPeer(t)
	b, srvB := todoPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	pageA, pageB := br.open(srvA.URL+"/"), br.open(srvB.URL+"/")
	live := `document.getElementById("state")?.textContent === "live"`
	br.waitEval(pageA, live, 20*time.Second, "page A's event stream")
	br.waitEval(pageB, live, 20*time.Second, "page B's event stream")

	// Add an item in page A, as a user would.
	br.eval(pageA, `(() => { document.getElementById("new").value = "buy milk";
		document.getElementById("add-form").requestSubmit(); return true })()`)
	has := `[...document.querySelectorAll("#items li .text")].some(e => e.textContent === "buy milk")`
	br.waitEval(pageA, has, 10*time.Second, "the item in page A")
	// It shows in page B without a reload.
	br.waitEval(pageB, has, 20*time.Second, "the item added in page A to appear in page B")
	dB, _ := b.Doc(ctx, "todo")
	if got := string(dB.JSON()); !strings.Contains(got, `"text":"buy milk"`) || !strings.Contains(got, `"done":false`) {
		t.Fatalf("peer B holds %s", got)
	}
	// Tick it off in page B: page A follows.
	br.eval(pageB, `(() => { document.querySelector("#items li input[type=checkbox]").click(); return true })()`)
	dA, _ := a.Doc(ctx, "todo")
	t.Cleanup(func() {
		if t.Failed() {
			page := `document.getElementById("state").textContent + " " + document.getElementById("items").outerHTML + document.getElementById("error").textContent`
			t.Logf("A: %s %v\nB: %s %v\npage A: %s\npage B: %s", dA.JSON(), dA.Status().Version, dB.JSON(), dB.Status().Version,
				br.eval(pageA, page), br.eval(pageB, page))
		}
	})
	br.waitEval(pageA, `document.querySelector("#items li")?.classList.contains("done") === true`, 20*time.Second, "the done flag set in page B to appear in page A")
	// Neither page was reloaded: the first navigation is still the only one.
	for _, p := range []context.Context{pageA, pageB} {
		if got := string(br.eval(p, `performance.getEntriesByType("navigation").length === 1 && performance.getEntriesByType("navigation")[0].type === "navigate"`)); got != "true" {
			t.Fatalf("page was reloaded")
		}
	}
}
