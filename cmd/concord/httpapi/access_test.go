package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/concord-p2p/concord"
)

// req is one request of an access test: Host and headers set by hand.
type req struct {
	method, path, host, body string
	hdr                      map[string]string
}

// send sends q to srv and returns the status, headers and body.
func send(t *testing.T, srv *httptest.Server, q req) (int, http.Header, string) {
	t.Helper()
	if q.method == "" {
		q.method = "GET"
	}
	r, err := http.NewRequest(q.method, srv.URL+q.path, strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	if q.host != "" {
		r.Host = q.host
	}
	for k, v := range q.hdr {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func port(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// checkRefusal fails unless body is a JSON error containing msg.
func checkRefusal(t *testing.T, body, msg string) {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, msg) {
		t.Fatalf("body %q is not {\"error\": ...%s...}: %v", body, msg, err)
	}
}

// TestAccessOriginAndHost: every Host and Origin rule, on a loopback API
// with one extra allowed origin, through a real connection (the accepted
// hosts come from its local address, a random port).
func TestAccessOriginAndHost(t *testing.T) {
	n, srv := newAPI(t, Options{Origins: []string{"http://localhost:3000", "https://app.example/"}, Hosts: []string{"myhost.lan"}})
	p := port(t, srv)
	other := strconv.Itoa(mustAtoi(t, p)%60000 + 1024)
	cases := []struct {
		name, host, origin string
		code               int // 403s carry a JSON error naming what was refused
	}{
		{"no origin", "", "", 200},
		{"own origin 127.0.0.1", "", "http://127.0.0.1:" + p, 200},
		{"own origin localhost", "", "http://localhost:" + p, 200},
		{"own origin [::1]", "", "http://[::1]:" + p, 200},
		{"allowed origin", "", "http://localhost:3000", 200},
		{"allowed https origin", "", "https://app.example", 200},
		{"foreign origin", "", "http://evil.example", 403},
		{"foreign port", "", "http://localhost:3001", 403},
		{"own name other port", "", "http://127.0.0.1:" + other, 403},
		{"own name over https", "", "https://127.0.0.1:" + p, 403},
		{"allowed origin over http", "", "http://app.example", 403},
		{"null origin", "", "null", 403},
		{"empty origin", "", " ", 403},
		{"origin with path", "", "http://localhost:3000/x", 403},
		{"host localhost", "localhost:" + p, "", 200},
		{"host upper case", "LOCALHOST:" + p, "", 200},
		{"host [::1]", "[::1]:" + p, "", 200},
		{"host from Hosts", "myhost.lan", "", 200},
		{"host from Hosts, its origin", "myhost.lan", "http://myhost.lan", 200},
		{"host from Hosts other port", "myhost.lan:81", "", 403},
		{"host without port", "localhost", "", 403},
		{"host other port", "127.0.0.1:" + other, "", 403},
		{"rebinding name", "evil.example:" + p, "", 403},
		{"rebinding name, same-origin page", "evil.example:" + p, "http://evil.example:" + p, 403},
		{"rebinding name, allowed origin", "evil.example:" + p, "http://localhost:3000", 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := map[string]string{}
			if c.origin != "" {
				hdr["Origin"] = strings.TrimSpace(c.origin)
			}
			code, h, body := send(t, srv, req{path: "/v1/docs/d", host: c.host, hdr: hdr})
			if code != c.code {
				t.Fatalf("got %d %s, want %d", code, body, c.code)
			}
			acao := h.Get("Access-Control-Allow-Origin")
			switch {
			case code == 200 && c.origin != "" && acao != c.origin:
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", acao, c.origin)
			case (code != 200 || c.origin == "") && acao != "":
				t.Fatalf("Access-Control-Allow-Origin %q on %d without allowed origin", acao, code)
			}
			if code == 403 {
				what := "origin"
				if strings.Contains(c.name, "host") || strings.Contains(c.name, "rebinding") {
					what = "host"
				}
				checkRefusal(t, body, what)
			}
			if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Fatalf("no Vary: Origin in %v", h)
			}
		})
	}

	// A browser's cross-site request without Origin (an <img>, a no-cors
	// GET) is refused too: a GET opens the document it names. A
	// same-origin or typed-in navigation is not.
	for site, want := range map[string]int{"cross-site": 403, "same-site": 403, "same-origin": 200, "none": 200} {
		code, _, body := send(t, srv, req{path: "/v1/docs/nocors", hdr: map[string]string{"Sec-Fetch-Site": site}})
		if code != want {
			t.Fatalf("Sec-Fetch-Site %s without Origin: %d %s, want %d", site, code, body, want)
		}
	}
	if !slices.Contains(n.Docs(), "nocors") {
		t.Fatal("the allowed no-Origin GETs did not open the document")
	}

	// A "simple" cross-site write (text/plain, no preflight) is refused
	// before it is read; the same from an allowed origin is applied.
	d, err := n.Doc(context.Background(), "d")
	if err != nil {
		t.Fatal(err)
	}
	ops := `[{"op":"set","path":["owned"],"value":true}]`
	code, _, body := send(t, srv, req{method: "POST", path: "/v1/docs/d/ops", body: ops,
		hdr: map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}})
	if code != 403 || string(d.JSON()) != "{}" {
		t.Fatalf("foreign write: %d %s, doc %s", code, body, d.JSON())
	}
	code, _, body = send(t, srv, req{method: "POST", path: "/v1/docs/d/ops", body: ops,
		hdr: map[string]string{"Origin": "http://localhost:3000", "Content-Type": "text/plain"}})
	if code != 200 || string(d.JSON()) != `{"owned":true}` {
		t.Fatalf("allowed write: %d %s, doc %s", code, body, d.JSON())
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAccessPreflight: an allowed origin's preflight is answered with 204
// and the CORS headers (without the token); a foreign one, or one under a
// rebinding Host, with 403.
func TestAccessPreflight(t *testing.T) {
	_, srv := newAPI(t, Options{Origins: []string{"http://localhost:3000"}, Token: "s3cret"})
	p := port(t, srv)
	pre := func(host, origin string) (int, http.Header) {
		code, h, _ := send(t, srv, req{method: "OPTIONS", path: "/v1/docs/d/ops", host: host, hdr: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "content-type,authorization",
		}})
		return code, h
	}
	for _, origin := range []string{"http://localhost:3000", "http://127.0.0.1:" + p} {
		code, h := pre("", origin)
		if code != 204 {
			t.Fatalf("preflight from %s: %d", origin, code)
		}
		for k, want := range map[string]string{
			"Access-Control-Allow-Origin":  origin,
			"Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
			"Access-Control-Allow-Headers": "Content-Type, Authorization",
			"Access-Control-Max-Age":       "600",
			"Vary":                         "Origin",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("preflight from %s: %s %q, want %q", origin, k, got, want)
			}
		}
	}
	if code, h := pre("", "http://evil.example"); code != 403 || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign preflight: %d %v", code, h)
	}
	if code, _ := pre("", "null"); code != 403 {
		t.Fatalf("null preflight: %d", code)
	}
	if code, _ := pre("evil.example:"+p, "http://evil.example:"+p); code != 403 {
		t.Fatalf("rebinding preflight: %d", code)
	}
	// OPTIONS that is not a preflight is an ordinary (unknown) route.
	if code, _, body := send(t, srv, req{method: "OPTIONS", path: "/v1/status", hdr: map[string]string{"Authorization": "Bearer s3cret"}}); code != 404 {
		t.Fatalf("plain OPTIONS: %d %s", code, body)
	}
}

