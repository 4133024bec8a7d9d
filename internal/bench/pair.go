package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/concord-p2p/concord"
	cnet "github.com/concord-p2p/concord/net"
)

// pair is two connected peers of one document that a scenario partitions
// and heals, recording the sync exchanges they finish.
type pair struct {
	*cluster
	gaters []*cnet.Gater
	mu     sync.Mutex
	events []cnet.ExchangeEvent
}

func newPair(ctx context.Context, o Options, doc string) (*pair, error) {
	p := &pair{gaters: []*cnet.Gater{cnet.NewGater(), cnet.NewGater()}}
	c, err := newCluster(ctx, o, 2, doc, true, func(i int, cfg *concord.Config) {
		cfg.Gater = p.gaters[i]
		cfg.Events.SyncFinished = func(e cnet.ExchangeEvent) {
			p.mu.Lock()
			p.events = append(p.events, e)
			p.mu.Unlock()
		}
	})
	if err != nil {
		return nil, err
	}
	p.cluster = c
	return p, nil
}

// partition cuts the two peers apart and waits until they are.
func (p *pair) partition(ctx context.Context) error {
	a, b := p.nodes[0], p.nodes[1]
	if err := cnet.Partition(a.Host(), p.gaters[0], b.ID()); err != nil {
		return err
	}
	if err := cnet.Partition(b.Host(), p.gaters[1], a.ID()); err != nil {
		return err
	}
	return waitUntil(ctx, 5*time.Second, func() bool {
		return a.Host().Network().Connectedness(b.ID()) != network.Connected
	})
}

// missed returns how many deltas, and envelope bytes, each side lacks of
// the other's, together.
func (p *pair) missed(ctx context.Context) (deltas [2]int, bytes int, err error) {
	da, db := p.docs[0], p.docs[1]
	nA, bytesA, err := da.Lacking(ctx, db.Status().Version)
	if err != nil {
		return deltas, 0, err
	}
	nB, bytesB, err := db.Lacking(ctx, da.Status().Version)
	if err != nil {
		return deltas, 0, err
	}
	return [2]int{nA, nB}, bytesA + bytesB, nil
}

// heal forgets the exchanges so far, reconnects the peers and waits until
// the documents converge, within limit; it returns how long that took.
func (p *pair) heal(ctx context.Context, limit time.Duration) (time.Duration, error) {
	a, b := p.nodes[0], p.nodes[1]
	p.mu.Lock()
	p.events = nil
	p.mu.Unlock()
	start := time.Now()
	p.gaters[0].Unblock(b.ID())
	p.gaters[1].Unblock(a.ID())
	if err := a.Connect(ctx, b.Addrs()[0]); err != nil {
		return 0, err
	}
	if err := waitUntil(ctx, limit, func() bool { return converged(p.docs) }); err != nil {
		return 0, fmt.Errorf("after the heal: %w", err)
	}
	return time.Since(start), nil
}

// exchanges returns the exchanges finished since the heal.
func (p *pair) exchanges() []cnet.ExchangeEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]cnet.ExchangeEvent(nil), p.events...)
}

// settled waits until an exchange that carried deltas has finished since
// the heal (its figures are recorded), and returns the exchanges.
func (p *pair) settled(ctx context.Context) ([]cnet.ExchangeEvent, error) {
	err := waitUntil(ctx, 10*time.Second, func() bool {
		for _, e := range p.exchanges() {
			if e.Initiator && e.Stats.DeltasIn+e.Stats.DeltasOut > 0 {
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("the exchange's end: %w", err)
	}
	return p.exchanges(), nil
}
