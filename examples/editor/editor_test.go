package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/concord-p2p/concord"
	cnet "github.com/concord-p2p/concord/net"
)

// editorPeer is an in-memory peer serving the editor page; mods adjust its
// config. The page's HTTP traffic passes a gate the test can close.
func editorPeer(t testing.TB, mods ...func(*concord.Config)) (*concord.Node, *httptest.Server, *gate) {
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
	if _, err := n.Doc(context.Background(), "editor"); err != nil {
		t.Fatal(err)
	}
	g := &gate{next: NewHandler(n, "editor")}
	srv := httptest.NewUnstartedServer(g)
	ctx, cancel := context.WithCancel(context.Background())
	srv.Config.BaseContext = func(_ net.Listener) context.Context { return ctx }
	srv.Start()
	g.srv = srv
	t.Cleanup(func() {
		cancel() // ends the pages' event streams
		srv.CloseClientConnections()
		srv.Close()
		_ = n.Close()
	})
	return n, srv, g
}

// gate makes a peer's HTTP server unreachable to its pages, as a peer
// that went away would be: while closed, every connection is dropped
// without an answer.
type gate struct {
	next http.Handler
	srv  *httptest.Server
	down atomic.Bool
	// noStreams refuses event streams (dropped as when down).
	noStreams atomic.Bool
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.down.Load() || g.noStreams.Load() && strings.HasSuffix(r.URL.Path, "/events") {
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = c.Close()
		}
		return
	}
	g.next.ServeHTTP(w, r)
}

// close drops the connections the pages have open and every new one
// until open.
func (g *gate) close() {
	g.down.Store(true)
	g.srv.CloseClientConnections()
}

func (g *gate) open() { g.down.Store(false) }

// Expressions over an editor page.
const (
	pageText   = `document.getElementById("text").value`
	pageState  = `document.getElementById("state").textContent`
	pageFailed = `(window.editor ? editor.client.mismatches : -1)`
	connected  = pageState + ` === "connected" && !document.getElementById("text").disabled`
)

// openEditor opens the editor page at url and waits until it is
// connected.
func (b *browser) openEditor(url string) context.Context {
	b.t.Helper()
	page := b.Open(url)
	b.WaitEval(page, connected, 20*time.Second, "the page at "+url+" to connect")
	return page
}

// text returns what the page's textarea shows.
func (b *browser) text(page context.Context) string {
	b.t.Helper()
	var s string
	b.EvalInto(page, pageText, &s)
	return s
}

// waitText waits until the page shows want.
func (b *browser) waitText(page context.Context, want string, d time.Duration, what string) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := b.text(page)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %v waiting for %s: shows %q, want %q", d, what, got, want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// textOf returns the text of the document on a peer.
func textOf(d *concord.Doc) string {
	s, _ := d.Text("text")
	return s
}

// setCaret puts the caret of page at code point index i of the text.
func setCaret(page context.Context, i int) error {
	_, err := chromedp.Run(page, chromedp.Evaluate[json.RawMessage](fmt.Sprintf(`(() => {
		const ta = document.getElementById("text");
		const u = TextSync.toUnits(ta.value, %d);
		ta.focus(); ta.setSelectionRange(u, u); return true })()`, i), chromedp.EvalAwaitPromise))
	return err
}

// typist types keystrokes into a page, each a character of its own, at
// the caret and sometimes at a random place, and checks before each one
// that the caret is still right after the character it typed last.
type typist struct {
	page  context.Context
	rng   *rand.Rand
	next  func(k int) rune
	typed []rune
}

// caretAfter is true when the page's caret is collapsed right after the
// code point last.
const caretAfter = `((last) => { const ta = document.getElementById("text");
	const before = Array.from(ta.value.slice(0, ta.selectionEnd));
	return ta.selectionStart === ta.selectionEnd && document.activeElement === ta && before[before.length - 1] === last })`

func (ty *typist) run(b *browser, keys int) error {
	if err := setCaret(ty.page, 0); err != nil {
		return err
	}
	for k := 0; k < keys; k++ {
		if k > 0 && ty.rng.IntN(10) == 0 {
			var n int
			v, err := b.TryEval(ty.page, `Array.from(`+pageText+`).length`)
			if err == nil {
				err = json.Unmarshal(v, &n)
			}
			if err == nil {
				err = setCaret(ty.page, ty.rng.IntN(n+1))
			}
			if err != nil {
				return err
			}
		} else if k > 0 {
			v, err := b.TryEval(ty.page, caretAfter+`(`+jsString(string(ty.typed[len(ty.typed)-1]))+`)`)
			if err != nil {
				return err
			}
			if string(v) != "true" {
				info, _ := b.TryEval(ty.page, `JSON.stringify({value: `+pageText+`, start: document.getElementById("text").selectionStart, end: document.getElementById("text").selectionEnd})`)
				return fmt.Errorf("keystroke %d: the caret is not right after %q, which the page typed last: %s", k, ty.typed[len(ty.typed)-1], info)
			}
		}
		r := ty.next(k)
		ctx, cancel := context.WithTimeout(ty.page, 10*time.Second)
		_, err := chromedp.Run(ctx, chromedp.KeyEvent(string(r)))
		cancel()
		if err != nil {
			return fmt.Errorf("keystroke %d: %w", k, err)
		}
		ty.typed = append(ty.typed, r)
	}
	return nil
}

