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
	// EventBuffer is the subscription buffer of each event stream. A stream
	// whose client reads too slowly misses changes (each event carries the
	// whole document value, so the next one repairs the view). Default 64.
	EventBuffer int
	// MaxStreams bounds the event streams open at once (over all
	// documents); one more is refused with 429. Default 256.
	MaxStreams int
	// Logger. Default: discard.
	Logger *slog.Logger
}

// API serves one node. Create it with New.
type API struct {
	node    *concord.Node
	opts    Options
	mux     *http.ServeMux
	streams atomic.Int64 // event streams open
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
	if opts.Gatherer == nil {
		if reg := node.Registry(); reg != nil {
			opts.Gatherer = reg
		}
	}
	a := &API{node: node, opts: opts, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /v1/status", a.status)
	a.mux.HandleFunc("GET /v1/docs/{doc}", a.getDoc)
	a.mux.HandleFunc("POST /v1/docs/{doc}/ops", a.postOps)
	a.mux.HandleFunc("GET /v1/docs/{doc}/events", a.events)
	if opts.Gatherer != nil {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
	})
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

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