// TestAccessToken: with a token every route but /metrics needs it (401 and
// a JSON error otherwise, with CORS headers for an allowed origin so its
// page can read why); the Host and Origin rules still apply to /metrics.
func TestAccessToken(t *testing.T) {
	n, srv := newAPI(t, Options{Token: "s3cret", Origins: []string{"http://localhost:3000"}})
	ok := "Bearer s3cret"
	cases := []struct {
		name, method, path, auth, origin, host string
		code                                   int
	}{
		{"status missing", "GET", "/v1/status", "", "", "", 401},
		{"status wrong", "GET", "/v1/status", "Bearer s3cre", "", "", 401},
		{"status longer", "GET", "/v1/status", "Bearer s3cret2", "", "", 401},
		{"status other scheme", "GET", "/v1/status", "Basic s3cret", "", "", 401},
		{"status bare token", "GET", "/v1/status", "s3cret", "", "", 401},
		{"status right", "GET", "/v1/status", ok, "", "", 200},
		{"status right, lower-case scheme", "GET", "/v1/status", "bearer s3cret", "", "", 200},
		{"doc missing", "GET", "/v1/docs/d", "", "", "", 401},
		{"doc right", "GET", "/v1/docs/d", ok, "", "", 200},
		{"ops missing", "POST", "/v1/docs/d/ops", "", "", "", 401},
		{"ops wrong", "POST", "/v1/docs/d/ops", "Bearer nope", "", "", 401},
		{"events missing", "GET", "/v1/docs/d/events", "", "", "", 401},
		{"unknown route missing", "GET", "/nope", "", "", "", 401},
		{"unknown route right", "GET", "/nope", ok, "", "", 404},
		{"allowed origin missing", "GET", "/v1/docs/d", "", "http://localhost:3000", "", 401},
		{"allowed origin right", "GET", "/v1/docs/d", ok, "http://localhost:3000", "", 200},
		{"foreign origin right", "GET", "/v1/docs/d", ok, "http://evil.example", "", 403},
		{"rebinding host right", "GET", "/v1/docs/d", ok, "", "evil.example", 403},
		{"metrics without token", "GET", "/metrics", "", "", "", 200},
		{"metrics foreign origin", "GET", "/metrics", "", "http://evil.example", "", 403},
		{"metrics rebinding host", "GET", "/metrics", "", "", "evil.example", 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := map[string]string{}
			if c.auth != "" {
				hdr["Authorization"] = c.auth
			}
			if c.origin != "" {
				hdr["Origin"] = c.origin
			}
			body := ""
			if c.method == "POST" {
				body = `[{"op":"inc","path":["n"],"by":1}]`
			}
			code, h, got := send(t, srv, req{method: c.method, path: c.path, host: c.host, hdr: hdr, body: body})
			if code != c.code {
				t.Fatalf("got %d %.200s, want %d", code, got, c.code)
			}
			if code == 401 {
				checkRefusal(t, got, "Bearer")
				if h.Get("WWW-Authenticate") == "" {
					t.Fatalf("401 without WWW-Authenticate")
				}
				if c.origin != "" && h.Get("Access-Control-Allow-Origin") != c.origin {
					t.Fatalf("401 to an allowed origin without CORS headers: %v", h)
				}
			}
		})
	}
	d, err := n.Doc(context.Background(), "d")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(d.JSON()); got != "{}" {
		t.Fatalf("a refused write changed the doc: %s", got)
	}
	if code, _, b := send(t, srv, req{method: "POST", path: "/v1/docs/d/ops", body: `[{"op":"inc","path":["n"],"by":1}]`,
		hdr: map[string]string{"Authorization": ok}}); code != 200 || string(d.JSON()) != `{"n":1}` {
		t.Fatalf("write with the token: %d %s, doc %s", code, b, d.JSON())
	}
}

