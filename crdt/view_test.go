package crdt

import (
	"encoding/json"
	"testing"
)

// The view writes keys as encoding/json does: plain ones as they are, any
// needing an escape (quotes, backslashes, controls, HTML characters,
// U+2028/U+2029) through json.Marshal, sorted bytewise.
func TestJSONKeysAsEncodingJSON(t *testing.T) {
	keys := []string{"a", "k10", "k9", "", "<b>", "a&b", `"q"`, `back\slash`, "tab\t", "ctl\x01", "é", "日本", "line\u2028sep", "~", " "}
	s := New()
	want := map[string]json.RawMessage{}
	for i, k := range keys {
		v := json.RawMessage([]byte{'0' + byte(i%10)})
		if _, err := s.Apply("A", HLC(i+1), Set([]string{k}, v)); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	// A nested map and a key that shows nothing.
	if _, err := s.Apply("A", HLC(100), Set([]string{"m", "<x>"}, json.RawMessage(`true`))); err != nil {
		t.Fatal(err)
	}
	want["m"] = json.RawMessage(`{"<x>":true}`)
	if _, err := s.Apply("A", HLC(101), Set([]string{"gone"}, json.RawMessage(`1`)), Delete([]string{"gone"})); err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.JSON(); string(got) != string(w) {
		t.Fatalf("view\n got %s\nwant %s", got, w)
	}
}
