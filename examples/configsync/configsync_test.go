package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/concord-p2p/concord"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(json.RawMessage(`{"interval_ms":250,"greeting":"hi","features":["b","a"]}`))
	if err != nil || c.Interval != 250*time.Millisecond || c.Greeting != "hi" || len(c.Features) != 2 || c.Features[0] != "a" {
		t.Fatalf("%+v %v", c, err)
	}
	if c, err := ParseConfig(json.RawMessage(`{}`)); err != nil || !c.Equal(DefaultConfig()) {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, bad := range []string{`{"interval_ms":"fast"}`, `{"interval_ms":0}`, `{"features":7}`} {
		if _, err := ParseConfig(json.RawMessage(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// A change written on one peer reconfigures the service on another.
func TestServiceFollowsRemoteChange(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func() *concord.Node {
		n, err := concord.Open(ctx, concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, FastGossip: true, SummaryInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		return n
	}
	svcNode, admin := open(), open()
	if err := admin.Connect(ctx, svcNode.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	doc, err := svcNode.Doc(ctx, "config")
	if err != nil {
		t.Fatal(err)
	}
	applied := make(chan Config, 16)
	svc := &Service{Log: slog.New(slog.DiscardHandler), OnApply: func(c Config) { applied <- c }}
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx, NewWatcher(doc, svc.Log).Watch(ctx)) }()
	next := func() Config {
		t.Helper()
		select {
		case c := <-applied:
			return c
		case <-time.After(15 * time.Second):
			t.Fatal("no configuration applied")
			return Config{}
		}
	}
	if c := next(); !c.Equal(DefaultConfig()) {
		t.Fatalf("first %+v", c)
	}
	adminDoc, err := admin.Doc(ctx, "config")
	if err != nil {
		t.Fatal(err)
	}
	if err := adminDoc.Update(ctx, func(tx *concord.Txn) {
		tx.Set([]string{"interval_ms"}, 50).Set([]string{"greeting"}, "bonjour").Add([]string{"features"}, "beta")
	}); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.Interval != 50*time.Millisecond || c.Greeting != "bonjour" || len(c.Features) != 1 {
		t.Fatalf("after change %+v", c)
	}
	// An invalid value is refused: nothing new is applied, a later valid one is.
	if err := adminDoc.Set(ctx, []string{"interval_ms"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := adminDoc.Set(ctx, []string{"greeting"}, "hej"); err != nil {
		t.Fatal(err)
	}
	if err := adminDoc.Set(ctx, []string{"interval_ms"}, 75); err != nil {
		t.Fatal(err)
	}
	for {
		c := next()
		if c.Interval == 0 || c.Interval < 10*time.Millisecond {
			t.Fatalf("invalid configuration applied: %+v", c)
		}
		if c.Interval == 75*time.Millisecond && c.Greeting == "hej" {
			break
		}
	}
	cancel()
	<-done
}
