package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/concord-p2p/concord/internal/browsertest"
)

// newBrowser starts headless Chromium, with evil.example resolving to
// 127.0.0.1, and returns its context (each chromedp.NewContext of it is a
// tab). It skips the test when there is no Chromium.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, chromedp.Flag("host-resolver-rules", "MAP evil.example 127.0.0.1"))
}

// tab opens url in a new tab and returns the tab and the document's HTTP
// status.
func tab(t *testing.T, browser context.Context, url string) (context.Context, int64) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // opens the tab, for as long as ctx
		t.Fatalf("open a tab: %v", err)
	}
	nav, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	resp, err := chromedp.Run(nav, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return ctx, resp.Status
}

// attempt is what a page's script saw when it tried the peer's API.
type attempt struct {
	Write      string `json:"write"`       // status of a text/plain POST of ops, or "error: ..."
	JSONWrite  string `json:"json_write"`  // status of an application/json POST (preflighted when cross-origin)
	Read       string `json:"read"`        // status of a GET of the document
	ReadBody   string `json:"read_body"`   // its body, when readable
	Opaque     string `json:"opaque"`      // response type of a no-cors GET
	OpaqueBody string `json:"opaque_body"` // its body as the page sees it
	Events     string `json:"events"`      // "open" or "error" for an EventSource
}

// tryAPI runs, in the page of ctx, the requests a hostile or friendly page
// would make to api (a URL prefix; "" for the page's own origin), each
// write setting from.<key>.
func tryAPI(t *testing.T, ctx context.Context, api, key string) attempt {
	t.Helper()
	ops := fmt.Sprintf(`[{"op":"set","path":["from",%q],"value":true}]`, key)
	jsonOps := fmt.Sprintf(`[{"op":"set","path":["from",%q],"value":true}]`, key+"-json")
	script := fmt.Sprintf(`(async () => {
		const api = %q, out = {};
		const st = async (p, f) => { try { const r = await p; out[f] = String(r.status); return r } catch (e) { out[f] = "error: " + e.message } };
		await st(fetch(api + "/v1/docs/notes/ops", {method: "POST", headers: {"Content-Type": "text/plain"}, body: %q}), "write");
		await st(fetch(api + "/v1/docs/notes/ops", {method: "POST", headers: {"Content-Type": "application/json"}, body: %q}), "json_write");
		const r = await st(fetch(api + "/v1/docs/notes"), "read");
		if (r) out.read_body = await r.text();
		try { const o = await fetch(api + "/v1/docs/notes", {mode: "no-cors"}); out.opaque = o.type; out.opaque_body = await o.text() }
		catch (e) { out.opaque = "error: " + e.message }
		out.events = await new Promise(res => {
			const es = new EventSource(api + "/v1/docs/notes/events");
			es.onopen = () => { es.close(); res("open") };
			es.onerror = () => { es.close(); res("error") };
		});
		return out;
	})()`, api, ops, jsonOps)
	run, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	got, err := chromedp.Run(run, chromedp.Evaluate[attempt](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("script: %v", err)
	}
	return got
}

// writers are the keys under "from" in the peer's document, read from Go.
func writers(p *proc) []string {
	v := p.get("/v1/docs/notes")["value"].(map[string]any)
	from, _ := v["from"].(map[string]any)
	var keys []string
	for k := range from {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestBrowserHTTPAccess: in headless Chromium, a page of another origin can
// neither write (its "simple" text/plain POST, sent without a preflight,
// changes nothing) nor read the peer's documents; a page of an
// --http-origin and a page of the peer's own origin can do both; and a
// page whose name was rebound to 127.0.0.1 is refused.
func TestBrowserHTTPAccess(t *testing.T) {
	browser := newBrowser(t)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>page</title><p>a page</p>")
	})
	foreign, allowed := httptest.NewServer(page), httptest.NewServer(page)
	defer foreign.Close()
	defer allowed.Close()
	p := startPeerProc(t, "--data", filepath.Join(t.TempDir(), "data"), "--listen", "/ip4/127.0.0.1/tcp/0",
		"--http", "127.0.0.1:0", "--doc", "notes", "--http-origin", allowed.URL)
	p.ready(p.lines)
	port := p.url[strings.LastIndex(p.url, ":")+1:]

	// Another site's page (another port: another origin).
	ctx, _ := tab(t, browser, foreign.URL+"/")
	got := tryAPI(t, ctx, p.url, "foreign")
	if w := writers(p); len(w) != 0 {
		t.Fatalf("a foreign page wrote %v (it saw %+v)", w, got)
	}
	if !strings.HasPrefix(got.Write, "error") || !strings.HasPrefix(got.JSONWrite, "error") ||
		!strings.HasPrefix(got.Read, "error") || got.ReadBody != "" ||
		got.Opaque != "opaque" || got.OpaqueBody != "" || got.Events != "error" {
		t.Fatalf("a foreign page saw %+v", got)
	}

	// A page of an allowed --http-origin.
	ctx, _ = tab(t, browser, allowed.URL+"/")
	got = tryAPI(t, ctx, p.url, "allowed")
	if got.Write != "200" || got.JSONWrite != "200" || got.Read != "200" || !strings.Contains(got.ReadBody, `"allowed":true`) || got.Events != "open" {
		t.Fatalf("a page of an allowed origin saw %+v", got)
	}

	// Pages of the peer's own origins: same-origin, and under another name
	// of the same loopback address (cross-origin, answered with CORS).
	ctx, code := tab(t, browser, p.url+"/v1/status")
	if code != 200 {
		t.Fatalf("own origin page: %d", code)
	}
	got = tryAPI(t, ctx, "", "own")
	if got.Write != "200" || got.JSONWrite != "200" || got.Read != "200" || !strings.Contains(got.ReadBody, `"own":true`) || got.Events != "open" {
		t.Fatalf("a page of the peer's origin saw %+v", got)
	}
	ctx, _ = tab(t, browser, "http://localhost:"+port+"/v1/status")
	got = tryAPI(t, ctx, p.url, "localhost")
	if got.Write != "200" || got.Read != "200" || got.Events != "open" {
		t.Fatalf("a page at http://localhost:%s saw %+v", port, got)
	}
	want := []string{"allowed", "allowed-json", "localhost", "localhost-json", "own", "own-json"}
	if w := writers(p); !slices.Equal(w, want) {
		t.Fatalf("writers %v, want %v", w, want)
	}

	// DNS rebinding: evil.example resolves to 127.0.0.1, so its page really
	// reaches the peer, same-origin; the Host evil.example is refused.
	ctx, code = tab(t, browser, "http://evil.example:"+port+"/v1/status")
	if code != 403 {
		t.Fatalf("rebound page loaded with %d", code)
	}
	got = tryAPI(t, ctx, "", "rebound")
	if got.Write != "403" || got.JSONWrite != "403" || got.Read != "403" || strings.Contains(got.ReadBody, "allowed") || got.Events != "error" {
		t.Fatalf("a rebound page saw %+v", got)
	}
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(got.ReadBody), &e); err != nil || !strings.Contains(e.Error, "evil.example") {
		t.Fatalf("rebound read answered %q", got.ReadBody)
	}
	if w := writers(p); !slices.Equal(w, want) {
		t.Fatalf("after the rebound page: writers %v, want %v", w, want)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
	}
}
