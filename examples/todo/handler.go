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

// orderJS is the page's model of the document (which items show in which
// order, and the batches that add, move, delete and repair them): plain
// JavaScript, served as is.
//
//go:embed order.js
var orderJS []byte

// NewHandler serves the todo page at / (and its script at /order.js) and
// the demo peer's HTTP+SSE API (package httpapi) under /v1/.
func NewHandler(node *concord.Node, doc string) http.Handler {
	return webpeer.Handler(node, doc, indexTmpl, map[string][]byte{"/order.js": orderJS})
}
