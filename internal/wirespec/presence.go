package wirespec

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

	"github.com/concord-p2p/concord/wire"
)

// PresenceSigDomain is the prefix of the bytes a presence message's
// signature covers (WIRE.md, "Presence").
const PresenceSigDomain = "concord/presence/v1\x00"

// PresenceTTL is the ttl of the presence vectors, in milliseconds.
const PresenceTTL = 30_000

// PresenceMsgs returns the presence vectors' messages, signed: Alice's
// browser tab "tab-1" sets its state at T0, and Alice's own entry says
// goodbye a millisecond later.
func (in *Inputs) PresenceMsgs() (set, bye *wire.Presence, err error) {
	set = &wire.Presence{Doc: Doc, Origin: in.Alice.Replica, Client: "tab-1", Stamp: uint64(T0), TTL: PresenceTTL,
		State: []byte(`{"color":"#e91e63","cursor":"todo:3","name":"alice"}`)}
	bye = &wire.Presence{Doc: Doc, Origin: in.Alice.Replica, Stamp: uint64(T0) + 1, TTL: PresenceTTL}
	for _, p := range []*wire.Presence{set, bye} {
		if err := wire.SignPresence(in.Alice.Priv, p); err != nil {
			return nil, nil, err
		}
	}
	return set, bye, nil
}

// PresenceSigningInput returns what p's signature covers, built from the
// specification: PresenceSigDomain, then the canonical encoding of p
// without key 8.
func PresenceSigningInput(p *wire.Presence) ([]byte, error) {
	unsigned := *p
	unsigned.Sig = nil
	b, err := wire.EncodePresence(&unsigned)
	if err != nil {
		return nil, err
	}
	return append([]byte(PresenceSigDomain), b...), nil
}

// presenceVectors returns the presence vectors: the message, what its
// signature covers, and the goodbye.
func (in *Inputs) presenceVectors() ([]Vector, error) {
	set, bye, err := in.PresenceMsgs()
	if err != nil {
		return nil, err
	}
	var vs []Vector
	for _, c := range []struct {
		id string
		p  *wire.Presence
	}{{"presence", set}, {"presence-goodbye", bye}} {
		want := c.p
		b, err := wire.EncodePresence(want)
		if err != nil {
			return nil, err
		}
		vs = append(vs, Vector{ID: c.id, Kind: kindHex, Bytes: b, CBOR: true, Check: func(rec []byte) error {
			got, err := wire.DecodePresence(rec)
			if err != nil {
				return err
			}
			if got.Doc != want.Doc || got.Origin != want.Origin || got.Client != want.Client || got.Stamp != want.Stamp ||
				got.TTL != want.TTL || !bytes.Equal(got.State, want.State) || (got.State == nil) != (want.State == nil) || !bytes.Equal(got.Sig, want.Sig) {
				return fmt.Errorf("%s: decodes to %+v, want %+v", c.id, got, want)
			}
			if err := got.Verify(); err != nil {
				return fmt.Errorf("%s: %w", c.id, err)
			}
			return nil
		}})
	}
	signed, err := PresenceSigningInput(set)
	if err != nil {
		return nil, err
	}
	pub := ed25519PublicKey(in.Alice)
	vs = append(vs, Vector{ID: "presence-signed", Kind: kindHex, Bytes: signed, Check: func(rec []byte) error {
		if !ed25519.Verify(pub, rec, set.Sig) {
			return fmt.Errorf("presence-signed: the message's signature does not cover these bytes")
		}
		return nil
	}})
	return vs, nil
}
