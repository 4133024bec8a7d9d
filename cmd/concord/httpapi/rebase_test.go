package httpapi

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// A page edits the view it read while another client edits before its
// caret: named with its base, the page's splice lands where the page saw
// it. GET, the ops response and the change events carry the numbers that
// make this work, and cursors go to indexes and back.
func TestSpliceWithBase(t *testing.T) {
	_, srv := newAPI(t, Options{Heartbeat: time.Hour})
	s := openSSE(t, srv.URL+"/v1/docs/d/events")
	if got := s.next(5 * time.Second); got != ": ok\n" {
		t.Fatalf("opening %q", got)
	}
	type view struct {
		Value json.RawMessage `json:"value"`
		N     uint64          `json:"n"`
	}
	call := func(method, route, body string, want int) view {
		t.Helper()
		code, out := do(t, method, srv.URL+"/v1/docs/d"+route, body)
		var v view
		if code != want || json.Unmarshal(out, &v) != nil {
			t.Fatalf("%s %s %s: %d %s", method, route, body, code, out)
		}
		return v
	}
	first := call("POST", "/ops", `[{"op":"splice","path":["t"],"index":0,"text":"hello world"}]`, 200)
	got := call("GET", "", "", 200)
	if got.N != first.N || string(got.Value) != `{"t":"hello world"}` {
		t.Fatalf("GET after the write: n %d (write's %d), %s", got.N, first.N, got.Value)
	}
	base := got.N
	other := call("POST", "/ops", `[{"op":"splice","path":["t"],"index":0,"text":"## "}]`, 200)
	if other.N != base+1 {
		t.Fatalf("next change %d after %d", other.N, base)
	}
	mine := call("POST", "/ops", fmt.Sprintf(`[{"op":"splice","path":["t"],"index":6,"delete":5,"text":"there","base":%d}]`, base), 200)
	if mine.N != base+2 {
		t.Fatalf("the page's change %d, want %d", mine.N, base+2)
	}
	if v := call("GET", "", "", 200); string(v.Value) != `{"t":"## hello there"}` {
		t.Fatalf("view %s", v.Value)
	}
	for want := first.N; want <= mine.N; want++ {
		ce, data := s.change(5 * time.Second)
		if ce.N != want {
			t.Fatalf("event n %d, want %d: %s", ce.N, want, data)
		}
	}

	// Cursors on the page's old view and back.
	var cv struct {
		Cursors []string `json:"cursors"`
		N       uint64   `json:"n"`
	}
	code, out := do(t, "POST", srv.URL+"/v1/docs/d/cursors", fmt.Sprintf(`{"path":["t"],"base":%d,"indexes":[0,6,11]}`, base))
	if code != 200 || json.Unmarshal(out, &cv) != nil || len(cv.Cursors) != 3 || cv.Cursors[2] != "end" {
		t.Fatalf("cursors: %d %s", code, out)
	}
	var iv struct {
		Indexes []int  `json:"indexes"`
		N       uint64 `json:"n"`
	}
	body, _ := json.Marshal(map[string]any{"path": []string{"t"}, "cursors": append(cv.Cursors, "7@nobody")})
	code, out = do(t, "POST", srv.URL+"/v1/docs/d/indexes", string(body))
	if code != 200 || json.Unmarshal(out, &iv) != nil || fmt.Sprint(iv.Indexes) != "[3 14 14 -1]" || iv.N != mine.N {
		t.Fatalf("indexes: %d %s", code, out)
	}

	for _, c := range []struct {
		route, body string
		code        int
	}{
		{"/ops", fmt.Sprintf(`[{"op":"set","path":["x"],"value":1,"base":%d}]`, base), 400},
		{"/ops", `[{"op":"splice","path":["t"],"index":0,"text":"x","base":-3}]`, 400},
		{"/ops", `[{"op":"splice","path":["t"],"index":0,"text":"x","base":"7"}]`, 400},
		{"/ops", fmt.Sprintf(`[{"op":"splice","path":["t"],"index":0,"text":"x","base":%d}]`, mine.N+10), 409},
		{"/ops", `[{"op":"splice","path":["t"],"index":0,"text":"x","base":1}]`, 409}, // before this peer started
		{"/cursors", `{"path":["t"],"indexes":[-1]}`, 400},
		{"/cursors", `{"path":["t"],"indexes":[99]}`, 409},
		{"/cursors", `{"path":["t"],"cursors":["end"]}`, 400},
		{"/indexes", `{"path":["t"],"cursors":["nope"]}`, 400},
		{"/indexes", `{"path":[],"cursors":["end"]}`, 400},
	} {
		if code, out := do(t, "POST", srv.URL+"/v1/docs/d"+c.route, c.body); code != c.code {
			t.Errorf("%s %s: %d %s, want %d", c.route, c.body, code, out, c.code)
		}
	}
}
