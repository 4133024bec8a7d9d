package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/concord-p2p/concord/crdt"
)

// TypePresence tags a presence message: one peer's (or one of its
// clients') ephemeral state for a document, on the document's presence
// topic. Tag 4 is the log marker's, so presence takes 5.
const TypePresence = 5

// Presence bounds (see WIRE.md, "Presence").
const (
	// MaxPresenceBytes bounds one encoded presence message.
	MaxPresenceBytes = 8 << 10
	// MaxPresenceState bounds a presence state (its JSON text).
	MaxPresenceState = 4096
	// MaxPresenceClient bounds a client name.
	MaxPresenceClient = 64
)

// presenceSigDomain prefixes the bytes a presence message's signature
// covers, so it can never pass for a delta signature or anything else.
const presenceSigDomain = "concord/presence/v1\x00"

// Presence is one presence message: Origin's entry for document Doc —
// its own (Client empty) or one of its clients' — with state State, which
// receivers keep for TTL milliseconds without a refresh. A nil State is a
// goodbye: receivers clear the entry. Stamp is the sender's clock in Unix
// milliseconds, strictly increasing per (Origin's peer, Client), so a
// receiver keeps the latest and ignores replays. Sig is Origin's
// signature: a relayed message still verifies, and nobody can set another
// peer's presence.
type Presence struct {
	Doc    string
	Origin crdt.ReplicaID
	Client string
	Stamp  uint64
	TTL    uint64 // milliseconds
	State  []byte // a compact JSON object; nil: goodbye
	Sig    []byte
}

// presenceWire is the CBOR form of a Presence.
type presenceWire struct {
	V      uint64 `cbor:"0,keyasint"`
	T      uint64 `cbor:"1,keyasint"`
	Doc    string `cbor:"2,keyasint"`
	Origin string `cbor:"3,keyasint"`
	Client string `cbor:"4,keyasint,omitempty"`
	Stamp  uint64 `cbor:"5,keyasint"`
	TTL    uint64 `cbor:"6,keyasint"`
	State  []byte `cbor:"7,keyasint,omitempty"`
	Sig    []byte `cbor:"8,keyasint,omitempty"`
}

// presenceDecoded is what the decoder reads: State as a pointer, so that a
// present but empty state (not a goodbye, not a JSON object) is refused
// rather than taken for a goodbye.
type presenceDecoded struct {
	V      uint64  `cbor:"0,keyasint"`
	T      uint64  `cbor:"1,keyasint"`
	Doc    string  `cbor:"2,keyasint"`
	Origin string  `cbor:"3,keyasint"`
	Client string  `cbor:"4,keyasint"`
	Stamp  uint64  `cbor:"5,keyasint"`
	TTL    uint64  `cbor:"6,keyasint"`
	State  *[]byte `cbor:"7,keyasint"`
	Sig    []byte  `cbor:"8,keyasint"`
}

func (p *Presence) wire(withSig bool) presenceWire {
	w := presenceWire{
		V: ProtocolVersion, T: TypePresence, Doc: p.Doc, Origin: string(p.Origin),
		Client: p.Client, Stamp: p.Stamp, TTL: p.TTL, State: p.State,
	}
	if withSig {
		w.Sig = p.Sig
	}
	return w
}

// Goodbye reports whether p clears its entry.
func (p *Presence) Goodbye() bool { return p.State == nil }

// signingBytes returns what p's signature covers: the domain,
// then the canonical encoding of p without key 8.
func (p *Presence) signingBytes() ([]byte, error) {
	b, err := encMode.Marshal(p.wire(false))
	if err != nil {
		return nil, err
	}
	return append([]byte(presenceSigDomain), b...), nil
}

// SignPresence sets p.Sig to priv's signature over p. It fails (wrapping
// ErrBadSignature) when priv is not the key of p.Origin's peer.
func SignPresence(priv crypto.PrivKey, p *Presence) error {
	id, err := PeerOf(p.Origin)
	if err != nil {
		return err
	}
	msg, err := p.signingBytes()
	if err != nil {
		return fmt.Errorf("wire: encode presence for signing: %w", err)
	}
	sig, err := sign(priv, id, msg)
	if err != nil {
		return err
	}
	p.Sig = sig
	return nil
}

// Verify checks that p.Sig is the signature of p.Origin's peer (whose ID
// inlines its public key) over p. Errors wrap ErrBadReplica or
// ErrBadSignature.
func (p *Presence) Verify() error {
	id, err := PeerOf(p.Origin)
	if err != nil {
		return err
	}
	if len(p.Sig) == 0 {
		return fmt.Errorf("%w: unsigned presence", ErrBadSignature)
	}
	msg, err := p.signingBytes()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	ok, errPub := verifyPeerSig(id, msg, p.Sig)
	if errPub != nil {
		return fmt.Errorf("%w: origin %s has no inlined public key: %v", ErrBadSignature, id, errPub)
	}
	if !ok {
		return fmt.Errorf("%w: presence signature does not verify for %s", ErrBadSignature, p.Origin)
	}
	return nil
}

