package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/crdt"
)

const replHelp = `Commands (PATH is dot-separated, like items.milk):
  set PATH JSON   write a value (a bare word is taken as a string)
  get [PATH]      show the document, or what PATH holds
  del PATH        delete what PATH holds
  inc PATH [N]    add N (default 1, may be negative) to a counter
  add PATH V      add V to a set
  rm PATH V       remove V from a set
  splice PATH I N [X]  at index I of a text or list delete N, then insert X:
                  text (a JSON string for spaces and escapes), or a JSON
                  list of values for a list; without X a pure delete
  doc NAME        switch to (and open) document NAME
  peers           list peers and their connection state
  status          this peer and the current document's sync state
  help            this help
  quit            shut the peer down
`

// errQuit ends the REPL.
var errQuit = errors.New("quit")

// repl runs commands against one node; it is not safe for concurrent use.
type repl struct {
	node *concord.Node
	doc  *concord.Doc
	out  io.Writer
}

// startREPL reads commands from in until "quit", end of input or ctx ends;
// the returned channel is closed then. The goroutine reading in may stay
// blocked in Read until the process exits (a terminal read cannot be
// interrupted); it owns nothing else.
func startREPL(ctx context.Context, node *concord.Node, docs []string, in io.Reader, out io.Writer) <-chan struct{} {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := newREPL(ctx, node, docs, out)
		r.loop(ctx, lines)
	}()
	return done
}

func newREPL(ctx context.Context, node *concord.Node, docs []string, out io.Writer) *repl {
	r := &repl{node: node, out: out}
	if len(docs) > 0 {
		if err := r.exec(ctx, "doc "+docs[0]); err != nil {
			fmt.Fprintf(out, "error: %v\n", err)
		}
	}
	fmt.Fprintln(out, `type "help" for commands`)
	return r
}

// loop executes lines until quit, the end of lines or ctx ends.
func (r *repl) loop(ctx context.Context, lines <-chan string) {
	for {
		r.prompt()
		select {
		case <-ctx.Done():
			return
		case line, ok := <-lines:
			if !ok {
				fmt.Fprintln(r.out)
				return
			}
			if err := r.exec(ctx, line); errors.Is(err, errQuit) {
				return
			} else if err != nil {
				fmt.Fprintf(r.out, "error: %v\n", err)
			}
		}
	}
}

func (r *repl) prompt() {
	name := "-"
	if r.doc != nil {
		name = r.doc.Name()
	}
	fmt.Fprintf(r.out, "%s> ", name)
}

// exec runs one command line.
func (r *repl) exec(ctx context.Context, line string) error {
	cmd, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	rest = strings.TrimSpace(rest)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch cmd {
	case "":
		return nil
	case "help", "?":
		fmt.Fprint(r.out, replHelp)
		return nil
	case "quit", "exit":
		return errQuit
	case "peers":
		peers := r.node.Peers()
		if len(peers) == 0 {
			fmt.Fprintln(r.out, "no peers")
		}
		for _, p := range peers {
			fmt.Fprintf(r.out, "%s %s since %s\n", p.ID, p.State, p.Since.Format(time.RFC3339))
		}
		return nil
	case "doc":
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return errors.New("usage: doc NAME")
		}
		d, err := r.node.Doc(ctx, rest)
		if err != nil {
			return err
		}
		r.doc = d
		fmt.Fprintf(r.out, "document %s\n", rest)
		return nil
	}
	if cmd == "status" {
		fmt.Fprintf(r.out, "peer %s\n", r.node.ID())
		for _, a := range r.node.Addrs() {
			fmt.Fprintf(r.out, "listen %s\n", a)
		}
		fmt.Fprintf(r.out, "docs %s\n", strings.Join(r.node.Docs(), " "))
	}
	if r.doc == nil {
		if cmd == "status" {
			return nil
		}
		if !isDocCommand(cmd) {
			return fmt.Errorf("unknown command %q (type help)", cmd)
		}
		return errors.New("no document selected: use doc NAME")
	}
	return r.docCommand(ctx, cmd, rest)
}

func isDocCommand(cmd string) bool {
	switch cmd {
	case "set", "get", "del", "inc", "add", "rm", "splice":
		return true
	}
	return false
}

