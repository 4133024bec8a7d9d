package wire

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	crypto_pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Signature checks are a large CPU cost of receiving deltas (every envelope
// is checked once per peer; 44% of the convergence benchmark's profile when
// every delta was signed alone). Ed25519 keys, the default for peer IDs,
// are checked with curve25519-voi against a cached expanded public key:
// about half the cost of crypto/ed25519 (BenchmarkVerify: 31–33 µs vs
// 62–70 µs on the project's machine). Its VerifyOptionsStdLib preset
// accepts exactly what crypto/ed25519.Verify accepts, so peers that check
// with either agree; TestVerifyMatchesStdlib holds the two to that.

var voiOpts = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// expandedKeys caches expanded Ed25519 keys (~2.5 KiB each) by peer: the
// number of authors is small and each writes many deltas. It holds at most
// expandedKeysMax keys and is cleared when full (clearing only costs
// re-expanding).
var expandedKeys = &keyCache{m: map[peer.ID]*voi.ExpandedPublicKey{}}

const expandedKeysMax = 1024

type keyCache struct {
	mu sync.RWMutex
	m  map[peer.ID]*voi.ExpandedPublicKey
}

func (c *keyCache) get(id peer.ID) *voi.ExpandedPublicKey {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[id]
}

func (c *keyCache) put(id peer.ID, k *voi.ExpandedPublicKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= expandedKeysMax {
		clear(c.m)
	}
	c.m[id] = k
}

// verifyPeerSig reports whether sig is id's signature over msg. id must
// inline its public key; errPub is returned when it does not.
func verifyPeerSig(id peer.ID, msg, sig []byte) (ok bool, errPub error) {
	if ek := expandedKeys.get(id); ek != nil {
		return voi.VerifyExpandedWithOptions(ek, msg, sig, voiOpts), nil
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return false, err
	}
	if pub.Type() == crypto_pb.KeyType_Ed25519 {
		if raw, err := pub.Raw(); err == nil && len(raw) == voi.PublicKeySize {
			if ek, err := voi.NewExpandedPublicKey(voi.PublicKey(raw)); err == nil {
				expandedKeys.put(id, ek)
				return voi.VerifyExpandedWithOptions(ek, msg, sig, voiOpts), nil
			}
		}
	}
	return verifyWithKey(pub, msg, sig), nil
}

func verifyWithKey(pub crypto.PubKey, msg, sig []byte) bool {
	ok, err := pub.Verify(msg, sig)
	return err == nil && ok
}