// EncodePresence returns the canonical CBOR encoding of p. It checks p
// as the decoder would (errors wrap ErrMalformed or ErrTooLarge), so a
// node never publishes what its peers refuse.
func EncodePresence(p *Presence) ([]byte, error) {
	if err := checkPresence(p.Doc, string(p.Origin), p.Client, p.Stamp, p.TTL, p.State, p.State != nil, p.Sig); err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(p.wire(true))
	if err != nil {
		return nil, fmt.Errorf("wire: encode presence: %w", err)
	}
	if len(b) > MaxPresenceBytes {
		return nil, fmt.Errorf("%w: presence is %d bytes, limit %d", ErrTooLarge, len(b), MaxPresenceBytes)
	}
	return b, nil
}

// DecodePresence parses one presence message. It checks structure and
// bounds only; call Verify to authenticate it. Errors wrap ErrTooLarge,
// ErrMalformed or ErrVersion.
func DecodePresence(b []byte) (*Presence, error) {
	if len(b) > MaxPresenceBytes {
		return nil, fmt.Errorf("%w: presence is %d bytes, limit %d", ErrTooLarge, len(b), MaxPresenceBytes)
	}
	var w presenceDecoded
	if err := unmarshal(b, DefaultLimits(), &w); err != nil {
		return nil, err
	}
	if err := checkHeader(w.V, w.T, TypePresence); err != nil {
		return nil, err
	}
	var state []byte
	if w.State != nil {
		state = *w.State
		if state == nil {
			state = []byte{} // present but empty: refused below
		}
	}
	if err := checkPresence(w.Doc, w.Origin, w.Client, w.Stamp, w.TTL, state, w.State != nil, w.Sig); err != nil {
		return nil, err
	}
	return &Presence{Doc: w.Doc, Origin: crdt.ReplicaID(w.Origin), Client: w.Client, Stamp: w.Stamp, TTL: w.TTL, State: state, Sig: w.Sig}, nil
}

// checkPresence holds the rules every presence message obeys.
func checkPresence(doc, origin, client string, stamp, ttl uint64, state []byte, hasState bool, sig []byte) error {
	if err := CheckDocName(doc); err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	if origin == "" || len(origin) > maxReplicaLen {
		return fmt.Errorf("%w: presence origin length %d", ErrMalformed, len(origin))
	}
	if err := CheckPresenceClient(client); err != nil {
		return err
	}
	switch {
	case stamp == 0:
		return fmt.Errorf("%w: presence stamp 0", ErrMalformed)
	case ttl == 0:
		return fmt.Errorf("%w: presence ttl 0", ErrMalformed)
	case len(sig) > maxSigBytes:
		return fmt.Errorf("%w: signature is %d bytes", ErrMalformed, len(sig))
	}
	if hasState {
		return CheckPresenceState(state)
	}
	return nil
}

// CheckPresenceClient reports whether client can name a client of a peer
// in presence: empty (the peer's own entry) or 1 to 64 bytes of
// [A-Za-z0-9_.-]. Errors wrap ErrMalformed.
func CheckPresenceClient(client string) error {
	if len(client) > MaxPresenceClient {
		return fmt.Errorf("%w: presence client name of %d bytes, limit %d", ErrMalformed, len(client), MaxPresenceClient)
	}
	for i := 0; i < len(client); i++ {
		c := client[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%w: presence client name %q: only letters, digits, '_', '.' and '-'", ErrMalformed, client)
		}
	}
	return nil
}

// CheckPresenceState reports whether s can be a presence state: a JSON
// object of at most MaxPresenceState bytes, valid UTF-8, compact (as
// json.Compact leaves it, so one state has one spelling and no padding).
// Errors wrap ErrTooLarge or ErrMalformed.
func CheckPresenceState(s []byte) error {
	if len(s) > MaxPresenceState {
		return fmt.Errorf("%w: presence state is %d bytes, limit %d", ErrTooLarge, len(s), MaxPresenceState)
	}
	if len(s) == 0 || s[0] != '{' || !utf8.Valid(s) || !json.Valid(s) {
		return fmt.Errorf("%w: presence state is not a JSON object", ErrMalformed)
	}
	var c bytes.Buffer
	if err := json.Compact(&c, s); err != nil || !bytes.Equal(c.Bytes(), s) {
		return fmt.Errorf("%w: presence state is not compact JSON", ErrMalformed)
	}
	return nil
}
