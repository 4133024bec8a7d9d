package httpapi

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/crdt"
)

// TestChangeEncoding: an event put together from the shared head and view
// is, byte for byte, the ChangeEvent encoded whole as each stream used to
// encode it.
func TestChangeEncoding(t *testing.T) {
	p, err := peer.Decode("12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN")
	if err != nil {
		t.Fatal(err)
	}
	changes := []concord.Change{
		{Doc: "d", Local: true, Origin: "me", Paths: [][]string{{"a", "b"}, {"n"}}},
		{Doc: "d", Origin: "you", Peer: p},
		{Doc: "<&>\u2028\"", Origin: "\xff", Paths: [][]string{{}, nil, {"<script>"}}},
		{Doc: "t", Paths: [][]string{{"t"}}, Patches: []crdt.SeqPatch{
			{Path: []string{"t"}, Index: 2, Delete: 1, Text: "<é>"},
			{Path: []string{"l"}, Index: 0, Delete: 3, List: true},
			{Path: []string{"l"}, Index: 1, Values: []json.RawMessage{json.RawMessage(`{"a":1}`), json.RawMessage(`"x"`)}, List: true},
		}},
		{},
	}
	values := []json.RawMessage{
		json.RawMessage(`{}`),
		json.RawMessage(`{ "a" : [1, 2,  "<b>&amp;"] ,"t":"\u2028"}`),
		nil,
	}
	for i, ch := range changes {
		for j, v := range values {
			for _, missed := range []uint64{0, 1, 1 << 40} {
				ev := ChangeEvent{Doc: ch.Doc, Local: ch.Local, Origin: string(ch.Origin), Paths: ch.Paths, Patches: patchesOf(ch.Patches), Value: v, Missed: missed}
				if ev.Paths == nil {
					ev.Paths = [][]string{}
				}
				if ch.Peer != "" {
					ev.Peer = ch.Peer.String()
				}
				b, err := json.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf("event: change\ndata: %s\n\n", b)
				view := encodeView(v)
				if view.err != nil {
					t.Fatal(view.err)
				}
				if got := string(appendChange(nil, encodeHead(ch), view.b, missed)); got != want {
					t.Errorf("change %d value %d missed %d:\n got %q\nwant %q", i, j, missed, got, want)
				}
			}
		}
	}
	if v := encodeView(json.RawMessage(`{"a":`)); v.err == nil {
		t.Fatal("an invalid view encoded")
	}
}
