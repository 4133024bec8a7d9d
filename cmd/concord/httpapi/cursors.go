package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/concord-p2p/concord"
)

// Stable cursors over HTTP, beside DESIGN's routes: a web page that shows
// where other people's carets are puts cursors in their presence (a cursor
// survives concurrent edits; an index does not), and turns the cursors it
// receives back into indexes of its view.
//
//	POST /v1/docs/{doc}/cursors  {"path": [...], "base": n, "indexes": [i, ...]}
//	                             → {"cursors": ["<cursor>", ...], "n": m}
//	POST /v1/docs/{doc}/indexes  {"path": [...], "cursors": ["<cursor>", ...]}
//	                             → {"indexes": [i, ...], "n": m}
//
// "base" (optional) names the change whose view the indexes are on (as a
// splice's base does); "end" is the cursor past the last element. Indexes
// come back on the view after change m, -1 for a cursor unknown here. A
// cursor of a deleted element gives the index it would have.

// maxCursors bounds the cursors or indexes of one request.
const maxCursors = 1024

type cursorsBody struct {
	Path    json.RawMessage `json:"path"`
	Base    uint64          `json:"base"`
	Indexes []int           `json:"indexes"`
	Cursors []string        `json:"cursors"`
}

type cursorsView struct {
	Cursors []string `json:"cursors"`
	N       uint64   `json:"n"`
}

type indexesView struct {
	Indexes []int  `json:"indexes"`
	N       uint64 `json:"n"`
}

// readCursorsBody decodes the body of both routes, or writes the error.
func readCursorsBody(w http.ResponseWriter, r *http.Request) (b cursorsBody, path []string, ok bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 256<<10))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body over 256 KiB")
		} else {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		}
		return b, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "bad body: "+err.Error())
		return b, nil, false
	}
	if path, err = decodePath(b.Path); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return b, nil, false
	}
	if len(b.Indexes) > maxCursors || len(b.Cursors) > maxCursors {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("at most %d cursors or indexes", maxCursors))
		return b, nil, false
	}
	return b, path, true
}

func (a *API) postCursors(w http.ResponseWriter, r *http.Request) {
	b, path, ok := readCursorsBody(w, r)
	if !ok {
		return
	}
	if b.Indexes == nil || b.Cursors != nil {
		writeError(w, http.StatusBadRequest, `needs "indexes" (and no "cursors")`)
		return
	}
	d, ok := a.doc(w, r)
	if !ok {
		return
	}
	n := d.Position()
	out := cursorsView{Cursors: make([]string, len(b.Indexes)), N: n}
	for i, idx := range b.Indexes {
		if idx < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("index %d is negative", i))
			return
		}
		c, err := d.CursorAt(b.Base, path, idx)
		if err != nil {
			writeError(w, statusOf(err), fmt.Sprintf("index %d: %v", i, err))
			return
		}
		out.Cursors[i] = c.String()
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) postIndexes(w http.ResponseWriter, r *http.Request) {
	b, path, ok := readCursorsBody(w, r)
	if !ok {
		return
	}
	if b.Cursors == nil || b.Indexes != nil || b.Base != 0 {
		writeError(w, http.StatusBadRequest, `needs "cursors" (and no "indexes" or "base")`)
		return
	}
	cs := make([]concord.Cursor, len(b.Cursors))
	for i, s := range b.Cursors {
		c, err := concord.ParseCursor(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("cursor %d: %v", i, err))
			return
		}
		cs[i] = c
	}
	d, ok := a.doc(w, r)
	if !ok {
		return
	}
	idx, n := d.CursorIndexes(path, cs)
	writeJSON(w, http.StatusOK, indexesView{Indexes: idx, N: n})
}
