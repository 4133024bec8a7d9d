package wire

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/concord-p2p/concord/crdt"
)

// Wire protocol versions understood by this package. Every message carries
// its version in field 0 ("v"); a decoder rejects versions outside
// [ProtocolVersionMin, ProtocolVersionMax] with ErrVersion.
const (
	ProtocolVersionMin = 1
	ProtocolVersionMax = 1
	// ProtocolVersion is the version written by the encoders.
	ProtocolVersion = 1
)

// Message type tags (field 1, "t"). A decoder for one type rejects the
// others with ErrMalformed, so bytes of one kind are never mistaken for
// another.
const (
	TypeEnvelope = 1
	TypeBatch    = 2
	TypeSummary  = 3
)

// Errors returned (wrapped) by the decoders and by Envelope.Verify.
var (
	// ErrMalformed: the bytes are not a well-formed message of the expected
	// type (bad CBOR, wrong type tag, missing or invalid field, trailing bytes).
	ErrMalformed = errors.New("wire: malformed message")
	// ErrTooLarge: the input or one of its parts exceeds a Limits bound.
	ErrTooLarge = errors.New("wire: message too large")
	// ErrVersion: the message's protocol version is not supported.
	ErrVersion = errors.New("wire: unsupported protocol version")
	// ErrBadSignature: the envelope's origin does not embed a usable public
	// key, or the signature does not verify.
	ErrBadSignature = errors.New("wire: bad signature")
)

// sigDomain prefixes the bytes an author signs, so a delta signature can never
// be replayed as a signature of some other libp2p or Concord structure.
const sigDomain = "concord/delta-envelope/v1\x00"

// maxSigBytes bounds the signature field (Ed25519 uses 64 bytes; RSA-4096 512).
const maxSigBytes = 1024

// maxDocBytes bounds the document name.
const maxDocBytes = 1024

// Limits bounds what a decoder accepts. Decoders check the input length
// against MaxMessageBytes before parsing anything.
type Limits struct {
	// MaxMessageBytes bounds one encoded message (envelope, batch or summary).
	// Default 1 MiB - 16 KiB = 1,032,192 bytes: a batch fits in one GossipSub
	// message (default max 1 MiB) with room for the pubsub framing.
	MaxMessageBytes int
	// MaxEnvelopes bounds the number of envelopes in one batch. Default 1024.
	MaxEnvelopes int
	// MaxVVEntries bounds the number of replicas in a summary's version
	// vector. Default 4096.
	MaxVVEntries int
	// MaxPayloadBytes bounds one envelope's payload. Default 256 KiB.
	MaxPayloadBytes int
}

// DefaultLimits returns the limits documented on the Limits fields.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes: 1<<20 - 16<<10,
		MaxEnvelopes:    1024,
		MaxVVEntries:    4096,
		MaxPayloadBytes: 256 << 10,
	}
}

// Envelope is one signed delta: the Seq-th delta of replica Origin for
// document Doc, stamped with hybrid logical clock HLC. Payload is the
// crdt-encoded delta, opaque to this package. Sig is Origin's signature over
// (v, doc, origin, seq, hlc, payload), so a relayed delta still verifies.
type Envelope struct {
	Doc    string
	Origin crdt.ReplicaID
	Seq    uint64
	// Last is 0 for a single delta. An aggregate — the join of the author's
	// deltas Seq..Last, signed once by the author — has Last > Seq; the
	// sync stream and the author's gossip send one instead of the run, which
	// saves signatures and the overwritten history of every delta in it.
	Last uint64
	HLC  uint64
	// Dot is the author's dot counter once this delta is applied: the
	// highest dot it had minted, signed, so that a snapshot claiming the
	// author's dots can be checked against it (a head; see the README,
	// "Anti-entropy"). 0 in envelopes from before it existed.
	Dot uint64
	// Features are the optional parts of the document format the payload
	// uses (FeatureSequences, FeatureCompactSplice), signed; 0 for one that
	// uses none.
	Features Features
	Payload  []byte
	Sig      []byte
	// Delta, when set, is Payload decoded: the author keeps its own delta
	// at hand so that joining a run of them into an aggregate needs no
	// decoding. It is never encoded and never set by the decoders.
	Delta *crdt.State
}

