package browsertest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser is a headless Chromium driven with chromedp for a test; each
// page is a tab context.
type Browser struct {
	t   testing.TB
	ctx context.Context
}

// NewBrowser runs headless Chromium (see Start), or skips the test when
// there is none.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	return &Browser{t: t, ctx: Start(t)}
}

// Open creates a page (tab) at url and returns it.
func (b *Browser) Open(url string) context.Context {
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

// Eval evaluates a JavaScript expression in a page (awaiting a promise)
// and returns its value as JSON.
func (b *Browser) Eval(page context.Context, expr string) json.RawMessage {
	b.t.Helper()
	v, err := b.TryEval(page, expr)
	if err != nil {
		b.t.Fatalf("eval %q: %v", expr, err)
	}
	return v
}

// TryEval is Eval returning its error, for goroutines (which must not
// call Fatal).
func (b *Browser) TryEval(page context.Context, expr string) (json.RawMessage, error) {
	ctx, stop := context.WithTimeout(page, 20*time.Second)
	defer stop()
	return chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
}

// EvalInto evaluates expr and decodes its JSON value into v.
func (b *Browser) EvalInto(page context.Context, expr string, v any) {
	b.t.Helper()
	if err := json.Unmarshal(b.Eval(page, expr), v); err != nil {
		b.t.Fatalf("eval %q: %v", expr, err)
	}
}

// WaitEval polls expr until it evaluates to true, failing the test after d.
func (b *Browser) WaitEval(page context.Context, expr string, d time.Duration, what string) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for string(b.Eval(page, expr)) != "true" {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// JSString is s as a JavaScript string literal.
func JSString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
