package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/concord-p2p/concord"
)

// getPresence GETs a document's presence.
func getPresence(t *testing.T, url string) presenceView {
	t.Helper()
	code, b := do(t, "GET", url, "")
	if code != 200 {
		t.Fatalf("GET presence: %d %s", code, b)
	}
	var v presenceView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// presenceEvent reads the next block, which must be a presence event.
func (s *sse) presence(d time.Duration) PresenceEvent {
	s.t.Helper()
	ev := s.next(d)
	data, ok := strings.CutPrefix(ev, "event: presence\ndata: ")
	if !ok {
		s.t.Fatalf("event %q", ev)
	}
	var pe PresenceEvent
	if err := json.Unmarshal([]byte(data), &pe); err != nil {
		s.t.Fatal(err)
	}
	if !strings.Contains(data, `"doc":`) || !strings.Contains(data, `"key":`) || !strings.Contains(data, `"state":`) {
		s.t.Fatalf("presence event lacks a field: %s", data)
	}
	return pe
}

func TestPresenceRoutes(t *testing.T) {
	n, srv := newAPI(t, Options{})
	url := srv.URL + "/v1/docs/d/presence"
	if v := getPresence(t, url); v.Peers == nil || len(v.Peers) != 0 {
		t.Fatalf("fresh presence %+v", v)
	}
	code, b := do(t, "GET", url, "")
	if string(b) != "{\"peers\":{}}\n" {
		t.Fatalf("fresh presence %d %s", code, b)
	}
	code, b = do(t, "PUT", url, `{"name": "ann", "cursor": {"at": 3}}`)
	if code != 200 {
		t.Fatalf("PUT: %d %s", code, b)
	}
	var v presenceView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	own := n.ID().String()
	if e, ok := v.Peers[own]; !ok || string(e.State) != `{"name":"ann","cursor":{"at":3}}` || e.AgeMS < 0 {
		t.Fatalf("PUT answered %s", b)
	}
	if code, b := do(t, "PUT", url+"/tab-1", `{"name":"tab"}`); code != 200 || !strings.Contains(string(b), `"`+own+`/tab-1":{"state":{"name":"tab"},"age_ms":`) {
		t.Fatalf("PUT client: %d %s", code, b)
	}
	if v := getPresence(t, url); len(v.Peers) != 2 {
		t.Fatalf("GET %+v", v)
	}
	code, b = do(t, "DELETE", url, "")
	if code != 200 || strings.Contains(string(b), `"`+own+`":`) || !strings.Contains(string(b), own+"/tab-1") {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	if code, b := do(t, "DELETE", url+"/tab-1", ""); code != 200 || string(b) != "{\"peers\":{}}\n" {
		t.Fatalf("DELETE client: %d %s", code, b)
	}
	if code, _ := do(t, "DELETE", url+"/tab-1", ""); code != 200 {
		t.Fatalf("DELETE of nothing: %d", code)
	}
}

func TestPresenceRouteErrors(t *testing.T) {
	_, srv := newAPI(t, Options{})
	url := srv.URL + "/v1/docs/d/presence"
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"PUT", "", `{"a":`, 400},
		{"PUT", "", ``, 400},
		{"PUT", "", `[1,2]`, 400},
		{"PUT", "", `"text"`, 400},
		{"PUT", "", `null`, 400},
		{"PUT", "", "{\"a\":\"\xff\"}", 400},
		{"PUT", "", `{"s":"` + strings.Repeat("x", concord.MaxPresenceBytes) + `"}`, 413},
		{"PUT", "/a%20b", `{}`, 400},
		{"PUT", "/" + strings.Repeat("c", 65), `{}`, 400},
		{"DELETE", "/a%2Fb", ``, 400},
		{"POST", "", `{}`, 404},
	} {
		code, b := do(t, c.method, url+c.path, c.body)
		var e errorBody
		if code != c.code || (code != 405 && (json.Unmarshal(b, &e) != nil || e.Error == "")) {
			t.Errorf("%s %s %.40q: %d %s, want %d", c.method, c.path, c.body, code, b, c.code)
		}
	}
	// The bound is on the body: exactly MaxPresenceBytes is fine.
	fits := `{"s":"` + strings.Repeat("x", concord.MaxPresenceBytes-8) + `"}`
	if code, b := do(t, "PUT", url, fits); code != 200 {
		t.Fatalf("a body of %d bytes: %d %s", len(fits), code, b)
	}
	for i := range concord.MaxPresenceClients {
		if code, b := do(t, "PUT", url+"/tab"+string(rune('a'+i)), `{}`); code != 200 {
			t.Fatalf("client %d: %d %s", i, code, b)
		}
	}
	if code, b := do(t, "PUT", url+"/one-too-many", `{}`); code != http.StatusConflict {
		t.Fatalf("client %d: %d %s", concord.MaxPresenceClients+1, code, b)
	}
}

