package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/concord-p2p/concord"
)

// moveCaret puts the caret of page at index i as a user's arrow key does
// (the key's events make the page publish it).
func (b *browser) moveCaret(page context.Context, i int) {
	b.t.Helper()
	if i == 0 {
		if err := setCaret(page, 1); err != nil {
			b.t.Fatal(err)
		}
		b.key(page, kb.ArrowLeft)
		return
	}
	if err := setCaret(page, i-1); err != nil {
		b.t.Fatal(err)
	}
	b.key(page, kb.ArrowRight)
}

// selectRange selects [from, to) of page's text (code points) as a user's
// shift+arrow keys would, the anchor at from.
func (b *browser) selectRange(page context.Context, from, to int) {
	b.t.Helper()
	b.Eval(page, fmt.Sprintf(`(() => { const ta = document.getElementById("text"), v = ta.value;
		ta.focus(); ta.setSelectionRange(TextSync.toUnits(v, %d), TextSync.toUnits(v, %d), "forward"); return true })()`, from, to-1))
	ctx, cancel := context.WithTimeout(page, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.KeyEvent(kb.ArrowRight, chromedp.KeyModifiers(kb.ModifierShift))); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) key(page context.Context, k string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(page, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.KeyEvent(k)); err != nil {
		b.t.Fatal(err)
	}
}

// remoteCaret is an expression: the position page shows name's caret at,
// or null.
func remoteCaret(name string) string {
	return `(() => { const c = [...document.querySelectorAll("#overlay .rcaret")].find((e) => e.textContent === ` + jsString(name) + `);
		return c ? Number(c.dataset.pos) : null })()`
}

// listed is an expression: whether page lists name among who is here.
func listed(name string) string {
	return `[...document.querySelectorAll("#who li")].some((e) => e.textContent === ` + jsString(name) + `)`
}