// runes returns k-th characters of a page's own: from base, every fifth
// outside the BMP (from astral), so each keystroke can be told apart.
func runes(base, astral rune) func(int) rune {
	return func(k int) rune {
		if k%5 == 4 {
			return astral + rune(k)
		}
		return base + rune(k)
	}
}

// countOnce checks that each rune of typed occurs exactly once in text.
func countOnce(t *testing.T, text string, typed ...[]rune) {
	t.Helper()
	seen := map[rune]int{}
	for _, r := range text {
		seen[r]++
	}
	total := 0
	for _, rs := range typed {
		total += len(rs)
		for _, r := range rs {
			if seen[r] != 1 {
				t.Errorf("keystroke %q appears %d times in %q", r, seen[r], text)
			}
		}
	}
	if n := len([]rune(text)); n != total {
		t.Errorf("the text has %d code points, %d keystrokes were typed: %q", n, total, text)
	}
}

// logPages logs the pages' state when the test failed.
func logPages(t *testing.T, br *browser, pages map[string]context.Context) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for name, p := range pages {
			v, err := br.TryEval(p, `JSON.stringify({state: `+pageState+`, error: document.getElementById("error").textContent,
				text: `+pageText+`, n: editor.client.n, inflight: editor.client.inflight, pending: editor.client.pending, mismatches: editor.client.mismatches})`)
			t.Logf("page %s: %s %v", name, v, err)
		}
	})
}

