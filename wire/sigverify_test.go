package wire

import (
	"crypto/ed25519"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestVerifyMatchesStdlib holds verifyPeerSig to crypto/ed25519.Verify (what
// libp2p and every other Go peer use): same answer for valid signatures,
// tampered ones, non-canonical scalars and the small-order and
// non-canonical point encodings where Ed25519 implementations are known to
// disagree. Both the first check (key expanded) and later ones (cached key)
// are compared.
func TestVerifyMatchesStdlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(pub, msg, sig []byte, what string) {
		t.Helper()
		want := ed25519.Verify(ed25519.PublicKey(pub), msg, sig)
		pk, err := crypto.UnmarshalEd25519PublicKey(pub)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		id, err := peer.IDFromPublicKey(pk)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for round := range 2 { // expand, then from the cache
			got, errPub := verifyPeerSig(id, msg, sig)
			if errPub != nil {
				t.Fatalf("%s: %v", what, errPub)
			}
			if got != want {
				t.Fatalf("%s (round %d): verify %v, crypto/ed25519 %v\npub %x\nsig %x", what, round, got, want, pub, sig)
			}
		}
	}

	// Real keys: valid, then one bit flipped in the message or signature.
	valid := 0
	for i := range 200 {
		seed := make([]byte, ed25519.SeedSize)
		for j := range seed {
			seed[j] = byte(rng.Uint32())
		}
		priv := ed25519.NewKeyFromSeed(seed)
		pub := priv.Public().(ed25519.PublicKey)
		msg := make([]byte, 1+rng.IntN(300))
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		sig := ed25519.Sign(priv, msg)
		check(pub, msg, sig, "valid")
		if ed25519.Verify(pub, msg, sig) {
			valid++
		}
		bad := append([]byte(nil), sig...)
		bad[rng.IntN(len(bad))] ^= 1 << rng.IntN(8)
		check(pub, msg, bad, "tampered signature")
		m2 := append([]byte(nil), msg...)
		m2[rng.IntN(len(m2))] ^= 1 << rng.IntN(8)
		check(pub, m2, sig, "tampered message")
		// S + L: the same signature with a non-canonical scalar.
		check(pub, msg, addL(sig), "non-canonical S")
		if i < 20 {
			expandedKeys.mu.Lock()
			clear(expandedKeys.m)
			expandedKeys.mu.Unlock()
		}
	}
	if valid != 200 {
		t.Fatalf("only %d of 200 reference signatures valid", valid)
	}

	// Small-order and non-canonical encodings as public keys and as R,
	// with S = 0 and S = 1.
	points := []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0000000000000000000000000000000000000000000000000000000000000080",
		"0000000000000000000000000000000000000000000000000000000000000000",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	}
	for _, a := range points {
		pub, _ := hex.DecodeString(a)
		for _, r := range points {
			rb, _ := hex.DecodeString(r)
			for _, s0 := range []byte{0, 1} {
				sig := make([]byte, 64)
				copy(sig, rb)
				sig[32] = s0
				check(pub, []byte("concord"), sig, "edge point A="+a[:8]+" R="+r[:8])
			}
		}
	}
}

// addL returns sig with its scalar S replaced by S + L (little-endian), the
// group order: the same point equation, a non-canonical encoding.
func addL(sig []byte) []byte {
	l := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	out := append([]byte(nil), sig...)
	var carry uint16
	for i := 0; i < 32; i++ {
		v := uint16(out[32+i]) + uint16(l[i]) + carry
		out[32+i] = byte(v)
		carry = v >> 8
	}
	return out
}

// BenchmarkVerify: one delta-sized signature check, with crypto/ed25519
// (what libp2p's key type uses) and with verifyPeerSig (curve25519-voi and
// the cached expanded key).
func BenchmarkVerify(b *testing.B) {
	seed := make([]byte, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	msg := make([]byte, 200)
	sig := ed25519.Sign(priv, msg)
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		b.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("crypto-ed25519", func(b *testing.B) {
		for range b.N {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("concord", func(b *testing.B) {
		for range b.N {
			if ok, _ := verifyPeerSig(id, msg, sig); !ok {
				b.Fatal("invalid")
			}
		}
	})
}
