package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-p2p/concord"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestChatTwoPeers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func() (*concord.Node, *concord.Doc) {
		n, err := concord.Open(ctx, concord.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, FastGossip: true, SummaryInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		d, err := n.Doc(ctx, "chat-test")
		if err != nil {
			t.Fatal(err)
		}
		return n, d
	}
	a, da := open()
	b, db := open()
	if err := b.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	var outA, outB syncBuf
	inA, inB := make(chan string), make(chan string)
	var wg sync.WaitGroup
	for _, c := range []struct {
		c   *chat
		in  chan string
		out *syncBuf
	}{{newChat(da, "ann", a.ID().String()), inA, &outA}, {newChat(db, "bob", b.ID().String()), inB, &outB}} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.c.run(ctx, c.in, c.out) }()
	}
	inA <- "hello bob"
	waitOut(t, &outB, "<ann> hello bob")
	inB <- "hi ann"
	waitOut(t, &outA, "<bob> hi ann")
	close(inA)
	close(inB)
	wg.Wait()
	if n := strings.Count(outA.String(), "hello bob"); n != 1 {
		t.Fatalf("ann saw her message %d times:\n%s", n, outA.String())
	}
}

func waitOut(t *testing.T, b *syncBuf, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", want, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
