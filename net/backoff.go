package net

import (
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Backoff computes exponential backoff with full jitter: the n-th delay
// (n from 0) is uniform in [0, min(Max, Base·2ⁿ)]. It is not safe for
// concurrent use.
type Backoff struct {
	base, max time.Duration
	rng       *rand.Rand
	attempt   int
}

// NewBackoff returns a backoff drawing from PCG(seed1, seed2).
func NewBackoff(base, max time.Duration, seed1, seed2 uint64) *Backoff {
	return &Backoff{base: base, max: max, rng: rand.New(rand.NewPCG(seed1, seed2))}
}

// Ceiling returns the upper bound of the next delay.
func (b *Backoff) Ceiling() time.Duration {
	c := b.base
	for i := 0; i < b.attempt && c < b.max; i++ {
		c *= 2
	}
	return min(c, b.max)
}

// Next returns the next delay and counts an attempt.
func (b *Backoff) Next() time.Duration {
	c := b.Ceiling()
	b.attempt++
	return time.Duration(b.rng.Int64N(int64(c) + 1))
}

// Attempt returns the number of delays handed out since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset starts over from Base (the random stream continues).
func (b *Backoff) Reset() { b.attempt = 0 }

func peerBackoff(cfg *SupervisorConfig, p peer.ID) *Backoff {
	h := fnv.New64a()
	h.Write([]byte(p))
	return NewBackoff(cfg.BackoffBase, cfg.BackoffMax, cfg.Seed, h.Sum64())
}
