package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/concord-p2p/concord"
)

// Presence over HTTP (DESIGN.md, "Presence"):
//
//	PUT    /v1/docs/{doc}/presence[/{client}]   body: a JSON object of at most 4 KiB → 200, answers like GET
//	DELETE /v1/docs/{doc}/presence[/{client}]   clears it → 200, answers like GET
//	GET    /v1/docs/{doc}/presence              {"peers": {"<peer id>[/<client>]": {"state": <json>, "age_ms": n}}}
//
// An entry set over HTTP, the peer's own or a client's, holds for
// Options.PresenceLease (30 s) unless PUT again: a page refreshes it by
// PUTting every few seconds (10 s, say), and a page that died vanishes
// from every view once its lease ends. Event streams carry a "presence"
// event per change (see presenceEvent).

// DefaultPresenceLease is the default of Options.PresenceLease.
const DefaultPresenceLease = 30 * time.Second

// presenceView is the body of GET /v1/docs/{doc}/presence.
type presenceView struct {
	Peers map[string]presenceEntryView `json:"peers"`
}

type presenceEntryView struct {
	State json.RawMessage `json:"state"`
	AgeMS int64           `json:"age_ms"`
}

// PresenceEvent is the data of one "presence" event of
// GET /v1/docs/{doc}/events.
type PresenceEvent struct {
	Doc string `json:"doc"`
	// Key is "<peer id>" or "<peer id>/<client>".
	Key string `json:"key"`
	// State is the entry's JSON object, null when it was cleared or
	// expired.
	State json.RawMessage `json:"state"`
	// Missed counts presence events this stream dropped so far because its
	// client read too slowly (GET the presence to catch up).
	Missed uint64 `json:"missed,omitempty"`
}

func (a *API) routePresence() {
	a.mux.HandleFunc("GET /v1/docs/{doc}/presence", a.getPresence)
	a.mux.HandleFunc("PUT /v1/docs/{doc}/presence", a.putPresence)
	a.mux.HandleFunc("PUT /v1/docs/{doc}/presence/{client}", a.putPresence)
	a.mux.HandleFunc("DELETE /v1/docs/{doc}/presence", a.deletePresence)
	a.mux.HandleFunc("DELETE /v1/docs/{doc}/presence/{client}", a.deletePresence)
}

func (a *API) getPresence(w http.ResponseWriter, r *http.Request) {
	d, ok := a.doc(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, presenceOf(d))
}

func (a *API) putPresence(w http.ResponseWriter, r *http.Request) {
	d, ok := a.doc(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, concord.MaxPresenceBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	if len(body) > concord.MaxPresenceBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("presence state over %d bytes", concord.MaxPresenceBytes))
		return
	}
	if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, "presence state is not JSON")
		return
	}
	client := r.PathValue("client")
	if err := d.SetClientPresence(client, json.RawMessage(body), a.opts.PresenceLease); err != nil {
		writeError(w, statusOf(err), fmt.Sprintf("set presence %q: %v", client, err))
		return
	}
	writeJSON(w, http.StatusOK, presenceOf(d))
}

func (a *API) deletePresence(w http.ResponseWriter, r *http.Request) {
	d, ok := a.doc(w, r)
	if !ok {
		return
	}
	client := r.PathValue("client")
	if err := d.ClearClientPresence(client); err != nil {
		writeError(w, statusOf(err), fmt.Sprintf("clear presence %q: %v", client, err))
		return
	}
	writeJSON(w, http.StatusOK, presenceOf(d))
}

func presenceOf(d *concord.Doc) presenceView {
	v := presenceView{Peers: map[string]presenceEntryView{}}
	for _, e := range d.Presence() {
		v.Peers[e.Key] = presenceEntryView{State: e.State, AgeMS: e.Age.Milliseconds()}
	}
	return v
}

// presenceStream is an event stream's presence: a subscription to the
// document's presence, bounded by Options.EventBuffer (a stream whose
// client reads too slowly drops events, counted in its "missed" field and
// in concord_dropped_total{queue="presence",reason="subscription_full"}).
// The stream starts with one event per entry present, so a page needs no
// GET to catch up.
func (a *API) presenceStream(d *concord.Doc) (*concord.PresenceSubscription, []concord.PresenceEntry) {
	s := d.SubscribePresence(a.opts.EventBuffer)
	return s, d.Presence()
}

// appendPresence appends the "presence" event of ev to buf.
func appendPresence(buf []byte, ev PresenceEvent) []byte {
	b, _ := json.Marshal(ev) // strings, a number and a validated JSON object: cannot fail
	buf = append(buf, "event: presence\ndata: "...)
	buf = append(buf, b...)
	return append(buf, "\n\n"...)
}

// writePresence writes ev's event, reusing buf.
func writePresence(w io.Writer, buf []byte, ev concord.PresenceEvent, missed uint64) ([]byte, error) {
	buf = appendPresence(buf, PresenceEvent{Doc: ev.Doc, Key: ev.Key, State: ev.State, Missed: missed})
	_, err := w.Write(buf)
	return buf, err
}

// writePresenceEntries writes one event per entry, as a stream starts.
func writePresenceEntries(w io.Writer, buf []byte, doc string, es []concord.PresenceEntry) ([]byte, error) {
	for _, e := range es {
		var err error
		if buf, err = writePresence(w, buf[:0], concord.PresenceEvent{Doc: doc, Key: e.Key, State: e.State}, 0); err != nil {
			return buf, err
		}
	}
	return buf, nil
}
