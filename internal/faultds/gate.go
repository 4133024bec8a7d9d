package faultds

import (
	"context"
	"fmt"
	"sync"

	"github.com/ipfs/go-datastore"
)

// Gate is a datastore that, while held, makes every write operation a
// Predicate selects wait until Release (or until the operation's context
// ends: it then fails with the context's error and is not applied). Other
// operations, and every operation while the gate is open, pass straight to
// the datastore below. It is safe for concurrent use if the datastore below
// is.
type Gate struct {
	datastore.Batching // the datastore below
	match              Predicate

	mu      sync.Mutex
	open    chan struct{} // nil: open; closed by Release
	arrived chan struct{} // closed when the first operation waits
	waiting int
}

var _ datastore.Batching = (*Gate)(nil)

// NewGate wraps inner, holding the operations match selects (nil: every
// write operation) while held. A new Gate is open.
func NewGate(inner datastore.Batching, match Predicate) *Gate {
	return &Gate{Batching: inner, match: match}
}

// Hold closes the gate: from now on selected operations wait. It returns a
// channel that is closed once one of them waits. Hold on a held gate
// changes nothing and returns the same channel.
func (g *Gate) Hold() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open == nil {
		g.open = make(chan struct{})
		g.arrived = make(chan struct{})
	}
	return g.arrived
}

// Release opens the gate, letting every waiting operation through, and
// later ones too until the next Hold. Release on an open gate does nothing.
func (g *Gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open != nil {
		close(g.open)
		g.open = nil
	}
}

// Waiting returns the number of operations waiting at the gate now.
func (g *Gate) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

// pass waits while the gate holds op.
func (g *Gate) pass(ctx context.Context, op Op) error {
	if !g.match.match(op) {
		return nil
	}
	g.mu.Lock()
	open := g.open
	if open == nil {
		g.mu.Unlock()
		return nil
	}
	if g.waiting++; g.waiting == 1 {
		select {
		case <-g.arrived:
		default:
			close(g.arrived)
		}
	}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.waiting--
		g.mu.Unlock()
	}()
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("faultds: %s held at the gate: %w", op, ctx.Err())
	}
}

// Put passes a Put on once the gate lets it.
func (g *Gate) Put(ctx context.Context, k datastore.Key, v []byte) error {
	if err := g.pass(ctx, Op{Kind: OpPut, Keys: []datastore.Key{k}}); err != nil {
		return err
	}
	return g.Batching.Put(ctx, k, v)
}

// Delete passes a Delete on once the gate lets it.
func (g *Gate) Delete(ctx context.Context, k datastore.Key) error {
	if err := g.pass(ctx, Op{Kind: OpDelete, Keys: []datastore.Key{k}}); err != nil {
		return err
	}
	return g.Batching.Delete(ctx, k)
}

// Sync passes a Sync on once the gate lets it.
func (g *Gate) Sync(ctx context.Context, prefix datastore.Key) error {
	if err := g.pass(ctx, Op{Kind: OpSync, Keys: []datastore.Key{prefix}}); err != nil {
		return err
	}
	return g.Batching.Sync(ctx, prefix)
}

// Batch returns a batch buffered here; its Commit waits while the gate
// holds it, then writes it to the datastore below as one batch.
func (g *Gate) Batch(context.Context) (datastore.Batch, error) {
	return &buffered{commit: func(ctx context.Context, ops []bufOp) error {
		if err := g.pass(ctx, commitOp(ops)); err != nil {
			return err
		}
		return applyBatch(ctx, g.Batching, ops)
	}}, nil
}
