package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// call sends one request to a running peer's API with the given Host (""
// for the URL's) and headers, and returns the status, headers and body.
func (p *proc) call(method, path, host, body string, hdr map[string]string) (int, http.Header, string) {
	p.t.Helper()
	r, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	if host != "" {
		r.Host = host
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// TestProcessHTTPAccess: --http-origin and --http-token through the built
// binary, on a random port (the accepted Host uses the bound one).
func TestProcessHTTPAccess(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "api.token")
	if err := os.WriteFile(tokFile, []byte("tok-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPeerProc(t, "--data", filepath.Join(dir, "data"), "--listen", "/ip4/127.0.0.1/tcp/0",
		"--http", "localhost:0", "--doc", "notes", "--http-origin", "http://localhost:3000", "--http-token", tokFile)
	p.ready(p.lines)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(p.url, "http://"))
	if err != nil || port == "0" {
		t.Fatalf("http line %q", p.url)
	}
	auth := map[string]string{"Authorization": "Bearer tok-123"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"Authorization": "Bearer tok-123"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	ops := `[{"op":"set","path":["owned"],"value":true}]`
	cases := []struct {
		name, method, path, host, body string
		hdr                            map[string]string
		code                           int
		acao                           string
	}{
		{"no token", "GET", "/v1/status", "", "", nil, 401, ""},
		{"wrong token", "GET", "/v1/status", "", "", map[string]string{"Authorization": "Bearer tok-12"}, 401, ""},
		{"token", "GET", "/v1/status", "", "", auth, 200, ""},
		{"metrics without token", "GET", "/metrics", "", "", nil, 200, ""},
		{"write without token", "POST", "/v1/docs/notes/ops", "", ops, nil, 401, ""},
		{"foreign text/plain write", "POST", "/v1/docs/notes/ops", "", ops,
			with("Origin", "http://evil.example", "Content-Type", "text/plain"), 403, ""},
		{"null origin write", "POST", "/v1/docs/notes/ops", "", ops, with("Origin", "null"), 403, ""},
		{"rebinding host", "GET", "/v1/docs/notes", "evil.example:" + port, "", auth, 403, ""},
		{"loopback name", "GET", "/v1/docs/notes", "127.0.0.1:" + port, "", auth, 200, ""},
		{"name given to --http", "GET", "/v1/docs/notes", "localhost:" + port, "", auth, 200, ""},
		{"own origin", "GET", "/v1/docs/notes", "", "", with("Origin", "http://localhost:"+port), 200, "http://localhost:" + port},
		{"allowed origin", "GET", "/v1/docs/notes", "", "", with("Origin", "http://localhost:3000"), 200, "http://localhost:3000"},
		{"allowed origin preflight", "OPTIONS", "/v1/docs/notes/ops", "", "",
			map[string]string{"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}, 204, "http://localhost:3000"},
		{"foreign preflight", "OPTIONS", "/v1/docs/notes/ops", "", "",
			map[string]string{"Origin": "http://localhost:3001", "Access-Control-Request-Method": "POST"}, 403, ""},
	}
	for _, c := range cases {
		code, h, body := p.call(c.method, c.path, c.host, c.body, c.hdr)
		if code != c.code || h.Get("Access-Control-Allow-Origin") != c.acao {
			t.Errorf("%s: %d (Access-Control-Allow-Origin %q) %.200s, want %d (%q)", c.name, code, h.Get("Access-Control-Allow-Origin"), body, c.code, c.acao)
		}
		if code >= 400 && !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d body %q is not a JSON error", c.name, code, body)
		}
	}
	if code, _, body := p.call("GET", "/v1/docs/notes", "", "", auth); code != 200 || !strings.Contains(body, `"value":{}`) {
		t.Fatalf("refused writes changed the doc: %d %s", code, body)
	}
	if code, _, body := p.call("POST", "/v1/docs/notes/ops", "", ops, with("Origin", "http://localhost:3000", "Content-Type", "text/plain")); code != 200 || !strings.Contains(body, `"owned":true`) {
		t.Fatalf("allowed write: %d %s", code, body)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
	}
	if strings.Contains(p.stderr.String(), "warning") {
		t.Fatalf("a loopback API warned:\n%s", p.stderr)
	}
}

func TestHTTPWarning(t *testing.T) {
	for _, c := range []struct {
		flag  string
		ip    string
		token string
		warn  bool
	}{
		{"127.0.0.1:0", "127.0.0.1", "", false},
		{"localhost:8080", "127.0.0.1", "", false},
		{"[::1]:8080", "::1", "", false},
		{":8080", "::", "", true},
		{"0.0.0.0:8080", "0.0.0.0", "", true},
		{"192.0.2.5:8080", "192.0.2.5", "", true},
		{"0.0.0.0:8080", "0.0.0.0", "t", false},
	} {
		w := httpWarning(c.flag, &net.TCPAddr{IP: net.ParseIP(c.ip), Port: 8080}, c.token)
		if (w != "") != c.warn || (c.warn && !strings.Contains(w, "--http-token")) {
			t.Errorf("httpWarning(%s, %s, %q) = %q", c.flag, c.ip, c.token, w)
		}
	}
}
