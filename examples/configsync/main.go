// Command configsync is a service whose configuration lives in a Concord
// document: every instance watches the document and applies a change as soon
// as it arrives, with no restart and no config server. An invalid change is
// refused (the last good configuration stays) and reported.
//
//	go run ./examples/configsync --data ./svc-a
//	concord peer --data ./admin --http 127.0.0.1:8080 --doc config --bootstrap <svc listen address>
//	curl -X POST 127.0.0.1:8080/v1/docs/config/ops \
//	     -d '[{"op":"set","path":["interval_ms"],"value":250},{"op":"add","path":["features"],"value":"beta"}]'
//
// The document holds interval_ms (a register, the worker's tick period),
// greeting (a register) and features (a set of strings).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/concord-p2p/concord"
)

type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint(*l) }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "configsync:", err)
		os.Exit(1)
	}
}

func run() error {
	var listen, bootstrap listFlag
	data := flag.String("data", "./configsync-data", "data directory")
	docName := flag.String("doc", "config", "document holding the configuration")
	flag.Var(&listen, "listen", "libp2p listen multiaddr, repeatable (default loopback TCP)")
	flag.Var(&bootstrap, "bootstrap", "peer multiaddr (…/p2p/<id>), repeatable")
	flag.Parse()
	if len(listen) == 0 {
		listen = listFlag{"/ip4/127.0.0.1/tcp/0"}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	node, err := concord.Open(ctx, concord.Config{DataDir: *data, ListenAddrs: listen, Bootstrap: bootstrap})
	if err != nil {
		return err
	}
	defer node.Close()
	doc, err := node.Doc(ctx, *docName)
	if err != nil {
		return err
	}
	for _, a := range node.Addrs() {
		fmt.Printf("listen %s\n", a)
	}
	w := NewWatcher(doc, log)
	svc := &Service{Log: log}
	svc.Run(ctx, w.Watch(ctx))
	return nil
}
