package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"testing"
)

// rebaseCases is an async function (seed, count) → {cases, failures} run
// in the editor page against its peer.
//
//go:embed testdata/rebase_cases.js
var rebaseCases string

// The page and the peer agree on where a splice made on an older view
// lands: on random texts and edits (testdata/rebase_cases.js), the text
// the peer makes of the page's splice, sent with its base after others'
// splices, is the one the page predicts (textsync.js's transform), code
// points and UTF-16 pairs included; and a cursor made on the old view
// comes back at the index the page's mapping gives.
func TestRebaseAgreesWithPeerInChromium(t *testing.T) {
	br := startBrowser(t)
	_, srv, _ := editorPeer(t)
	page := br.openEditor(srv.URL + "/")
	// Seed 2140003494 holds case 32, where our deleted range closes up
	// around others' insert-then-delete (the peer's tombstones then sit
	// before our text).
	seed := testSeed(t, 2140003494)
	const count = 96
	var got struct {
		Cases    int
		Failures []string
	}
	if err := json.Unmarshal(br.Eval(page, fmt.Sprintf("(%s)(%d, %d)", rebaseCases, seed, count)), &got); err != nil {
		t.Fatal(err)
	}
	for _, f := range got.Failures {
		t.Errorf("seed %d: %s", seed, f)
	}
	if len(got.Failures) == 0 && got.Cases != count {
		t.Errorf("ran %d cases, want %d", got.Cases, count)
	}
}
