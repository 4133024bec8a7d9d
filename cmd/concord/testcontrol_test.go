package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestProcessTestControl: the /test/ routes exist only with
// CONCORD_TEST_CONTROL=1, and then refuse bad peer IDs. (The chaos test
// checks that they do cut the network.)
func TestProcessTestControl(t *testing.T) {
	post := func(p *proc, route, body string) int {
		t.Helper()
		resp, err := http.Post(p.url+route, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	start := func(dir string) *proc {
		p := startPeerProc(t, "--data", filepath.Join(t.TempDir(), dir), "--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0")
		p.ready(p.lines)
		return p
	}
	off := start("off")
	if code := post(off, "/test/block", `{"peers":[]}`); code != http.StatusNotFound {
		t.Fatalf("without %s: POST /test/block answered %d, want 404", testControlEnv, code)
	}
	t.Setenv(testControlEnv, "1")
	on := start("on")
	if code := post(on, "/test/block", `{"peers":["`+off.id+`"]}`); code != http.StatusOK {
		t.Fatalf("POST /test/block answered %d", code)
	}
	if got := on.get("/test/peers")["blocked"]; len(got.([]any)) != 1 || got.([]any)[0] != off.id {
		t.Fatalf("blocked %v, want [%s]", got, off.id)
	}
	if code := post(on, "/test/block", `{"peers":["nope"]}`); code != http.StatusBadRequest {
		t.Fatalf("bad peer ID answered %d, want 400", code)
	}
	if code := post(on, "/test/unblock", `{"peers":["`+off.id+`"]}`); code != http.StatusOK {
		t.Fatalf("POST /test/unblock answered %d", code)
	}
	for _, p := range []*proc{off, on} {
		if code := p.stop(); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
}
