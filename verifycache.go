package concord

import (
	"crypto/sha256"
	"sync"

	cnet "github.com/concord-p2p/concord/net"
)

// verifiedCache remembers envelopes whose signature was checked, by a hash
// of their full encoding, so the same delta arriving by gossip and by sync
// (or in two gossip messages) costs one Ed25519 verification. It holds at
// most max entries; when full it is cleared (a later duplicate is merely
// verified again).
type verifiedCache struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]struct{}
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{max: max, m: make(map[[32]byte]struct{})}
}

// envelopeHash identifies an envelope by the hash of its full encoding
// (signature included); false if it does not encode.
func envelopeHash(e *cnet.Envelope) ([32]byte, bool) {
	b, err := cnet.EncodeEnvelope(e)
	if err != nil {
		return [32]byte{}, false
	}
	return sha256.Sum256(b), true
}

func (c *verifiedCache) has(h [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, hit := c.m[h]
	return hit
}

func (c *verifiedCache) add(h [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[h] = struct{}{}
}