// An entry set over HTTP goes when its lease ends without another PUT; a
// PUT renews it.
func TestPresenceLease(t *testing.T) {
	const lease = 300 * time.Millisecond
	_, srv := newAPI(t, Options{PresenceLease: lease})
	url := srv.URL + "/v1/docs/d/presence/tab"
	start := time.Now()
	if code, b := do(t, "PUT", url, `{"n":1}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(getPresence(t, srv.URL+"/v1/docs/d/presence").Peers) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the entry outlived its lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(start); took < lease {
		t.Fatalf("the entry went after %v, before its lease %v", took, lease)
	}
}

// Event streams carry presence events, own entries included: the entries
// present when the stream opens first, then every change (null when an
// entry goes).
func TestPresenceEvents(t *testing.T) {
	n, srv := newAPI(t, Options{Heartbeat: time.Hour})
	url := srv.URL + "/v1/docs/d/presence"
	if code, b := do(t, "PUT", url+"/early", `{"n":0}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, b)
	}
	s := openSSE(t, srv.URL+"/v1/docs/d/events")
	if got := s.next(5 * time.Second); got != ": ok\n" {
		t.Fatalf("opening %q", got)
	}
	own := n.ID().String()
	if ev := s.presence(5 * time.Second); ev.Key != own+"/early" || string(ev.State) != `{"n":0}` || ev.Doc != "d" {
		t.Fatalf("first event %+v", ev)
	}
	do(t, "PUT", url, `{"name":"ann"}`)
	if ev := s.presence(5 * time.Second); ev.Key != own || string(ev.State) != `{"name":"ann"}` {
		t.Fatalf("set %+v", ev)
	}
	do(t, "DELETE", url, "")
	ev := s.next(5 * time.Second)
	if ev != `event: presence`+"\n"+`data: {"doc":"d","key":"`+own+`","state":null}`+"\n" {
		t.Fatalf("clear %q", ev)
	}
	// Changes still come on the same stream.
	do(t, "POST", srv.URL+"/v1/docs/d/ops", `[{"op":"set","path":["a"],"value":1}]`)
	if ce, data := s.change(5 * time.Second); string(ce.Value) != `{"a":1}` {
		t.Fatalf("change %s", data)
	}
}

// Two peers: what one PUTs, the other's GET and event stream show; a
// DELETE reaches it as a null state.
func TestPresenceBetweenPeers(t *testing.T) {
	a, srvA := newAPI(t, Options{Heartbeat: time.Hour})
	b, srvB := newAPI(t, Options{Heartbeat: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	do(t, "GET", srvA.URL+"/v1/docs/d", "")
	s := openSSE(t, srvB.URL+"/v1/docs/d/events")
	s.next(5 * time.Second)
	key := a.ID().String() + "/tab"
	// The peers may not share the presence topic yet: PUT again until B
	// shows the entry (each PUT is a new state, so each is published; B
	// may show an earlier one than the last).
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		body := `{"i":` + strings.Repeat("1", i+1) + `}`
		if code, b := do(t, "PUT", srvA.URL+"/v1/docs/d/presence/tab", body); code != 200 {
			t.Fatalf("PUT: %d %s", code, b)
		}
		if _, ok := getPresence(t, srvB.URL+"/v1/docs/d/presence").Peers[key]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B never showed A's entry")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ev := s.presence(5 * time.Second); ev.Key != key || string(ev.State) == "null" {
		t.Fatalf("B's event %+v", ev)
	}
	if code, b := do(t, "DELETE", srvA.URL+"/v1/docs/d/presence/tab", ""); code != 200 {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	for {
		ev := s.presence(5 * time.Second)
		if ev.Key == key && string(ev.State) == "null" {
			break
		}
	}
	if v := getPresence(t, srvB.URL+"/v1/docs/d/presence"); len(v.Peers) != 0 {
		t.Fatalf("B still shows %+v", v)
	}
}

func TestPresenceStatusOf(t *testing.T) {
	for err, want := range map[error]int{
		fmt.Errorf("x: %w", concord.ErrPresenceInvalid):  400,
		fmt.Errorf("x: %w", concord.ErrPresenceTooLarge): 413,
		fmt.Errorf("x: %w", concord.ErrPresenceFull):     409,
	} {
		if got := statusOf(err); got != want {
			t.Errorf("statusOf(%v) = %d, want %d", err, got, want)
		}
	}
}
