package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Splices over HTTP: the text and the list they make in the view, their
// errors (400 for a bad body, 409 against the document), and the patches
// of the change events, which replayed from the empty text give the text.
func TestSpliceOps(t *testing.T) {
	_, srv := newAPI(t, Options{Heartbeat: time.Hour})
	s := openSSE(t, srv.URL+"/v1/docs/d/events")
	if got := s.next(5 * time.Second); got != ": ok\n" {
		t.Fatalf("opening %q", got)
	}
	post := func(body string) (int, string) {
		code, b := do(t, "POST", srv.URL+"/v1/docs/d/ops", body)
		return code, string(b)
	}
	steps := []string{
		`[{"op":"splice","path":["t"],"index":0,"text":"hello"}]`,
		`[{"op":"splice","path":["t"],"index":5,"delete":0,"text":" wörld"},{"op":"splice","path":["t"],"index":0,"delete":1,"text":"H"}]`,
		`[{"op":"splice","path":["t"],"index":5,"delete":6}]`,
		`[{"op":"splice","path":["l"],"index":0,"values":["a",{"id":2},3]}]`,
		`[{"op":"splice","path":["l"],"index":1,"delete":1},{"op":"splice","path":["l"],"index":2,"values":[]}]`,
	}
	for _, b := range steps {
		if code, out := post(b); code != 200 {
			t.Fatalf("%s: %d %s", b, code, out)
		}
	}
	code, out := do(t, "GET", srv.URL+"/v1/docs/d", "")
	var view struct{ Value json.RawMessage }
	if err := json.Unmarshal(out, &view); err != nil || code != 200 {
		t.Fatalf("GET: %d %s", code, out)
	}
	if got := string(view.Value); got != `{"l":["a",3],"t":"Hello"}` {
		t.Fatalf("view %s", got)
	}
	var text []rune
	var list []json.RawMessage
	for range steps {
		ce, data := s.change(5 * time.Second)
		if len(ce.Patches) == 0 {
			t.Fatalf("change without patches: %s", data)
		}
		for _, p := range ce.Patches {
			switch {
			case p.Text != nil:
				text = append(text[:p.Index:p.Index], append([]rune(*p.Text), text[p.Index+p.Delete:]...)...)
			case p.Values != nil:
				list = append(list[:p.Index:p.Index], append(append([]json.RawMessage(nil), *p.Values...), list[p.Index+p.Delete:]...)...)
			default:
				t.Fatalf("patch with neither text nor values: %s", data)
			}
		}
	}
	if string(text) != "Hello" || fmt.Sprintf("%s", list) != `["a" 3]` {
		t.Fatalf("patches give %q and %s", string(text), list)
	}
	for _, c := range []struct {
		body string
		code int
	}{
		{`[{"op":"splice","path":["t"],"text":"x"}]`, 400},                                                                // no index
		{`[{"op":"splice","path":["t"],"index":-1,"text":"x"}]`, 400},                                                     // negative
		{`[{"op":"splice","path":["t"],"index":0,"delete":-2}]`, 400},                                                     // negative delete
		{`[{"op":"splice","path":["t"],"index":0,"text":"x","values":[1]}]`, 400},                                         // both
		{`[{"op":"splice","path":["t"],"index":0,"text":"\ud800"}]`, 400},                                                 // lone surrogate
		{`[{"op":"splice","path":["t"],"index":0,"text":1}]`, 400},                                                        // text not a string
		{`[{"op":"splice","path":["t"],"index":9,"text":"x"}]`, 409},                                                      // past the end
		{`[{"op":"splice","path":["t"],"index":3,"delete":3}]`, 409},                                                      // delete past the end
		{`[{"op":"splice","path":["l"],"index":0,"text":"x"}]`, 409},                                                      // text into a list
		{`[{"op":"inc","path":["t"],"by":1}]`, 409},                                                                       // counter on a text
		{`[{"op":"splice","path":["t"],"index":0,"text":"ok"},{"op":"splice","path":["t"],"index":99,"text":"no"}]`, 409}, // all or nothing
	} {
		if code, out := post(c.body); code != c.code || !strings.Contains(out, `"error"`) {
			t.Errorf("%s: %d %s, want %d", c.body, code, out, c.code)
		}
	}
	if _, out := do(t, "GET", srv.URL+"/v1/docs/d", ""); !strings.Contains(string(out), `"t":"Hello"`) {
		t.Fatalf("a refused batch changed the document: %s", out)
	}
}
