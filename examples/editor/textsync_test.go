package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// textsyncCases is a function (seed, count) → {cases, failures} of
// randomized checks of textsync.js.
//
//go:embed testdata/textsync_cases.js
var textsyncCases string

// scriptPage serves a blank page with textsync.js, for the tests of the
// pure logic (no peer needed).
func scriptPage(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><meta charset="utf-8"><script src="textsync.js"></script>`)
	})
	mux.HandleFunc("GET /textsync.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(textsyncJS)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// The page's pure logic, on random cases (testdata/textsync_cases.js):
// code point offsets; the diff of a textarea edit (exact for an insert or
// a delete at the caret); the transform of concurrent splices (both
// orders converge, what neither deleted stays in order, each inserted
// text whole and once, after what preceded its index, the other's first
// at the same index), on single splices and on sequences; caret mapping;
// composition of consecutive edits; and pages against a model peer that
// applies the spec's base rule, with events, answers and re-reads in
// random order, dropped events, refused and failed requests: every page
// ends with the peer's text, every keystroke in it once, the carets after
// what their pages typed, and no own change predicted wrong.
func TestTextSyncInChromium(t *testing.T) {
	br := startBrowser(t)
	page := br.Open(scriptPage(t).URL + "/")
	br.WaitEval(page, `typeof TextSync === "object"`, 20*time.Second, "textsync.js")
	seed := testSeed(t, 1618033988)
	const count = 2000
	var got struct {
		Cases    int
		Failures []string
	}
	if err := json.Unmarshal(br.Eval(page, fmt.Sprintf("(%s)(%d, %d)", textsyncCases, seed, count)), &got); err != nil {
		t.Fatal(err)
	}
	for _, f := range got.Failures {
		t.Errorf("seed %d: %s", seed, f)
	}
	if got.Cases < count {
		t.Errorf("ran %d cases, want at least %d", got.Cases, count)
	}
}
