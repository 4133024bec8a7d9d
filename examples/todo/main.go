// Command todo is a collaborative todo list: a Concord peer that serves a
// plain HTML+JS page (no build step) talking to the peer's HTTP+SSE API.
// Open the page of two peers connected to each other: an item added in one
// appears in the other at once, and edits made while a peer is offline merge
// when it reconnects.
//
//	go run ./examples/todo --http 127.0.0.1:8080
//	go run ./examples/todo --data ./todo-b --http 127.0.0.1:8081 --bootstrap <a listen address>
//
// The list is the document "todo" (--doc): items.<id>.text and
// items.<id>.done are registers, so concurrent edits of one item's text and
// of its done flag both survive; order is a list of the item ids, in the
// order shown. Adding an item inserts its id in the same batch; moving one
// (the up and down buttons, or drag and drop) is one batch that deletes
// the id and inserts it at its new place. When two peers move one item at
// once, the merged list holds its id twice: the page shows it where it
// comes first and deletes the later one (see order.js).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/internal/webpeer"
)

type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint(*l) }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "todo:", err)
		os.Exit(1)
	}
}

func run() error {
	var bootstrap, listen listFlag
	data := flag.String("data", "./todo-data", "data directory")
	addr := flag.String("http", "127.0.0.1:8080", "where to serve the page and the API")
	doc := flag.String("doc", "todo", "document holding the list")
	flag.Var(&listen, "listen", "libp2p listen multiaddr, repeatable (default loopback TCP, random port)")
	flag.Var(&bootstrap, "bootstrap", "peer multiaddr (…/p2p/<id>) to keep connected, repeatable")
	flag.Parse()
	if len(listen) == 0 {
		listen = listFlag{"/ip4/127.0.0.1/tcp/0"}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	node, err := concord.Open(ctx, concord.Config{DataDir: *data, ListenAddrs: listen, Bootstrap: bootstrap})
	if err != nil {
		return err
	}
	defer node.Close()
	if _, err := node.Doc(ctx, *doc); err != nil {
		return err
	}
	return webpeer.Serve(ctx, node, NewHandler(node, *doc), *addr)
}
