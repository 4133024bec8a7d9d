// Command chat is a terminal chat room kept in a Concord document. Every
// line typed is written as messages.<id> = {"from","text","at"}; every peer
// prints the messages it has not shown yet, in id order (ids start with the
// author's clock, so the order is roughly the order of writing).
//
//	go run ./examples/chat --nick ann
//	go run ./examples/chat --nick bob --bootstrap <ann's listen address>
//
// Messages typed while alone are delivered when peers connect; a restarted
// peer (same --data) shows the history it missed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/concord-p2p/concord"
)

type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint(*l) }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// Message is one chat line.
type Message struct {
	From string `json:"from"`
	Text string `json:"text"`
	At   int64  `json:"at"` // Unix milliseconds
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

func run() error {
	var flags = struct{ listen, bootstrap listFlag }{}
	data := flag.String("data", "", "data directory (empty: in memory)")
	nick := flag.String("nick", os.Getenv("USER"), "your name")
	room := flag.String("room", "lobby", "chat room (document name is chat-<room>)")
	flag.Var(&flags.listen, "listen", "libp2p listen multiaddr, repeatable (default loopback TCP)")
	flag.Var(&flags.bootstrap, "bootstrap", "peer multiaddr (…/p2p/<id>), repeatable")
	flag.Parse()
	if len(flags.listen) == 0 {
		flags.listen = listFlag{"/ip4/127.0.0.1/tcp/0"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	node, err := concord.Open(ctx, concord.Config{DataDir: *data, ListenAddrs: flags.listen, Bootstrap: flags.bootstrap})
	if err != nil {
		return err
	}
	defer node.Close()
	doc, err := node.Doc(ctx, "chat-"+*room)
	if err != nil {
		return err
	}
	for _, a := range node.Addrs() {
		fmt.Printf("listen %s\n", a)
	}
	fmt.Printf("room %s as %s; type a line to send, Ctrl-D to leave\n", *room, *nick)
	c := newChat(doc, *nick, node.ID().String())
	lines := make(chan string)
	go readLines(os.Stdin, lines) // blocks in Read until exit; owns nothing
	return c.run(ctx, lines, os.Stdout)
}

func readLines(r io.Reader, out chan<- string) {
	defer close(out)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		out <- sc.Text()
	}
}

// chat shows and sends the messages of one room.
type chat struct {
	doc  *concord.Doc
	nick string
	tag  string // disambiguates ids of peers writing in the same millisecond
	seen map[string]bool
	now  func() time.Time
}

func newChat(doc *concord.Doc, nick, peerID string) *chat {
	return &chat{doc: doc, nick: nick, tag: peerID[max(0, len(peerID)-6):], seen: map[string]bool{}, now: time.Now}
}

// run prints the history, then new messages as they arrive, and sends each
// line until lines closes or ctx ends.
func (c *chat) run(ctx context.Context, lines <-chan string, out io.Writer) error {
	sub := c.doc.Subscribe(256)
	defer sub.Close()
	c.show(out)
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-sub.C:
			if !ok {
				return nil
			}
			c.show(out)
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			if err := c.send(ctx, line); err != nil {
				fmt.Fprintf(out, "! not sent: %v\n", err)
			}
		}
	}
}

// send writes one message.
func (c *chat) send(ctx context.Context, text string) error {
	now := c.now()
	id := fmt.Sprintf("%013d-%s", now.UnixMilli(), c.tag)
	return c.doc.Set(ctx, []string{"messages", id}, Message{From: c.nick, Text: text, At: now.UnixMilli()})
}

// show prints the messages not shown yet, in id order. (A dropped
// subscription event is harmless: the whole map is re-read.)
func (c *chat) show(out io.Writer) {
	raw, ok := c.doc.Get("messages")
	if !ok {
		return
	}
	var msgs map[string]Message
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return // someone wrote something else there; nothing to show
	}
	ids := make([]string, 0, len(msgs))
	for id := range msgs {
		if !c.seen[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		c.seen[id] = true
		m := msgs[id]
		fmt.Fprintf(out, "%s <%s> %s\n", time.UnixMilli(m.At).Format("15:04"), m.From, m.Text)
	}
}
