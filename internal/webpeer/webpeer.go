// Package webpeer is what the web examples (todo, editor) share: a peer
// that serves one page, its plain scripts and the demo peer's HTTP+SSE API,
// and the serving loop with the demo peer's startup lines.
package webpeer

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"time"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/cmd/concord/httpapi"
)

// Handler serves index (an html/template given {{.Doc}}) at /, each
// script at its path ("/order.js"), and the HTTP API (package httpapi)
// under /v1/. Nothing is cached by the browser: a page reloaded after an
// upgrade gets the new scripts.
func Handler(node *concord.Node, doc string, index *template.Template, scripts map[string][]byte) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/", httpapi.New(node, httpapi.Options{}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = index.Execute(w, struct{ Doc string }{doc})
	})
	for name, body := range scripts {
		mux.HandleFunc("GET "+name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write(body)
		})
	}
	return mux
}

// Serve serves h on addr until ctx ends, after printing the demo peer's
// startup lines (peer, listen, http, ready); event streams end at shutdown.
func Serve(ctx context.Context, node *concord.Node, h http.Handler, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for HTTP: %w", err)
	}
	apiCtx, cancelAPI := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return apiCtx }, // ends event streams at shutdown
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("peer %s\n", node.ID())
	for _, a := range node.Addrs() {
		fmt.Printf("listen %s\n", a)
	}
	fmt.Printf("http http://%s/\nready\n", ln.Addr())

	select {
	case <-ctx.Done():
	case err = <-served:
	}
	cancelAPI()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		err = errors.Join(err, serr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
