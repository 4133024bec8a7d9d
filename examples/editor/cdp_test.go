package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/concord-p2p/concord/internal/browsertest"
)

// browser is a headless Chromium driven with chromedp; each page is a tab
// context.
type browser struct {
	t   testing.TB
	ctx context.Context
}

// startBrowser runs headless Chromium, or skips the test when there is none.
func startBrowser(t testing.TB) *browser {
	t.Helper()
	return &browser{t: t, ctx: browsertest.Start(t)}
}

// open creates a page (tab) at url and returns it.
func (b *browser) open(url string) context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // opens the tab, for as long as ctx
		b.t.Fatalf("open a tab: %v", err)
	}
	nav, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	if err := chromedp.Do(nav, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
	return ctx
}

// eval evaluates a JavaScript expression in a page (awaiting a promise)
// and returns its value as JSON.
func (b *browser) eval(page context.Context, expr string) json.RawMessage {
	b.t.Helper()
	v, err := b.tryEval(page, expr)
	if err != nil {
		b.t.Fatalf("eval %q: %v", expr, err)
	}
	return v
}

// tryEval is eval returning its error, for goroutines (which must not
// call Fatal).
func (b *browser) tryEval(page context.Context, expr string) (json.RawMessage, error) {
	ctx, stop := context.WithTimeout(page, 20*time.Second)
	defer stop()
	return chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
}

// evalInto evaluates expr and decodes its JSON value into v.
func (b *browser) evalInto(page context.Context, expr string, v any) {
	b.t.Helper()
	if err := json.Unmarshal(b.eval(page, expr), v); err != nil {
		b.t.Fatalf("eval %q: %v", expr, err)
	}
}

// waitEval polls expr until it evaluates to true.
func (b *browser) waitEval(page context.Context, expr string, d time.Duration, what string) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for string(b.eval(page, expr)) != "true" {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
