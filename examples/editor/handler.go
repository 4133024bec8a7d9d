package main

import (
	_ "embed"
	"html/template"
	"net/http"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/internal/webpeer"
)

//go:embed index.html
var indexHTML string

var indexTmpl = template.Must(template.New("index").Parse(indexHTML))

// textsyncJS is the page's model of the text (code points, splices, their
// transform over concurrent ones, the diff of a textarea edit, caret
// mapping) and the bookkeeping between the peer's text and the view:
// pure JavaScript, served as is.
//
//go:embed textsync.js
var textsyncJS []byte

// editorJS binds the textarea and the event stream to the API.
//
//go:embed editor.js
var editorJS []byte

// presenceJS shows who is here and where their cursors are.
//
//go:embed presence.js
var presenceJS []byte

// NewHandler serves the editor page at / (its scripts at /textsync.js,
// /presence.js and /editor.js) and the demo peer's HTTP+SSE API (package httpapi) under
// /v1/, for the document doc.
func NewHandler(node *concord.Node, doc string) http.Handler {
	return webpeer.Handler(node, doc, indexTmpl, map[string][]byte{"/textsync.js": textsyncJS, "/presence.js": presenceJS, "/editor.js": editorJS})
}
