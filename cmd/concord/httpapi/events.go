package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/crdt"
)

// ChangeEvent is the data of one "change" event of
// GET /v1/docs/{doc}/events.
type ChangeEvent struct {
	Doc string `json:"doc"`
	// N is the change's number on this peer (concord.Change.N): one more
	// than the change before; a gap means the stream dropped some.
	N uint64 `json:"n"`
	// Local is true for this peer's own writes.
	Local bool `json:"local"`
	// Origin is the author replica.
	Origin string `json:"origin"`
	// Peer delivered a remote change (empty for a local one).
	Peer string `json:"peer,omitempty"`
	// Paths changed, sorted.
	Paths [][]string `json:"paths"`
	// Patches are the change's edits of texts and lists, in order (absent
	// when it made none): applied to the previous views, they give the new
	// ones.
	Patches []Patch `json:"patches,omitempty"`
	// Value is the whole document's JSON view right after the change (or
	// later, when changes come faster than the stream is read).
	Value json.RawMessage `json:"value"`
	// Missed counts changes this stream dropped so far because its client
	// read too slowly; Value is still current.
	Missed uint64 `json:"missed,omitempty"`
}

// changeHead is the part of a ChangeEvent before Value: the same fields,
// tags and order. A document's view is encoded once per change and shared
// by its streams, so each stream writes head, value and missed count
// without encoding the event whole.
type changeHead struct {
	Doc     string     `json:"doc"`
	N       uint64     `json:"n"`
	Local   bool       `json:"local"`
	Origin  string     `json:"origin"`
	Peer    string     `json:"peer,omitempty"`
	Paths   [][]string `json:"paths"`
	Patches []Patch    `json:"patches,omitempty"`
}

// Patch is one edit of a text or a list in a change event: at Index,
// Delete elements (code points of a text) were removed, then Text or
// Values inserted. A text's patch carries "text", a list's "values".
type Patch struct {
	Path   []string           `json:"path"`
	Index  int                `json:"index"`
	Delete int                `json:"delete"`
	Text   *string            `json:"text,omitempty"`
	Values *[]json.RawMessage `json:"values,omitempty"`
}

func patchesOf(ps []crdt.SeqPatch) []Patch {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Patch, len(ps))
	for i, p := range ps {
		out[i] = Patch{Path: p.Path, Index: p.Index, Delete: p.Delete}
		if p.List {
			vs := p.Values
			if vs == nil {
				vs = []json.RawMessage{}
			}
			out[i].Values = &vs
		} else {
			t := p.Text
			out[i].Text = &t
		}
	}
	return out
}

// encodeHead returns the JSON of ch's event up to its value: the encoding
// of changeHead without its closing brace.
func encodeHead(ch concord.Change) []byte {
	h := changeHead{Doc: ch.Doc, N: ch.N, Local: ch.Local, Origin: string(ch.Origin), Paths: ch.Paths, Patches: patchesOf(ch.Patches)}
	if h.Paths == nil {
		h.Paths = [][]string{}
	}
	if ch.Peer != "" {
		h.Peer = ch.Peer.String()
	}
	b, _ := json.Marshal(h) // strings, numbers, a bool and validated JSON values: cannot fail
	return b[:len(b)-1]
}

// appendChange appends the "change" event of head, value and missed to buf:
// the bytes json.Marshal of the ChangeEvent would give, framed as an event.
func appendChange(buf, head, value []byte, missed uint64) []byte {
	buf = append(buf, "event: change\ndata: "...)
	buf = append(buf, head...)
	buf = append(buf, `,"value":`...)
	buf = append(buf, value...)
	if missed > 0 {
		buf = append(buf, `,"missed":`...)
		buf = strconv.AppendUint(buf, missed, 10)
	}
	return append(buf, "}\n\n"...)
}

// events streams the document's changes and presence as server-sent
// events:
//
//	event: change
//	data: {"doc":..., "local":..., "origin":..., "paths":[...], "value":...}
//
//	event: presence
//	data: {"doc":..., "key":"<peer id>[/<client>]", "state":{...} or null}
//
// (one presence event per entry present first, then one per change), with
// a ": heartbeat" comment every Options.Heartbeat. The stream ends when
// the client goes away, the request context ends or the document closes.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	d, ok := a.doc(w, r)
	if !ok {
		return
	}
	if a.streams.Add(1) > int64(a.opts.MaxStreams) {
		a.streams.Add(-1)
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many event streams (limit %d)", a.opts.MaxStreams))
		return
	}
	defer a.streams.Add(-1)
	h, s := a.hubs.join(d)
	defer a.hubs.leave(h, s)
	ps, present := a.presenceStream(d)
	defer ps.Close()
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Connection", "keep-alive")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// An opening comment makes the response (and EventSource.onopen) reach
	// the client before the first change.
	if _, err := fmt.Fprint(w, ": ok\n\n"); err != nil {
		return
	}
	flusher.Flush()
	tick := time.NewTicker(a.opts.Heartbeat)
	defer tick.Stop()
	buf, err := writePresenceEntries(w, nil, d.Name(), present)
	if err != nil {
		return
	}
	flusher.Flush()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			_, err = fmt.Fprint(w, ": heartbeat\n\n")
		case ch, ok := <-s.c:
			if !ok {
				return
			}
			buf, err = writeChange(w, buf[:0], ch, h.latest.Load(), s.missed.Load())
		case ev, ok := <-ps.C:
			if !ok {
				return
			}
			buf, err = writePresence(w, buf[:0], ev, ps.Missed())
		}
		if err != nil {
			a.opts.Logger.Debug("event stream ended", "doc", d.Name(), "err", err)
			return
		}
		flusher.Flush()
	}
}

// writeChange writes ch's event with the latest view v, reusing buf.
func writeChange(w io.Writer, buf []byte, ch *change, v *encodedView, missed uint64) ([]byte, error) {
	if v.err != nil {
		return buf, v.err
	}
	buf = appendChange(buf, ch.head, v.b, missed)
	_, err := w.Write(buf)
	return buf, err
}
