package concord

import (
	"context"
	"errors"
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