// docCommand runs a command on the current document.
func (r *repl) docCommand(ctx context.Context, cmd, rest string) error {
	d := r.doc
	pathArg, val, _ := strings.Cut(rest, " ")
	val = strings.TrimSpace(val)
	if cmd == "status" {
		st := d.Status()
		vv, _ := json.Marshal(st.Version)
		fmt.Fprintf(r.out, "doc %s version %s outbox %d topic peers %d\n", d.Name(), vv, st.Outbox, len(st.Peers))
		return nil
	}
	if cmd == "get" {
		if pathArg == "" {
			fmt.Fprintf(r.out, "%s\n", d.JSON())
			return nil
		}
		path, err := parsePath(pathArg)
		if err != nil {
			return err
		}
		v, ok := d.Get(path...)
		if !ok {
			fmt.Fprintf(r.out, "(nothing at %s)\n", pathArg)
			return nil
		}
		fmt.Fprintf(r.out, "%s\n", v)
		return nil
	}
	if !isDocCommand(cmd) {
		return fmt.Errorf("unknown command %q (type help)", cmd)
	}
	if pathArg == "" {
		return fmt.Errorf("usage: %s", usageOf(cmd))
	}
	path, err := parsePath(pathArg)
	if err != nil {
		return err
	}
	switch cmd {
	case "splice":
		op, err := parseSplice(path, val)
		if err != nil {
			return err
		}
		return r.done(d.Apply(ctx, op))
	case "set":
		if val == "" {
			return fmt.Errorf("usage: %s", usageOf(cmd))
		}
		v, err := parseValue(val)
		if err != nil {
			return err
		}
		err = d.Set(ctx, path, v)
		return r.done(err)
	case "del":
		if val != "" {
			return fmt.Errorf("usage: %s", usageOf(cmd))
		}
		return r.done(d.Delete(ctx, path...))
	case "inc":
		by := int64(1)
		if val != "" {
			if by, err = strconv.ParseInt(val, 10, 64); err != nil {
				return fmt.Errorf("inc: %q is not an integer", val)
			}
		}
		return r.done(d.Inc(ctx, path, by))
	default: // add, rm
		if val == "" {
			return fmt.Errorf("usage: %s", usageOf(cmd))
		}
		v, err := parseValue(val)
		if err != nil {
			return err
		}
		if c := bytes.TrimSpace(v); c[0] == '{' || c[0] == '[' {
			return fmt.Errorf("%s: a set holds scalars (strings, numbers, booleans)", cmd)
		}
		if cmd == "add" {
			return r.done(d.Add(ctx, path, v))
		}
		return r.done(d.Remove(ctx, path, v))
	}
}

func (r *repl) done(err error) error {
	if err == nil {
		fmt.Fprintln(r.out, "ok")
	}
	return err
}

func usageOf(cmd string) string {
	for _, l := range strings.Split(replHelp, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == cmd {
			return strings.Join(f[:min(len(f), 3)], " ")
		}
	}
	return cmd
}

// parseSplice reads the arguments of splice after the path: "I N [X]".
func parseSplice(path []string, args string) (crdt.Op, error) {
	fs := strings.SplitN(args, " ", 3)
	if len(fs) < 2 {
		return crdt.Op{}, fmt.Errorf("usage: %s", usageOf("splice"))
	}
	i, err1 := strconv.Atoi(fs[0])
	n, err2 := strconv.Atoi(fs[1])
	if err1 != nil || err2 != nil || i < 0 || n < 0 {
		return crdt.Op{}, fmt.Errorf("splice: index %q and delete count %q must be non-negative integers", fs[0], fs[1])
	}
	if len(fs) < 3 || fs[2] == "" {
		return crdt.SpliceDelete(path, i, n), nil
	}
	x := fs[2]
	var vs []json.RawMessage
	if x[0] == '[' && json.Unmarshal([]byte(x), &vs) == nil {
		return crdt.SpliceList(path, i, n, vs...), nil
	}
	var text string
	if x[0] == '"' {
		if err := json.Unmarshal([]byte(x), &text); err != nil {
			return crdt.Op{}, fmt.Errorf("splice: bad JSON string %s", x)
		}
		return crdt.Splice(path, i, n, text), nil
	}
	return crdt.Splice(path, i, n, x), nil
}

// parsePath splits a dotted path; every key must be non-empty.
func parsePath(s string) ([]string, error) {
	path := strings.Split(s, ".")
	for _, k := range path {
		if k == "" {
			return nil, fmt.Errorf("bad path %q: empty key (use a.b.c)", s)
		}
	}
	return path, nil
}

// parseValue reads a JSON value; a bare word that is not JSON is taken as a
// string, but text that looks like JSON and is not valid is an error.
func parseValue(s string) (json.RawMessage, error) {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s), nil
	}
	switch s[0] {
	case '{', '[', '"':
		return nil, fmt.Errorf("bad JSON value %s", s)
	}
	b, _ := json.Marshal(s)
	return b, nil
}
