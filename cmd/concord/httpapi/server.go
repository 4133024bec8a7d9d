package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/concord-p2p/concord"
)

// MaxBodyBytes bounds the body of POST /v1/docs/{doc}/ops; a larger body is
// answered with 413.
const MaxBodyBytes = 1 << 20

// DefaultHeartbeat is the period of the SSE heartbeat comment.
const DefaultHeartbeat = 15 * time.Second

// Options configures the API. The zero value is ready to use.
type Options struct {
	// Heartbeat is the period of the ": heartbeat" comment on event streams,
	// which keeps proxies and browsers from timing the stream out. Default
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// Gatherer serves /metrics. Default: the node's own registry
	// (Node.Registry); /metrics answers 404 when there is none.
	Gatherer prometheus.Gatherer
	// EventBuffer bounds the changes queued for each event stream, and for
	// the one subscription that feeds all streams of a document. A stream
	// whose client reads too slowly misses changes (each event carries the
	// whole document value, so the next one repairs the view). Default 64.
	EventBuffer int
	// MaxStreams bounds the event streams open at once (over all
	// documents); one more is refused with 429. Default 256.
	MaxStreams int
	// Logger. Default: discard.
	Logger *slog.Logger
	// PresenceLease is how long a presence entry set over HTTP holds
	// without another PUT (see Doc.SetClientPresence). Default
	// DefaultPresenceLease.
	PresenceLease time.Duration

	// Access. Every request, on every route (preflights included), passes
	// two checks, each refused with 403:
	//
	//   - its Host must name the API: the local address the connection
	//     arrived on ("127.0.0.1:8080"; when that address is a loopback one,
	//     also "localhost", "127.0.0.1" and "[::1]" with its port), or one
	//     of Hosts. This defeats DNS rebinding: a hostile name resolved to
	//     the peer's address still sends its own name as Host.
	//   - if it has an Origin header, that must be one of the API's own
	//     origins ("http://" + an accepted Host) or one of Origins. "null"
	//     is a foreign origin. Allowed origins get CORS headers, and their
	//     preflights (OPTIONS with Access-Control-Request-Method) are
	//     answered with 204. Requests without Origin (not from a browser
	//     page, or same-origin GETs) are not affected.

	// Origins are web origins allowed besides the API's own, as browsers
	// send them: "http://localhost:3000" (see ParseOrigin; entries that do
	// not parse match nothing).
	Origins []string
	// Hosts are Host header values accepted besides the connection's local
	// address: "name:port", or a name alone for port 80. For an API bound
	// to a host name ("myhost.lan:8080").
	Hosts []string
	// Token, when set, is required as "Authorization: Bearer <Token>" on
	// every route except /metrics; a request without it is refused with 401.
	// Preflights are answered without it (browsers never send credentials
	// on them).
	Token string
}

// API serves one node. Create it with New.
type API struct {
	node    *concord.Node
	opts    Options
	mux     *http.ServeMux
	access  access
	streams atomic.Int64 // event streams open
	hubs    *hubs        // per document with event streams: the fan-out of its changes
}

var _ http.Handler = (*API)(nil)

// New returns the API of node.
func New(node *concord.Node, opts Options) *API {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 64
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PresenceLease <= 0 {
		opts.PresenceLease = DefaultPresenceLease
	}
	if opts.Gatherer == nil {
		if reg := node.Registry(); reg != nil {
			opts.Gatherer = reg
		}
	}
	a := &API{node: node, opts: opts, mux: http.NewServeMux(), access: newAccess(opts)}
	a.hubs = newHubs(node, opts.EventBuffer, (*concord.Doc).JSON)
	a.mux.HandleFunc("GET /v1/status", a.status)
	a.mux.HandleFunc("GET /v1/docs/{doc}", a.getDoc)
	a.mux.HandleFunc("POST /v1/docs/{doc}/ops", a.postOps)
	a.mux.HandleFunc("GET /v1/docs/{doc}/events", a.events)
	a.mux.HandleFunc("POST /v1/docs/{doc}/cursors", a.postCursors)
	a.mux.HandleFunc("POST /v1/docs/{doc}/indexes", a.postIndexes)
	a.routePresence()
	if opts.Gatherer != nil {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
	})
	return a
}

// ServeHTTP implements http.Handler: the access checks of Options, then
// the routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.access.guard(w, r, a.mux) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