// Presence between pages on two peers, the second a process of its own:
// each page shows the other's name in its list and the other's caret
// where it is; a selection shows highlighted; a remote caret stays on its
// character when text is typed before it; with a third page (a second
// tab on the first peer) there are two remote cursors (the screenshot of
// docs/editor.png, taken when CONCORD_SCREENSHOT=1); and when the second
// peer is killed, its page's cursor and name go from the others within
// the presence expiry; when the third closes her tab, she goes at once.
func TestPresenceInChromium(t *testing.T) {
	const ttl = 2 * time.Second
	br := startBrowser(t)
	a, srvA, _ := editorPeer(t, func(c *concord.Config) { c.PresenceTTL = ttl })
	b := startChild(t, "--bootstrap", a.Addrs()[0], "--presence-ttl", ttl.String())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dA, _ := a.Doc(ctx, "editor")
	if err := dA.Splice(ctx, []string{"text"}, 0, 0, "hello world"); err != nil {
		t.Fatal(err)
	}
	pageA, pageB := br.openEditor(srvA.URL+"/?name=Ada&color=%23008080"), br.openEditor(b.url+"?name=Bob&color=%23e6194b")
	logPages(t, br, map[string]context.Context{"A": pageA, "B": pageB})
	br.waitText(pageB, "hello world", 20*time.Second, "page B")

	// Each lists the other, and shows the other's caret where it is.
	br.WaitEval(pageA, listed("Bob"), 20*time.Second, "page A to list Bob")
	br.WaitEval(pageB, listed("Ada"), 20*time.Second, "page B to list Ada")
	br.moveCaret(pageB, 6)
	br.WaitEval(pageA, remoteCaret("Bob")+` === 6`, 20*time.Second, "page A to show Bob's caret at 6")
	br.moveCaret(pageA, 11)
	br.WaitEval(pageB, remoteCaret("Ada")+` === 11`, 20*time.Second, "page B to show Ada's caret at 11")
	// Bob selects "hello": Ada sees it highlighted, his caret at its end.
	br.selectRange(pageB, 0, 5)
	br.WaitEval(pageA, `[...document.querySelectorAll("#overlay .rsel")].map((e) => e.textContent).join("") === "hello" && `+remoteCaret("Bob")+` === 5`,
		20*time.Second, "page A to show Bob's selection")
	// Ada types before Bob's caret: it stays on its character, with no
	// new presence from Bob.
	br.typeText(pageA, 0, "¡")
	br.WaitEval(pageA, remoteCaret("Bob")+` === 6`, 10*time.Second, "Bob's caret to move with its character on page A")
	br.WaitEval(pageB, remoteCaret("Ada")+` === 1`, 10*time.Second, "page B to show Ada's caret after what she typed")

	// A third page, Grace's, a second tab on peer A: page A shows two
	// remote cursors.
	pageC := br.openEditor(srvA.URL + "/?name=Grace&color=%234363d8")
	br.waitText(pageC, "¡hello world", 20*time.Second, "page C")
	br.moveCaret(pageC, 12)
	br.WaitEval(pageA, remoteCaret("Grace")+` === 12`, 20*time.Second, "page A to show Grace's caret")
	br.WaitEval(pageB, remoteCaret("Grace")+` === 12 && `+listed("Grace"), 20*time.Second, "page B to show Grace's caret")
	grace := 12
	if os.Getenv("CONCORD_SCREENSHOT") == "1" {
		grace = screenshot(t, br, pageA, pageB, pageC)
	}

	// Kill peer B: no goodbye. Bob goes from pages A and C within the
	// expiry (and a little for the peer's timer and the event).
	b.kill()
	killed := time.Now()
	for _, p := range []context.Context{pageA, pageC} {
		br.WaitEval(p, remoteCaret("Bob")+` === null && !`+listed("Bob"), ttl+5*time.Second, "Bob's cursor to go")
	}
	t.Logf("Bob's cursor went %v after the kill (presence TTL %v)", time.Since(killed).Round(10*time.Millisecond), ttl)
	if got := string(br.Eval(pageA, remoteCaret("Grace"))); got != fmt.Sprint(grace) {
		t.Fatalf("page A shows Grace's caret at %s after Bob went, want %d", got, grace)
	}
	// Grace closes her tab: it says goodbye (DELETE), and she goes from
	// page A at once, not after her entry's 30 s lease.
	closed := time.Now()
	if err := chromedp.Cancel(pageC); err != nil {
		t.Fatal(err)
	}
	br.WaitEval(pageA, remoteCaret("Grace")+` === null && !`+listed("Grace"), 10*time.Second, "Grace's cursor to go")
	t.Logf("Grace's cursor went %v after she closed her tab", time.Since(closed).Round(10*time.Millisecond))
}

// screenshot saves docs/editor.png: page A after the three have written a
// few lines, Bob with a word selected and Grace with her caret in another
// line. It returns where Grace's caret is.
func screenshot(t *testing.T, br *browser, pageA, pageB, pageC context.Context) int {
	t.Helper()
	end := func(p context.Context) int { return len([]rune(br.text(p))) }
	br.typeText(pageA, 12, "!\n\nThree people edit this text at once, each on their own page: ")
	br.typeText(pageC, end(pageC), "Grace types here, ")
	br.WaitEval(pageB, `editor.client.settled() && `+pageText+`.includes("Grace types here, ")`, 20*time.Second, "page B")
	br.typeText(pageB, end(pageB), "Bob there.\nTheir carets and selections show in their colours, with their names.")
	br.WaitEval(pageA, pageText+`.endsWith("with their names.") && editor.client.settled()`, 20*time.Second, "page A")
	text := br.text(pageA)
	at := func(s string) int { return utf8.RuneCountInString(text[:strings.Index(text, s)]) }
	sel, grace := at("selections"), at("colours")+len("colours")
	br.selectRange(pageB, sel, sel+len("selections"))
	br.moveCaret(pageC, grace)
	br.moveCaret(pageA, utf8.RuneCountInString(text))
	br.WaitEval(pageA, `[...document.querySelectorAll("#overlay .rsel")].map((e) => e.textContent).join("") === "selections" && `+
		remoteCaret("Grace")+` === `+fmt.Sprint(grace), 20*time.Second, "page A to show both")
	if _, err := chromedp.Run(pageA, chromedp.EmulateViewport(820, 400)); err != nil {
		t.Fatal(err)
	}
	buf, err := chromedp.Run(pageA, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "editor.png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
	return grace
}