// MaxAggregateRun bounds how many deltas one aggregate may cover: a receiver
// stores a marker for each, so the bound caps what one envelope costs.
const MaxAggregateRun = 4096

// LastSeq returns the last sequence number e covers.
func (e *Envelope) LastSeq() uint64 {
	if e.Last == 0 {
		return e.Seq
	}
	return e.Last
}

// envelopeWire is the CBOR form of an Envelope (keys are small ints).
type envelopeWire struct {
	V       uint64 `cbor:"0,keyasint"`
	T       uint64 `cbor:"1,keyasint"`
	Doc     string `cbor:"2,keyasint"`
	Origin  string `cbor:"3,keyasint"`
	Seq     uint64 `cbor:"4,keyasint"`
	HLC     uint64 `cbor:"5,keyasint"`
	Payload []byte `cbor:"6,keyasint,omitempty"`
	Sig     []byte `cbor:"7,keyasint,omitempty"`
	Last    uint64 `cbor:"8,keyasint,omitempty"`
	Dot     uint64 `cbor:"9,keyasint,omitempty"`
	F       uint64 `cbor:"10,keyasint,omitempty"`
}

// signedWire is what an author signs (after sigDomain): the envelope
// without its signature.
type signedWire struct {
	V       uint64 `cbor:"0,keyasint"`
	T       uint64 `cbor:"1,keyasint"`
	Doc     string `cbor:"2,keyasint"`
	Origin  string `cbor:"3,keyasint"`
	Seq     uint64 `cbor:"4,keyasint"`
	HLC     uint64 `cbor:"5,keyasint"`
	Payload []byte `cbor:"6,keyasint,omitempty"`
	Last    uint64 `cbor:"8,keyasint,omitempty"`
	Dot     uint64 `cbor:"9,keyasint,omitempty"`
	F       uint64 `cbor:"10,keyasint,omitempty"`
}

func (e *Envelope) wire() envelopeWire {
	return envelopeWire{
		V: ProtocolVersion, T: TypeEnvelope,
		Doc: e.Doc, Origin: string(e.Origin), Seq: e.Seq, HLC: e.HLC,
		Payload: e.Payload, Sig: e.Sig, Last: e.Last, Dot: e.Dot, F: uint64(e.Features),
	}
}

// signingBytes returns the domain-separated deterministic encoding that Sig
// covers.
func (e *Envelope) signingBytes() ([]byte, error) {
	b, err := encMode.Marshal(signedWire{
		V: ProtocolVersion, T: TypeEnvelope,
		Doc: e.Doc, Origin: string(e.Origin), Seq: e.Seq, HLC: e.HLC,
		Payload: e.Payload, Last: e.Last, Dot: e.Dot, F: uint64(e.Features),
	})
	if err != nil {
		return nil, err
	}
	return append([]byte(sigDomain), b...), nil
}

// SignEnvelope sets e.Sig to priv's signature over e. It fails (wrapping
// ErrBadSignature) when priv is not the key of e.Origin's peer, so a node
// cannot accidentally sign as another replica.
func SignEnvelope(priv crypto.PrivKey, e *Envelope) error {
	id, err := PeerOf(e.Origin)
	if err != nil {
		return err
	}
	msg, err := e.signingBytes()
	if err != nil {
		return fmt.Errorf("wire: encode envelope for signing: %w", err)
	}
	sig, err := sign(priv, id, msg)
	if err != nil {
		return err
	}
	e.Sig = sig
	return nil
}

