package main

import (
	"testing"

	"github.com/concord-p2p/concord/internal/browsertest"
)

// browser is the test's headless Chromium (internal/browsertest), with the
// test at hand for this package's page helpers.
type browser struct {
	*browsertest.Browser
	t testing.TB
}

// startBrowser runs headless Chromium, or skips the test when there is none.
func startBrowser(t testing.TB) *browser {
	t.Helper()
	return &browser{Browser: browsertest.NewBrowser(t), t: t}
}
