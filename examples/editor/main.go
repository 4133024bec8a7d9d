// Command editor is a collaborative plain-text editor: a Concord peer that
// serves one HTML page with plain JavaScript (no build step) talking to
// the peer's HTTP+SSE API. Open the page of two peers connected to each
// other and type in both: each sees the other's keystrokes as they are
// made, with their cursor and selection in their colour and name; edits
// made while a peer is unreachable are kept and sent when it is back.
//
//	go run ./examples/editor --http 127.0.0.1:8080
//	go run ./examples/editor --data ./editor-b --http 127.0.0.1:8081 --bootstrap <a listen address>
//
// Open http://127.0.0.1:8080/ (and :8081): each tab is someone with a name
// and a colour of its own (?name=Ada&color=%23e6194b picks them). The
// text is the Text at ["text"] of the document "editor" (--doc). The
// page sends each edit as a splice made on the text as of a numbered
// change ("base"), which the peer moves over the changes it applied since;
// it applies the others' edits from the patches of change events, moving
// its unsent edits, its caret and its selection over them (textsync.js).
package main

import (
	"context"
	"errors"
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
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "editor:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var bootstrap, listen listFlag
	fs := flag.NewFlagSet("editor", flag.ContinueOnError)
	data := fs.String("data", "./editor-data", "data directory")
	addr := fs.String("http", "127.0.0.1:8080", "where to serve the page and the API")
	doc := fs.String("doc", "editor", "document holding the text (at [\"text\"])")
	fs.Var(&listen, "listen", "libp2p listen multiaddr, repeatable (default loopback TCP, random port)")
	fs.Var(&bootstrap, "bootstrap", "peer multiaddr (…/p2p/<id>) to keep connected, repeatable")
	presenceTTL := fs.Duration("presence-ttl", 0, "how long other peers keep this peer's presence (who is here, cursors) without a refresh (default and at most 30s)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(listen) == 0 {
		listen = listFlag{"/ip4/127.0.0.1/tcp/0"}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	node, err := concord.Open(ctx, concord.Config{DataDir: *data, ListenAddrs: listen, Bootstrap: bootstrap, PresenceTTL: *presenceTTL})
	if err != nil {
		return fmt.Errorf("open the node: %w", err)
	}
	defer node.Close()
	if _, err := node.Doc(ctx, *doc); err != nil {
		return fmt.Errorf("open document %q: %w", *doc, err)
	}
	return webpeer.Serve(ctx, node, NewHandler(node, *doc), *addr)
}
