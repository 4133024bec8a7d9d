package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/concord-p2p/concord"
)

// ChangeEvent is the data of one "change" event of
// GET /v1/docs/{doc}/events.
type ChangeEvent struct {
	Doc string `json:"doc"`
	// Local is true for this peer's own writes.
	Local bool `json:"local"`
	// Origin is the author replica.
	Origin string `json:"origin"`
	// Peer delivered a remote change (empty for a local one).
	Peer string `json:"peer,omitempty"`
	// Paths changed, sorted.
	Paths [][]string `json:"paths"`
	// Value is the whole document's JSON view right after the change (or
	// later, when changes come faster than the stream is read).
	Value json.RawMessage `json:"value"`
	// Missed counts changes this stream dropped so far because its client
	// read too slowly; Value is still current.
	Missed uint64 `json:"missed,omitempty"`
}

// events streams the document's changes as server-sent events:
//
//	event: change
//	data: {"doc":..., "local":..., "origin":..., "paths":[...], "value":...}
//
// with a ": heartbeat" comment every Options.Heartbeat. The stream ends when
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
	sub := d.Subscribe(a.opts.EventBuffer)
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// An opening comment makes the response (and EventSource.onopen) reach
	// the client before the first change.
	if _, err := fmt.Fprint(w, ": ok\n\n"); err != nil {
		return
	}
	flusher.Flush()
	tick := time.NewTicker(a.opts.Heartbeat)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			_, err = fmt.Fprint(w, ": heartbeat\n\n")
		case ch, ok := <-sub.C:
			if !ok {
				return
			}
			err = writeChange(w, ch, d, sub.Missed())
		}
		if err != nil {
			a.opts.Logger.Debug("event stream ended", "doc", d.Name(), "err", err)
			return
		}
		flusher.Flush()
	}
}

func writeChange(w http.ResponseWriter, ch concord.Change, d *concord.Doc, missed uint64) error {
	ev := ChangeEvent{
		Doc:    ch.Doc,
		Local:  ch.Local,
		Origin: string(ch.Origin),
		Paths:  ch.Paths,
		Value:  d.JSON(),
		Missed: missed,
	}
	if ev.Paths == nil {
		ev.Paths = [][]string{}
	}
	if ch.Peer != "" {
		ev.Peer = ch.Peer.String()
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode change: %w", err)
	}
	_, err = fmt.Fprintf(w, "event: change\ndata: %s\n\n", b)
	return err
}