// Two pages on two peers type into the same text at once, keystroke by
// keystroke (key events, as a user's), mostly at their caret and
// sometimes at a random place: both end with the same text, the peers'
// text, holding each keystroke exactly once; before every keystroke typed
// at the caret, the caret is still right after the one before, whatever
// the other page typed meanwhile; and neither page's own splice ever came
// back other than it predicted.
func TestTypingTogetherInChromium(t *testing.T) {
	br := startBrowser(t)
	a, srvA, _ := editorPeer(t)
	b, srvB, _ := editorPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	dA, _ := a.Doc(ctx, "editor")
	dB, _ := b.Doc(ctx, "editor")
	pageA, pageB := br.openEditor(srvA.URL+"/"), br.openEditor(srvB.URL+"/")
	logPages(t, br, map[string]context.Context{"A": pageA, "B": pageB})

	seed := uint64(testSeed(t, 2718281828))
	const keys = 120
	tys := []*typist{
		{page: pageA, rng: rand.New(rand.NewPCG(seed, 1)), next: runes(0x4e00, 0x20000)}, // CJK, CJK Ext. B
		{page: pageB, rng: rand.New(rand.NewPCG(seed, 2)), next: runes(0xac00, 0x1f300)}, // Hangul, pictographs
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(tys))
	for i, ty := range tys {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = ty.run(br, keys) }()
	}
	wg.Wait()
	t.Logf("typed in %v", time.Since(t0))
	for i, err := range errs {
		if err != nil {
			t.Errorf("page %c: %v", 'A'+i, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Both pages and both peers end with one text.
	deadline := time.Now().Add(20 * time.Second)
	var ta, tb string
	for {
		ta, tb = br.text(pageA), br.text(pageB)
		if ta == tb && ta == textOf(dA) && ta == textOf(dB) && strings.Count(ta, "") > 2*keys {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no agreement:\npage A %q\npage B %q\npeer A %q\npeer B %q", ta, tb, textOf(dA), textOf(dB))
		}
		time.Sleep(25 * time.Millisecond)
	}
	countOnce(t, ta, tys[0].typed, tys[1].typed)
	for name, p := range map[string]context.Context{"A": pageA, "B": pageB} {
		if got := string(br.Eval(p, pageFailed)); got != "0" {
			t.Errorf("page %s predicted %s of its own changes wrong", name, got)
		}
	}
	// Each page's caret is still after what it typed last.
	for i, ty := range tys {
		if got := string(br.Eval(ty.page, caretAfter+`(`+jsString(string(ty.typed[len(ty.typed)-1]))+`)`)); got != "true" {
			t.Errorf("page %c's caret moved from after its last keystroke", 'A'+i)
		}
	}
}

// typeText types s into page at code point index at, key by key.
func (b *browser) typeText(page context.Context, at int, s string) {
	b.t.Helper()
	if err := setCaret(page, at); err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(page, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.KeyEvent(s)); err != nil {
		b.t.Fatalf("type %q: %v", s, err)
	}
}

// Two peers cut apart: each page edits (types, and backspaces over text
// both had) while its peer cannot reach the other; when they reconnect,
// both pages and both peers show both edits.
func TestEditingWhilePeersApartInChromium(t *testing.T) {
	br := startBrowser(t)
	ga, gb := cnet.NewGater(), cnet.NewGater()
	a, srvA, _ := editorPeer(t, func(c *concord.Config) { c.Gater = ga })
	b, srvB, _ := editorPeer(t, func(c *concord.Config) { c.Gater = gb })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	dA, _ := a.Doc(ctx, "editor")
	dB, _ := b.Doc(ctx, "editor")
	if err := dA.Splice(ctx, []string{"text"}, 0, 0, "one two three"); err != nil {
		t.Fatal(err)
	}
	pageA, pageB := br.openEditor(srvA.URL+"/"), br.openEditor(srvB.URL+"/")
	logPages(t, br, map[string]context.Context{"A": pageA, "B": pageB})
	br.waitText(pageB, "one two three", 20*time.Second, "page B")

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
	// A appends, B backspaces "two" away and types in front.
	br.typeText(pageA, 13, " four😀")
	br.typeText(pageB, 7, "\b\b\b")
	br.typeText(pageB, 0, "zero ")
	br.waitText(pageA, "one two three four😀", 10*time.Second, "page A, apart")
	br.waitText(pageB, "zero one  three", 10*time.Second, "page B, apart")
	waitFor(t, 10*time.Second, "each peer to hold its page's edits", func() bool {
		return textOf(dA) == "one two three four😀" && textOf(dB) == "zero one  three"
	})

	ga.Unblock(b.ID())
	gb.Unblock(a.ID())
	if err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	want := "zero one  three four😀"
	br.waitText(pageA, want, 20*time.Second, "page A, healed")
	br.waitText(pageB, want, 20*time.Second, "page B, healed")
	if textOf(dA) != want || textOf(dB) != want {
		t.Fatalf("peers hold %q and %q", textOf(dA), textOf(dB))
	}
}

// A page whose peer becomes unreachable shows it, keeps what is typed
// meanwhile, and sends it when the peer is back, moved over what others
// wrote in the meantime; the other page sees it.
func TestEditingOfflineInChromium(t *testing.T) {
	br := startBrowser(t)
	a, srvA, gA := editorPeer(t)
	b, srvB, _ := editorPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	dA, _ := a.Doc(ctx, "editor")
	if err := dA.Splice(ctx, []string{"text"}, 0, 0, "alpha beta"); err != nil {
		t.Fatal(err)
	}
	pageA, pageB := br.openEditor(srvA.URL+"/"), br.openEditor(srvB.URL+"/")
	logPages(t, br, map[string]context.Context{"A": pageA, "B": pageB})
	br.waitText(pageB, "alpha beta", 20*time.Second, "page B")

	gA.close()
	br.WaitEval(pageA, pageState+` === "reconnecting…"`, 10*time.Second, "page A to show it lost its peer")
	br.typeText(pageA, 5, " gamma")
	br.typeText(pageB, 0, ">> ")
	br.waitText(pageA, "alpha gamma beta", 5*time.Second, "page A, offline")
	br.waitText(pageB, ">> alpha beta", 10*time.Second, "page B")
	waitFor(t, 20*time.Second, "peer A to hold page B's edit", func() bool { return textOf(dA) == ">> alpha beta" })
	if got := br.text(pageA); got != "alpha gamma beta" {
		t.Fatalf("page A, offline, shows %q", got)
	}

	gA.open()
	br.WaitEval(pageA, connected, 20*time.Second, "page A to reconnect")
	want := ">> alpha gamma beta"
	br.waitText(pageA, want, 20*time.Second, "page A, back")
	br.waitText(pageB, want, 20*time.Second, "page B")
	if got := textOf(dA); got != want {
		t.Fatalf("peer A holds %q", got)
	}
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

// The peer keeps the changes a splice's base is rebased over only while
// someone follows its events: with the page's stream cut, a change made
// meanwhile is not kept, and the page's next splice (on the view before
// it) is refused as stale (409). The page reads the text again, moves its
// keystroke over what changed, and sends it again; nothing is lost.
func TestStaleBaseInChromium(t *testing.T) {
	br := startBrowser(t)
	a, srv, g := editorPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, _ := a.Doc(ctx, "editor")
	if err := d.Splice(ctx, []string{"text"}, 0, 0, "old text"); err != nil {
		t.Fatal(err)
	}
	page := br.openEditor(srv.URL + "/")
	logPages(t, br, map[string]context.Context{"page": page})
	br.waitText(page, "old text", 10*time.Second, "the page")
	g.noStreams.Store(true)
	g.srv.CloseClientConnections()
	br.WaitEval(page, pageState+` === "reconnecting…"`, 10*time.Second, "the page to lose its stream")
	if err := d.Splice(ctx, []string{"text"}, 0, 0, "X"); err != nil { // no one listens: not kept
		t.Fatal(err)
	}
	br.typeText(page, 8, "!")
	waitFor(t, 10*time.Second, "the peer's text", func() bool { return textOf(d) == "Xold text!" })
	g.noStreams.Store(false)
	br.WaitEval(page, connected, 20*time.Second, "the page to reconnect")
	br.waitText(page, "Xold text!", 10*time.Second, "the page")
	if got := string(br.Eval(page, `document.getElementById("error").textContent`)); got != `""` {
		t.Errorf("the page shows the error %s", got)
	}
}
