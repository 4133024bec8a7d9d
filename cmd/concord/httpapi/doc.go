// Package httpapi is the HTTP+SSE API of the Concord demo peer
// (cmd/concord). It exposes one [concord.Node] over JSON, exactly the routes
// of the "Demo peer contract" in DESIGN.md:
//
//	GET  /v1/status             node identity, addresses, peers, open documents
//	GET  /v1/docs/{doc}         a document's JSON view, version vector, outbox depth
//	POST /v1/docs/{doc}/ops     a batch of ops, applied as one transaction
//	GET  /v1/docs/{doc}/events  text/event-stream, one "change" event per change,
//	                            one "presence" event per presence change
//	GET  /metrics               the node's Prometheus registry
//
// and presence (ephemeral, see presence.go):
//
//	PUT    /v1/docs/{doc}/presence[/{client}]  set this peer's (or a client's) entry, a JSON object ≤ 4 KiB
//	DELETE /v1/docs/{doc}/presence[/{client}]  clear it
//	GET    /v1/docs/{doc}/presence             every entry the peer sees, with its age
//
// Every error is a JSON object {"error": "..."} with a 4xx (or, for a
// failure of the node itself, 5xx) status.
//
// # Access
//
// Every route is guarded (see the access fields of [Options]): a Host
// header that does not name the API (DNS rebinding) and an Origin header
// that is neither the API's own nor one of Options.Origins (a page of
// another site) are refused with 403; allowed origins get CORS headers and
// preflight answers. With Options.Token every route but /metrics needs
// "Authorization: Bearer <token>" (401 otherwise).
//
// # Events
//
// All event streams of one document share one subscription to it: a
// fan-out computes the document's JSON view at most once per change and
// hands the change to every stream's bounded queue. A stream whose queue is
// full drops the change and counts it in its "missed" field (and in the
// node's concord_dropped_total{queue="subscription"}); each event carries
// the latest view, so the next one is current.
//
// # Ownership and imports
//
// The package owns the HTTP contract of the demo peer: routes, the JSON of
// requests, responses and events, the access checks, event streams and
// their limits. It holds no document logic: every read and write goes
// through the public API of the root package. It may import the root
// package concord, crdt (ops, version vectors, error values) and the
// Prometheus client; never net or store. cmd/concord and the examples
// import it.
//
// # Usage
//
//	node, _ := concord.Open(ctx, cfg)
//	api := httpapi.New(node, httpapi.Options{})
//	srv := &http.Server{Handler: api}
//
// Event streams end when the request's context ends; give the server a
// BaseContext that is cancelled before [http.Server.Shutdown] so that open
// streams do not hold shutdown up.
package httpapi
