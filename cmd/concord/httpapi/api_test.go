package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/crdt"
)

// newAPI serves an in-memory node on an httptest server; mods change the
// API before it serves.
func newAPI(t *testing.T, opts Options, mods ...func(*API)) (*concord.Node, *httptest.Server) {
	t.Helper()
	n, err := concord.Open(context.Background(), concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	api := New(n, opts)
	for _, m := range mods {
		m(api)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		if err := n.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return n, srv
}

func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestStatusAndDoc(t *testing.T) {
	n, srv := newAPI(t, Options{})
	code, b := do(t, "GET", srv.URL+"/v1/docs/notes", "")
	if code != 200 {
		t.Fatalf("GET doc: %d %s", code, b)
	}
	var dv docView
	if err := json.Unmarshal(b, &dv); err != nil || string(dv.Value) != "{}" || len(dv.Version) != 0 {
		t.Fatalf("fresh doc %s (%v)", b, err)
	}
	code, b = do(t, "GET", srv.URL+"/v1/status", "")
	if code != 200 {
		t.Fatalf("GET status: %d %s", code, b)
	}
	var sv statusView
	if err := json.Unmarshal(b, &sv); err != nil {
		t.Fatal(err)
	}
	if sv.PeerID != n.ID().String() || len(sv.Addrs) == 0 || sv.Peers == nil || fmt.Sprint(sv.Docs) != "[notes]" {
		t.Fatalf("status %s", b)
	}
	for _, k := range []string{`"peer_id"`, `"addrs"`, `"peers":[]`, `"docs"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("status lacks %s: %s", k, b)
		}
	}
}

func TestOpsApplied(t *testing.T) {
	n, srv := newAPI(t, Options{})
	body := `[{"op":"set","path":["title"],"value":"groceries"},
	          {"op":"set","path":["items","milk"],"value":{"qty":2}},
	          {"op":"inc","path":["count"],"by":3},
	          {"op":"add","path":["tags"],"value":"b"},
	          {"op":"add","path":["tags"],"value":"a"},
	          {"op":"set","path":["gone"],"value":1}]`
	code, b := do(t, "POST", srv.URL+"/v1/docs/d/ops", body)
	if code != 200 {
		t.Fatalf("POST: %d %s", code, b)
	}
	code, b = do(t, "POST", srv.URL+"/v1/docs/d/ops", `[{"op":"delete","path":["gone"]},{"op":"remove","path":["tags"],"value":"b"},{"op":"inc","path":["count"],"by":-1}]`)
	if code != 200 {
		t.Fatalf("POST: %d %s", code, b)
	}
	var dv docView
	if err := json.Unmarshal(b, &dv); err != nil {
		t.Fatal(err)
	}
	want := `{"count":2,"items":{"milk":{"qty":2}},"tags":["a"],"title":"groceries"}`
	if string(dv.Value) != want {
		t.Fatalf("value %s, want %s", dv.Value, want)
	}
	if dv.Version[n.Replica()] == 0 {
		t.Fatalf("version %v lacks own replica", dv.Version)
	}
	code, b = do(t, "GET", srv.URL+"/v1/docs/d", "")
	if code != 200 || !strings.Contains(string(b), want) {
		t.Fatalf("GET: %d %s", code, b)
	}
}

func TestOpsErrors(t *testing.T) {
	n, srv := newAPI(t, Options{})
	if code, b := do(t, "POST", srv.URL+"/v1/docs/d/ops", `[{"op":"set","path":["reg"],"value":1},{"op":"inc","path":["n"],"by":1}]`); code != 200 {
		t.Fatalf("seed: %d %s", code, b)
	}
	d, err := n.Doc(context.Background(), "d")
	if err != nil {
		t.Fatal(err)
	}
	before, beforeVV := string(d.JSON()), fmt.Sprint(d.Status().Version)
	big := `[{"op":"set","path":["x"],"value":"` + strings.Repeat("x", MaxBodyBytes) + `"}]`
	cases := []struct {
		name, body string
		code       int
		msg        string
	}{
		{"not json", `[{"op":`, 400, "not valid JSON"},
		{"object not list", `{"op":"set","path":["a"],"value":1}`, 400, "list"},
		{"string not list", `"hi"`, 400, "list"},
		{"empty body", ``, 400, "JSON"},
		{"empty list", `[]`, 400, "empty"},
		{"op not object", `[1]`, 400, "op 0"},
		{"unknown op", `[{"op":"frob","path":["a"]}]`, 400, "unknown op"},
		{"missing op", `[{"path":["a"]}]`, 400, "missing"},
		{"unknown field", `[{"op":"set","path":["a"],"value":1,"extra":2}]`, 400, "extra"},
		{"no path", `[{"op":"delete"}]`, 400, "path"},
		{"empty path", `[{"op":"delete","path":[]}]`, 400, "path"},
		{"path not strings", `[{"op":"delete","path":["a",1]}]`, 400, "path"},
		{"path a string", `[{"op":"delete","path":"a.b"}]`, 400, "path"},
		{"set no value", `[{"op":"set","path":["a"]}]`, 400, "value"},
		{"inc no by", `[{"op":"inc","path":["n"]}]`, 400, "by"},
		{"inc float", `[{"op":"inc","path":["n"],"by":1.5}]`, 400, "by"},
		{"add object", `[{"op":"add","path":["s"],"value":{"a":1}}]`, 400, "scalar"},
		{"second op bad", `[{"op":"set","path":["new"],"value":1},{"op":"nope","path":["a"]}]`, 400, "op 1"},
		{"inc on register", `[{"op":"set","path":["new"],"value":1},{"op":"inc","path":["reg"],"by":1}]`, 409, "conflict"},
		{"add on counter", `[{"op":"add","path":["n"],"value":"x"}]`, 409, "conflict"},
		{"set under register", `[{"op":"set","path":["reg","child"],"value":1}]`, 409, "conflict"},
		{"too large", big, 413, "body over"},
		// Invalid UTF-8 anywhere in a body is refused before anything is
		// decoded (an outside test lost an acknowledged write to "e\xff").
		{"bad utf-8 set element", "[{\"op\":\"add\",\"path\":[\"s\"],\"value\":\"e\xff\"}]", 400, "UTF-8"},
		{"bad utf-8 path key", "[{\"op\":\"set\",\"path\":[\"k\xff\"],\"value\":1}]", 400, "UTF-8"},
		{"bad utf-8 register value", "[{\"op\":\"set\",\"path\":[\"r\"],\"value\":\"\xc3\"}]", 400, "UTF-8"},
		{"lone surrogate path key", `[{"op":"set","path":["\ud800"],"value":1}]`, 400, "surrogate"},
		{"lone surrogate value", `[{"op":"set","path":["r"],"value":{"a":"\udfff"}}]`, 400, "surrogate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, b := do(t, "POST", srv.URL+"/v1/docs/d/ops", c.body)
			var e errorBody
			if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
				t.Fatalf("body %q is not {\"error\": ...}: %v", b, err)
			}
			if code != c.code || !strings.Contains(e.Error, c.msg) {
				t.Fatalf("got %d %q, want %d containing %q", code, e.Error, c.code, c.msg)
			}
		})
	}
	for _, name := range []string{"%FF", "a%C3", "%ED%A0%80"} {
		code, b := do(t, "POST", srv.URL+"/v1/docs/"+name+"/ops", `[{"op":"set","path":["a"],"value":1}]`)
		if code != 400 || !strings.Contains(string(b), "UTF-8") {
			t.Fatalf("doc name %s: %d %s, want 400", name, code, b)
		}
	}
	if got := n.Docs(); len(got) != 1 {
		t.Fatalf("documents %q, want only d", got)
	}
	if after, vv := string(d.JSON()), fmt.Sprint(d.Status().Version); after != before || vv != beforeVV {
		t.Fatalf("a refused batch changed the doc: %s %s -> %s %s", before, beforeVV, after, vv)
	}
}

func TestRouteErrorsAreJSON(t *testing.T) {
	_, srv := newAPI(t, Options{})
	for _, c := range []struct{ method, path string }{
		{"GET", "/nope"},
		{"GET", "/v1/docs/"},
		{"DELETE", "/v1/docs/d"},
		{"GET", "/v1/docs/" + strings.Repeat("n", MaxDocName+1)},
	} {
		code, b := do(t, c.method, srv.URL+c.path, "")
		var e errorBody
		if code < 400 || code > 499 || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %s", c.method, c.path, code, b)
		}
	}
}

func TestStatusOf(t *testing.T) {
	for err, want := range map[error]int{
		fmt.Errorf("x: %w", crdt.ErrTypeConflict): 409,
		fmt.Errorf("x: %w", crdt.ErrInvalidPath):  400,
		fmt.Errorf("x: %w", crdt.ErrInvalidValue): 400,
		fmt.Errorf("x: %w", crdt.ErrInvalidOp):    400,
		fmt.Errorf("x: %w", concord.ErrTooLarge):  413,
		fmt.Errorf("x: %w", concord.ErrNotWriter): 403,
		fmt.Errorf("x: %w", concord.ErrClosed):    503,
		errors.New("disk on fire"):                500,
	} {
		if got := statusOf(err); got != want {
			t.Errorf("statusOf(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	_, srv := newAPI(t, Options{})
	do(t, "POST", srv.URL+"/v1/docs/d/ops", `[{"op":"inc","path":["n"],"by":1}]`)
	code, b := do(t, "GET", srv.URL+"/metrics", "")
	if code != 200 || !strings.Contains(string(b), "# TYPE ") {
		t.Fatalf("metrics: %d %.300s", code, b)
	}
}

// sse reads one event stream.
type sse struct {
	t    *testing.T
	r    *bufio.Reader
	stop context.CancelFunc
}

func openSSE(t *testing.T, url string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return &sse{t: t, r: bufio.NewReader(resp.Body), stop: cancel}
}

// next returns the next block (event or comment), up to the blank line,
// failing after d.
func (s *sse) next(d time.Duration) string {
	s.t.Helper()
	timer := time.AfterFunc(d, s.stop)
	defer timer.Stop()
	var b strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("event stream: %v (after %q)", err, b.String())
		}
		if line == "\n" {
			return b.String()
		}
		b.WriteString(line)
	}
}

// change reads the next block, which must be a change event, and returns
// it decoded and as sent.
func (s *sse) change(d time.Duration) (ChangeEvent, string) {
	s.t.Helper()
	ev := s.next(d)
	data, ok := strings.CutPrefix(ev, "event: change\ndata: ")
	if !ok {
		s.t.Fatalf("event %q", ev)
	}
	var ce ChangeEvent
	if err := json.Unmarshal([]byte(data), &ce); err != nil {
		s.t.Fatal(err)
	}
	return ce, data
}

func TestEvents(t *testing.T) {
	_, srv := newAPI(t, Options{Heartbeat: time.Hour})
	s := openSSE(t, srv.URL+"/v1/docs/d/events")
	if got := s.next(5 * time.Second); got != ": ok\n" {
		t.Fatalf("opening %q", got)
	}
	do(t, "POST", srv.URL+"/v1/docs/d/ops", `[{"op":"set","path":["a","b"],"value":1},{"op":"inc","path":["n"],"by":2}]`)
	ce, data := s.change(5 * time.Second)
	if !ce.Local || ce.Doc != "d" || ce.Origin == "" || fmt.Sprint(ce.Paths) != "[[a b] [n]]" || string(ce.Value) != `{"a":{"b":1},"n":2}` {
		t.Fatalf("change %s", data)
	}
	do(t, "POST", srv.URL+"/v1/docs/d/ops", `[{"op":"delete","path":["a"]}]`)
	if ev := s.next(5 * time.Second); !strings.Contains(ev, `"value":{"n":2}`) {
		t.Fatalf("second change %q", ev)
	}
}

// TestEventsBounded: past MaxStreams open event streams another is refused
// with 429 (a JSON error); closing one makes room again.
func TestEventsBounded(t *testing.T) {
	_, srv := newAPI(t, Options{Heartbeat: time.Hour, MaxStreams: 2})
	a := openSSE(t, srv.URL+"/v1/docs/d/events")
	a.next(5 * time.Second)
	b := openSSE(t, srv.URL+"/v1/docs/e/events")
	b.next(5 * time.Second)
	code, body := do(t, "GET", srv.URL+"/v1/docs/d/events", "")
	if code != http.StatusTooManyRequests || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("third stream: %d %s", code, body)
	}
	a.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := do(t, "GET", srv.URL+"/v1/status", "")
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/docs/d/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		resp.Body.Close()
		cancel()
		if resp.StatusCode == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream never made room: %d", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEventsHeartbeat(t *testing.T) {
	_, srv := newAPI(t, Options{Heartbeat: 20 * time.Millisecond})
	s := openSSE(t, srv.URL+"/v1/docs/d/events")
	s.next(5 * time.Second)
	for range 2 {
		if got := s.next(5 * time.Second); got != ": heartbeat\n" {
			t.Fatalf("heartbeat %q", got)
		}
	}
}

func TestEventsEndWithRequestContext(t *testing.T) {
	n, err := concord.Open(context.Background(), concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Doc(context.Background(), "d"); err != nil { // open already: the cancelled request still streams
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// httptest's Host is example.com, and there is no connection address.
	req := httptest.NewRequestWithContext(ctx, "GET", "/v1/docs/d/events", nil)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(n, Options{Hosts: []string{"example.com"}}).ServeHTTP(rec, req)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end with its request context")
	}
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), ": ok") {
		t.Fatalf("stream was not served: %d %q", rec.Code, rec.Body.String())
	}
}
