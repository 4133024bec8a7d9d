// Package browsertest starts headless Chromium for end-to-end tests of web
// pages served on 127.0.0.1, driven with chromedp.
//
// # Ownership and imports
//
// The package owns launching and stopping the browser for a test (the
// flags a closed network needs, a fresh profile, the browser's output when
// the test fails); the pages and what to check stay in each test. It
// imports only chromedp and the standard library, and is imported only by
// tests.
//
// # Usage
//
//	ctx := browsertest.Start(t) // skips the test when there is no Chromium
//	tab, cancel := chromedp.NewContext(ctx)
//	defer cancel()
//	err := chromedp.Run(tab, chromedp.Navigate(srv.URL), chromedp.WaitVisible("#app"))
package browsertest
