package wire

import (
	"bytes"
	"errors"
	"testing"
)

// The signing fast path gives crypto/ed25519's signature (what libp2p's
// key signs with) byte for byte, and refuses a key that is not the
// origin's, before and after the origin's own key was remembered.
func TestSignMatchesStdlib(t *testing.T) {
	for n := range 8 {
		priv, id := testKey(t, byte(n+1))
		other, _ := testKey(t, byte(n+101))
		for _, size := range []int{0, 1, 64, 200, 5000} {
			msg := bytes.Repeat([]byte{byte(n), byte(size)}, size/2)
			want, err := priv.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := sign(priv, id, msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("key %d, %d bytes: signature %x, crypto/ed25519 gives %x", n, size, got, want)
			}
			if _, err := sign(other, id, msg); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("another key signs for %s: %v", id, err)
			}
		}
	}
}

// BenchmarkSign: one signature over a 200-byte message through libp2p's
// key (crypto/ed25519) and through the fast path.
func BenchmarkSign(b *testing.B) {
	priv, id := testKey(b, 1)
	msg := make([]byte, 200)
	b.Run("libp2p", func(b *testing.B) {
		for range b.N {
			if !id.MatchesPrivateKey(priv) {
				b.Fatal("key")
			}
			if _, err := priv.Sign(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		for range b.N {
			if _, err := sign(priv, id, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
