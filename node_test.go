package concord

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
)

func TestOpenBadBootstrap(t *testing.T) {
	_, err := Open(context.Background(), Config{Bootstrap: []string{"/ip4/127.0.0.1/tcp/1"}})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("bootstrap address without /p2p/: %v", err)
	}
}

func TestMaxDocs(t *testing.T) {
	n := testNode(t, "", func(c *Config) { c.MaxDocs = 2 })
	_ = openDoc(t, n, "a")
	_ = openDoc(t, n, "b")
	if _, err := n.Doc(context.Background(), "c"); !errors.Is(err, ErrTooManyDocs) {
		t.Fatalf("third document: %v", err)
	}
	if _, err := n.Doc(context.Background(), "a"); err != nil {
		t.Fatalf("reopening an open document: %v", err)
	}
}

// Documents cost no goroutines of their own: the node's worker pool
// carries out every document's work, and gossip topics run on GossipSub's
// validators and a few shared publishers.
func TestGoroutinesPerDoc(t *testing.T) {
	n := testNode(t, "")
	ctx := context.Background()
	openDoc(t, n, "warm-up")
	before := runtime.NumGoroutine()
	const docs = 200
	for i := range docs {
		d := openDoc(t, n, fmt.Sprint("doc-", i))
		if err := d.Set(ctx, []string{"k"}, i); err != nil {
			t.Fatal(err)
		}
	}
	// None is per document: gossip delivers in its validators and
	// publishes on shared workers, the node's pool runs every document's
	// work. A few may come and go (validations, timers) while this counts.
	extra := runtime.NumGoroutine() - before
	t.Logf("%d more goroutines for %d documents", extra, docs)
	if extra > 20 {
		t.Fatalf("%d more goroutines for %d documents, want none per document", extra, docs)
	}
}
