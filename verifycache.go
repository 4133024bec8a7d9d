package concord

import (
	"crypto/sha256"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/concord-p2p/concord/wire"
)

// verifiedCache remembers envelopes whose signature was checked, by a hash
// of their full encoding, so the same delta arriving by gossip and by sync
// (or in two gossip messages) costs one Ed25519 verification. It holds at
// most max entries, evicting the least recently used (a later duplicate of
// an evicted one is merely verified again).
type verifiedCache struct {
	c *lru.Cache[[32]byte, struct{}]
}

func newVerifiedCache(max int) *verifiedCache {
	c, err := lru.New[[32]byte, struct{}](max)
	if err != nil {
		panic(err) // only for a size ≤ 0
	}
	return &verifiedCache{c: c}
}

// envelopeHash identifies an envelope by the hash of its full encoding
// (signature included); false if it does not encode.
func envelopeHash(e *wire.Envelope) ([32]byte, bool) {
	b, err := wire.EncodeEnvelope(e)
	if err != nil {
		return [32]byte{}, false
	}
	return sha256.Sum256(b), true
}

func (c *verifiedCache) has(h [32]byte) bool { return c.c.Contains(h) }

func (c *verifiedCache) add(h [32]byte) { c.c.Add(h, struct{}{}) }