// Verify checks that e.Origin names a peer whose ID inlines its public key
// (Ed25519 peer IDs do) and that e.Sig is that key's signature over e.
// Errors wrap ErrBadReplica or ErrBadSignature.
func (e *Envelope) Verify() error {
	id, err := PeerOf(e.Origin)
	if err != nil {
		return err
	}
	if len(e.Sig) == 0 {
		return fmt.Errorf("%w: unsigned", ErrBadSignature)
	}
	msg, err := e.signingBytes()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	ok, errPub := verifyPeerSig(id, msg, e.Sig)
	if errPub != nil {
		return fmt.Errorf("%w: origin %s has no inlined public key: %v", ErrBadSignature, id, errPub)
	}
	if !ok {
		return fmt.Errorf("%w: signature does not verify for %s", ErrBadSignature, e.Origin)
	}
	return nil
}

// EncodeEnvelope returns the deterministic CBOR encoding of e.
func EncodeEnvelope(e *Envelope) ([]byte, error) {
	b, err := encMode.Marshal(e.wire())
	if err != nil {
		return nil, fmt.Errorf("wire: encode envelope: %w", err)
	}
	return b, nil
}

// DecodeEnvelope parses one envelope within lim. It checks structure only;
// call Verify to authenticate it. Errors wrap ErrTooLarge, ErrMalformed or
// ErrVersion.
func DecodeEnvelope(b []byte, lim Limits) (*Envelope, error) {
	if len(b) > lim.MaxMessageBytes {
		return nil, fmt.Errorf("%w: envelope is %d bytes, limit %d", ErrTooLarge, len(b), lim.MaxMessageBytes)
	}
	var w envelopeWire
	if err := unmarshal(b, lim, &w); err != nil {
		return nil, err
	}
	return w.envelope(lim)
}

func (w *envelopeWire) envelope(lim Limits) (*Envelope, error) {
	if err := checkHeader(w.V, w.T, TypeEnvelope); err != nil {
		return nil, err
	}
	switch {
	case w.Doc == "" || len(w.Doc) > maxDocBytes:
		return nil, fmt.Errorf("%w: envelope doc name length %d", ErrMalformed, len(w.Doc))
	case w.Origin == "" || len(w.Origin) > maxReplicaLen:
		return nil, fmt.Errorf("%w: envelope origin length %d", ErrMalformed, len(w.Origin))
	case w.Seq == 0 || w.Seq > crdt.MaxCounter || w.Last > crdt.MaxCounter || w.Dot > crdt.MaxCounter:
		return nil, fmt.Errorf("%w: envelope seq %d..%d out of range", ErrMalformed, w.Seq, w.Last)
	case w.Last != 0 && w.Last <= w.Seq:
		return nil, fmt.Errorf("%w: aggregate range %d..%d", ErrMalformed, w.Seq, w.Last)
	case w.Last != 0 && w.Last-w.Seq >= MaxAggregateRun:
		return nil, fmt.Errorf("%w: aggregate covers %d deltas, limit %d", ErrTooLarge, w.Last-w.Seq+1, MaxAggregateRun)
	case len(w.Payload) > lim.MaxPayloadBytes:
		return nil, fmt.Errorf("%w: payload is %d bytes, limit %d", ErrTooLarge, len(w.Payload), lim.MaxPayloadBytes)
	case len(w.Sig) > maxSigBytes:
		return nil, fmt.Errorf("%w: signature is %d bytes", ErrMalformed, len(w.Sig))
	case Features(w.F)&^PayloadFeatures != 0:
		return nil, fmt.Errorf("%w: envelope uses features %#x this version does not speak", ErrVersion, w.F&^uint64(PayloadFeatures))
	}
	return &Envelope{
		Doc: w.Doc, Origin: crdt.ReplicaID(w.Origin), Seq: w.Seq, Last: w.Last, HLC: w.HLC, Dot: w.Dot, Features: Features(w.F),
		Payload: w.Payload, Sig: w.Sig,
	}, nil
}
