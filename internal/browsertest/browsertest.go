package browsertest

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path is Debian's chromium; the CHROMIUM environment variable overrides it.
func Path() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// Start runs headless Chromium for the test, with the flags this closed
// network needs (no background networking, no QUIC, a fresh profile) and
// any extra options, and returns its context: each chromedp.NewContext of
// it is a tab. It skips the test when there is no Chromium, and stops the
// browser (logging its output if the test failed) at cleanup.
func Start(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	bin := Path()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("headless Chromium not found at %s (apt-get install chromium, or set CHROMIUM): %v", bin, err)
	}
	out := &lockedBuffer{}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(out),
	}, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit
		if t.Failed() {
			t.Logf("chromium output:\n%s", out)
		}
	})
	// The first action starts the browser, tied to the context it runs on:
	// not one with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, out)
	}
	return ctx
}

// lockedBuffer collects Chromium's output, written from chromedp's
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
