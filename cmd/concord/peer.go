package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mattn/go-isatty"
	"github.com/multiformats/go-multiaddr"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/cmd/concord/httpapi"
)

const peerUsage = `Usage: concord peer [--data DIR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]...
                    [--doc NAME]... [--http HOST:PORT] [--http-origin ORIGIN]...
                    [--http-token FILE] [--mdns] [--psk FILE] [--writers FILE]

Run a Concord peer. On start it prints, one per line: "peer <id>",
"listen <multiaddr>/p2p/<id>" for each address, "http <url>" when --http is
set, then "ready". SIGINT/SIGTERM shut it down cleanly. When stdin is a
terminal it reads commands (type "help").

Flags:
  --data DIR            data directory (Pebble; default ./concord-data)
  --listen MULTIADDR    libp2p listen address, repeatable (default
                        /ip4/0.0.0.0/tcp/0 and /ip4/0.0.0.0/udp/0/quic-v1;
                        TCP only with --psk)
  --bootstrap MULTIADDR peer to keep connected (…/p2p/<id>), repeatable
  --doc NAME            document to open at start, repeatable; the first one
                        is the REPL's document
  --http HOST:PORT      serve the HTTP+SSE API there (port 0: any free port;
                        the "http" line shows the bound URL). Off by default.
                        Only requests whose Host names that address (or
                        localhost, 127.0.0.1, [::1] on loopback) are served,
                        and a browser page only from the peer's own origin
                        or an --http-origin; others get 403.
  --http-origin ORIGIN  a web origin whose pages may use the API (CORS),
                        repeatable: http://localhost:3000
  --http-token FILE     a file holding one line, a token that every route but
                        /metrics then requires as "Authorization: Bearer
                        <token>" (401 otherwise). Without it a non-loopback
                        --http prints a warning.
  --mdns                also find peers on the local network (multicast DNS);
                        peers of the documents are found through the DHT of
                        Concord peers in any case
  --psk FILE            private swarm key (libp2p swarm.key format:
                        /key/swarm/psk/1.0.0/, /base16/, 64 hex digits)
  --writers FILE        one peer ID per line ("#" comments): the only authors
                        whose deltas this peer accepts for its documents

Exit codes: 0 clean shutdown; 1 runtime error (store, network); 2 usage
error, including an unreadable or malformed --psk, --writers or
--http-token file.
`

// peerFlags is the command line of "concord peer".
type peerFlags struct {
	data      string
	listen    listFlag
	bootstrap listFlag
	docs      listFlag
	http      string
	origins   listFlag
	tokenFile string
	mdns      bool
	psk       string
	writers   string

	// Set by config from origins and tokenFile.
	apiOrigins []string
	apiToken   string
}

func runPeer(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var pf peerFlags
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	fs.StringVar(&pf.data, "data", concord.DefaultConfig().DataDir, "")
	fs.Var(&pf.listen, "listen", "")
	fs.Var(&pf.bootstrap, "bootstrap", "")
	fs.Var(&pf.docs, "doc", "")
	fs.StringVar(&pf.http, "http", "", "")
	fs.Var(&pf.origins, "http-origin", "")
	fs.StringVar(&pf.tokenFile, "http-token", "", "")
	fs.BoolVar(&pf.mdns, "mdns", false, "")
	fs.StringVar(&pf.psk, "psk", "", "")
	fs.StringVar(&pf.writers, "writers", "", "")
	if err := parseFlags(fs, peerUsage, args, stdout, stderr); err != nil {
		return err
	}
	cfg, err := pf.config()
	if err != nil {
		return badUsage(stderr, peerUsage, err)
	}
	cfg.Logger = newLogger(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := startPeer(ctx, cfg, pf, stdout, stderr)
	if err != nil {
		if errors.Is(err, concord.ErrConfig) {
			return badUsage(stderr, peerUsage, err)
		}
		return err
	}
	var replDone <-chan struct{}
	if f, ok := stdin.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		replDone = startREPL(ctx, p.node, pf.docs, f, stdout)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case <-replDone:
	case runErr = <-p.httpErr:
	}
	stop()
	return errors.Join(runErr, p.close())
}

// config turns the flags into a node configuration; errors are usage errors.
func (pf *peerFlags) config() (concord.Config, error) {
	cfg := concord.DefaultConfig()
	cfg.DataDir = pf.data
	cfg.MDNS = pf.mdns
	if pf.psk != "" {
		psk, err := readPSK(pf.psk)
		if err != nil {
			return cfg, err
		}
		cfg.PSK = psk
		// A private network runs over TCP only.
		var tcp []string
		for _, a := range cfg.ListenAddrs {
			if strings.Contains(a, "/tcp/") {
				tcp = append(tcp, a)
			}
		}
		cfg.ListenAddrs = tcp
	}
	if len(pf.listen) > 0 {
		cfg.ListenAddrs = pf.listen
	}
	for _, a := range cfg.ListenAddrs {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return cfg, fmt.Errorf("--listen %q: %v", a, err)
		}
	}
	for _, a := range pf.bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return cfg, fmt.Errorf("--bootstrap %q: want a multiaddr ending in /p2p/<id>: %v", a, err)
		}
	}
	cfg.Bootstrap = pf.bootstrap
	if pf.writers != "" {
		ids, err := readWriters(pf.writers)
		if err != nil {
			return cfg, err
		}
		cfg.Writers = ids
	}
	if pf.http != "" {
		if _, _, err := net.SplitHostPort(pf.http); err != nil {
			return cfg, fmt.Errorf("--http %q: want HOST:PORT: %v", pf.http, err)
		}
	} else if len(pf.origins) > 0 || pf.tokenFile != "" {
		return cfg, errors.New("--http-origin and --http-token need --http")
	}
	for _, o := range pf.origins {
		n, err := httpapi.ParseOrigin(o)
		if err != nil {
			return cfg, fmt.Errorf("--http-origin: %w", err)
		}
		pf.apiOrigins = append(pf.apiOrigins, n)
	}
	if pf.tokenFile != "" {
		tok, err := readToken(pf.tokenFile)
		if err != nil {
			return cfg, err
		}
		pf.apiToken = tok
	}
	if os.Getenv("CONCORD_TEST_FAST_GOSSIP") == "1" {
		cfg.FastGossip = true
		cfg.SummaryInterval = 200 * time.Millisecond
	}
	cfg.Gater = testControlGater() // nil unless CONCORD_TEST_CONTROL=1 (testcontrol.go)
	return cfg, nil
}

func newLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("CONCORD_LOG_LEVEL"))); err != nil {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// runningPeer is a started node with its HTTP server.
type runningPeer struct {
	node      *concord.Node
	srv       *http.Server
	cancelAPI context.CancelFunc
	httpErr   chan error // receives Serve's error; closed when Serve returned
	fresh     freshConns
}

// freshConns tracks the HTTP connections that have not sent a request yet.
// Browsers open such connections ahead of need; http.Server.Shutdown counts
// them as busy for their first 5 s, so they are closed when it starts
// (after it closed the listener): shutdown does not wait on a browser.
type freshConns struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (f *freshConns) track(c net.Conn, st http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st != http.StateNew {
		delete(f.m, c)
		return
	}
	if f.m == nil {
		f.m = map[net.Conn]struct{}{}
	}
	f.m[c] = struct{}{}
}

func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.m {
		_ = c.Close()
	}
}

// startPeer opens the node and its documents, starts the HTTP API and
// prints the startup lines.
func startPeer(ctx context.Context, cfg concord.Config, pf peerFlags, stdout, stderr io.Writer) (_ *runningPeer, err error) {
	node, err := concord.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	p := &runningPeer{node: node, httpErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			_ = node.Close()
		}
	}()
	for _, name := range pf.docs {
		if _, err := node.Doc(ctx, name); err != nil {
			return nil, fmt.Errorf("open document %q: %w", name, err)
		}
	}
	var url string
	if pf.http != "" {
		ln, err := net.Listen("tcp", pf.http)
		if err != nil {
			return nil, fmt.Errorf("--http: %w", err)
		}
		bound := ln.Addr().(*net.TCPAddr)
		url = "http://" + bound.String()
		if w := httpWarning(pf.http, bound, pf.apiToken); w != "" {
			fmt.Fprintln(stderr, "concord: warning: "+w)
		}
		apiCtx, cancel := context.WithCancel(context.Background())
		p.cancelAPI = cancel
		p.srv = &http.Server{
			Handler: withTestControl(httpapi.New(node, httpapi.Options{
				Logger:  cfg.Logger,
				Origins: pf.apiOrigins,
				Hosts:   boundHosts(pf.http, bound),
				Token:   pf.apiToken,
			}), node, cfg.Gater),
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return apiCtx },
			ConnState:         p.fresh.track,
		}
		p.srv.RegisterOnShutdown(p.fresh.closeAll)
		go func() {
			defer close(p.httpErr)
			if err := p.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				p.httpErr <- fmt.Errorf("http: %w", err)
			}
		}()
	} else {
		close(p.httpErr)
		p.httpErr = nil // never selected
	}
	fmt.Fprintf(stdout, "peer %s\n", node.ID())
	for _, a := range node.Addrs() {
		fmt.Fprintf(stdout, "listen %s\n", a)
	}
	if url != "" {
		fmt.Fprintf(stdout, "http %s\n", url)
	}
	fmt.Fprintln(stdout, "ready")
	return p, nil
}

// httpWarning is the startup warning for an API bound to a non-loopback
// address without a token ("" when there is nothing to warn about).
func httpWarning(flag string, bound *net.TCPAddr, token string) string {
	if bound.IP.IsLoopback() || token != "" {
		return ""
	}
	return fmt.Sprintf("--http %s is not a loopback address and there is no --http-token: anyone who can reach %s can read and change this peer's documents", flag, bound)
}

// boundHosts are the Host values accepted besides the connection's own
// address (which the API always accepts): the name given to --http, with
// the port actually bound ("myhost.lan:8080", "localhost:41234").
func boundHosts(flag string, bound *net.TCPAddr) []string {
	host, _, _ := net.SplitHostPort(flag)
	if host == "" || net.ParseIP(host) != nil {
		return nil // all interfaces, or an address: the connection's own covers it
	}
	return []string{net.JoinHostPort(host, strconv.Itoa(bound.Port))}
}

// close stops the HTTP server (ending open event streams first), then the
// node.
func (p *runningPeer) close() error {
	var errs []error
	if p.srv != nil {
		p.cancelAPI()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
		for range p.httpErr { // wait for Serve to return
		}
	}
	if err := p.node.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close node: %w", err))
	}
	return errors.Join(errs...)
}
