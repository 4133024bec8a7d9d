package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/concord-p2p/concord"
)

func TestREPL(t *testing.T) {
	node, err := concord.Open(context.Background(), concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	var out bytes.Buffer
	ctx := context.Background()
	r := newREPL(ctx, node, []string{"shop"}, &out)
	steps := []struct{ line, want string }{
		{"set items.milk 2", "ok"},
		{`set title "groceries"`, "ok"},
		{"set note hello world", "ok"},
		{"get items.milk", "2"},
		{"get note", `"hello world"`},
		{"inc count 5", "ok"},
		{"inc count", "ok"},
		{"inc count -2", "ok"},
		{"get count", "4"},
		{"add tags urgent", "ok"},
		{"add tags 7", "ok"},
		{"rm tags 7", "ok"},
		{"del note", "ok"},
		{"get", `{"count":4,"items":{"milk":2},"tags":["urgent"],"title":"groceries"}`},
		{"get nothing.here", "(nothing at nothing.here)"},
		{"splice memo 0 0 hello", "ok"},
		{`splice memo 5 0 " wide world"`, "ok"},
		{"splice memo 6 5", "ok"},
		{"get memo", `"hello world"`},
		{`splice order 0 0 ["b","c"]`, "ok"},
		{`splice order 0 0 ["a"]`, "ok"},
		{"splice order 2 1", "ok"},
		{"get order", `["a","b"]`},
		{"splice memo 99 0 x", "error: "},
		{"splice memo x 0 y", "non-negative integers"},
		{"splice memo 1", "usage: splice PATH I"},
		{"del memo", "ok"},
		{"del order", "ok"},
		// Bad input: clear errors, no crash.
		{"inc title 1", "error: "},
		{"inc count x", "not an integer"},
		{"set a..b 1", "bad path"},
		{"set a {broken", "bad JSON"},
		{"set a", "usage: set PATH JSON"},
		{"add tags {\"a\":1}", "scalars"},
		{"del", "usage: del PATH"},
		{"frob", "unknown command"},
		{"doc", "usage: doc NAME"},
		{"status", "doc shop version"},
		{"peers", "no peers"},
		{"doc other", "document other"},
		{"get", "{}"},
		{"help", "set PATH JSON"},
	}
	for _, s := range steps {
		out.Reset()
		err := r.exec(ctx, s.line)
		got := out.String()
		if err != nil {
			got += "error: " + err.Error()
		}
		if !strings.Contains(got, s.want) {
			t.Errorf("%q: got %q, want %q", s.line, got, s.want)
		}
	}
	if err := r.exec(ctx, "quit"); err != errQuit {
		t.Fatalf("quit: %v", err)
	}
}

func TestREPLNoDoc(t *testing.T) {
	node, err := concord.Open(context.Background(), concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	var out bytes.Buffer
	lines := make(chan string, 3)
	lines <- "get"
	lines <- "status"
	lines <- "quit"
	r := newREPL(context.Background(), node, nil, &out)
	r.loop(context.Background(), lines) // returns at quit
	if s := out.String(); !strings.Contains(s, "no document selected") || !strings.Contains(s, "peer "+node.ID().String()) {
		t.Fatalf("output %q", s)
	}
}