// TestAccessEvents: the event stream is guarded like every route.
func TestAccessEvents(t *testing.T) {
	_, srv := newAPI(t, Options{Origins: []string{"http://localhost:3000"}})
	p := port(t, srv)
	for _, c := range []struct {
		host, origin string
		code         int
	}{
		{"", "http://evil.example", 403},
		{"", "null", 403},
		{"evil.example:" + p, "", 403},
	} {
		if code, _, body := send(t, srv, req{path: "/v1/docs/d/events", host: c.host, hdr: map[string]string{"Origin": c.origin}}); code != c.code {
			t.Fatalf("events host %q origin %q: %d %s", c.host, c.origin, code, body)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/docs/d/events", nil)
	r.Header.Set("Origin", "http://localhost:3000")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Fatalf("allowed origin's stream: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestAccessNonLoopback: on a connection that arrived on a non-loopback
// address only that address (and Options.Hosts) is an accepted Host; the
// loopback names are not.
func TestAccessNonLoopback(t *testing.T) {
	n, err := concord.Open(context.Background(), concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	api := New(n, Options{Hosts: []string{"myhost.lan:8080"}})
	local := &net.TCPAddr{IP: net.ParseIP("192.0.2.5"), Port: 8080}
	for host, want := range map[string]int{
		"192.0.2.5:8080":    200,
		"myhost.lan:8080":   200,
		"192.0.2.5:8081":    403,
		"localhost:8080":    403,
		"127.0.0.1:8080":    403,
		"evil.example:8080": 403,
	} {
		r := httptest.NewRequest("GET", "/v1/status", nil)
		r.Host = host
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("Host %s: %d %s, want %d", host, rec.Code, rec.Body, want)
		}
	}
	// Without a connection address (a handler called directly) only
	// Options.Hosts match.
	r := httptest.NewRequest("GET", "/v1/status", nil)
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, r)
	if rec.Code != 403 {
		t.Fatalf("no local address, Host %s: %d", r.Host, rec.Code)
	}
}

func TestParseOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:3000":   "http://localhost:3000",
		"http://localhost:3000/":  "http://localhost:3000",
		"HTTP://LocalHost:3000":   "http://localhost:3000",
		"http://example.com:80":   "http://example.com",
		"https://example.com:443": "https://example.com",
		"https://example.com:80":  "https://example.com:80",
		"http://[::1]:8080":       "http://[::1]:8080",
		"http://127.0.0.1":        "http://127.0.0.1",
	} {
		if got, err := ParseOrigin(in); err != nil || got != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "null", "*", "localhost:3000", "ftp://x", "http://", "http://x/path",
		"http://x?q", "http://x#f", "http://u@x", "http://x:0", "http://x:99999", "http://x:abc", "file:///etc"} {
		if got, err := ParseOrigin(in); !errors.Is(err, ErrBadOrigin) {
			t.Errorf("ParseOrigin(%q) = %q, %v; want ErrBadOrigin", in, got, err)
		}
	}
}
