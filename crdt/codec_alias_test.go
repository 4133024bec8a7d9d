package crdt

import (
	"encoding/json"
	"testing"
)

// A decoded state keeps nothing of its input: the caller may reuse the
// bytes (a frame buffer) once decoding returns.
func TestDecodeKeepsNoInputBytes(t *testing.T) {
	s := New()
	d, err := s.Apply("A", HLC(1), Set([]string{"k"}, json.RawMessage(`"value"`)), Set([]string{"m", "n"}, json.RawMessage(`[1,2]`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		enc  []byte
		dec  func([]byte) (*State, error)
	}{
		{"delta", EncodeDelta(d, "A"), func(b []byte) (*State, error) { return DecodeDelta(b, "A", DeltaLimits()) }},
		{"state", Encode(s), func(b []byte) (*State, error) { return Decode(b, DefaultLimits()) }},
	} {
		got, err := tc.dec(tc.enc)
		if err != nil {
			t.Fatal(tc.name, err)
		}
		want := string(got.JSON())
		for i := range tc.enc {
			tc.enc[i] = 'x'
		}
		if after := string(got.JSON()); after != want {
			t.Fatalf("%s: view changed with its input: %s, was %s", tc.name, after, want)
		}
	}
}
