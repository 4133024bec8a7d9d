package wire

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/internal/decmode"
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

// netDecModes caches a decoder per Limits value.
var netDecModes = decmode.New(Limits.decMode)

// decMode builds a CBOR decoder enforcing lim. Nesting never exceeds 3 in a
// valid message (batch map → envelope array → envelope map); 4 is the
// library minimum.
func (lim Limits) decMode() (cbor.DecMode, error) {
	maxArr := max(lim.MaxEnvelopes, 16)
	maxMap := max(lim.MaxVVEntries, 16)
	return cbor.DecOptions{
		MaxNestedLevels:  4,
		MaxArrayElements: maxArr,
		MaxMapPairs:      maxMap,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
}

var encMode = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options; cannot fail
	}
	return em
}()

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
	Dot     uint64
	Payload []byte
	Sig     []byte
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
}

func (e *Envelope) wire() envelopeWire {
	return envelopeWire{
		V: ProtocolVersion, T: TypeEnvelope,
		Doc: e.Doc, Origin: string(e.Origin), Seq: e.Seq, HLC: e.HLC,
		Payload: e.Payload, Sig: e.Sig, Last: e.Last, Dot: e.Dot,
	}
}

// signingBytes returns the domain-separated deterministic encoding that Sig
// covers.
func (e *Envelope) signingBytes() ([]byte, error) {
	b, err := encMode.Marshal(signedWire{
		V: ProtocolVersion, T: TypeEnvelope,
		Doc: e.Doc, Origin: string(e.Origin), Seq: e.Seq, HLC: e.HLC,
		Payload: e.Payload, Last: e.Last, Dot: e.Dot,
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
	if !id.MatchesPrivateKey(priv) {
		return fmt.Errorf("%w: key does not belong to origin %s", ErrBadSignature, id)
	}
	msg, err := e.signingBytes()
	if err != nil {
		return fmt.Errorf("wire: encode envelope for signing: %w", err)
	}
	sig, err := priv.Sign(msg)
	if err != nil {
		return fmt.Errorf("wire: sign envelope: %w", err)
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
	}
	return &Envelope{
		Doc: w.Doc, Origin: crdt.ReplicaID(w.Origin), Seq: w.Seq, Last: w.Last, HLC: w.HLC, Dot: w.Dot,
		Payload: w.Payload, Sig: w.Sig,
	}, nil
}

// DeltaBatch is what one GossipSub message carries: several envelopes,
// possibly of different origins. Use a BatchBuilder to fill one up to a
// byte budget.
type DeltaBatch struct {
	Envelopes []Envelope
}

type batchWire struct {
	V         uint64         `cbor:"0,keyasint"`
	T         uint64         `cbor:"1,keyasint"`
	Envelopes []envelopeWire `cbor:"2,keyasint"`
}

// EncodeBatch returns the deterministic CBOR encoding of b. Its length is
// exactly what a BatchBuilder holding the same envelopes reports.
func EncodeBatch(b *DeltaBatch) ([]byte, error) {
	w := batchWire{V: ProtocolVersion, T: TypeBatch, Envelopes: make([]envelopeWire, len(b.Envelopes))}
	for i := range b.Envelopes {
		w.Envelopes[i] = b.Envelopes[i].wire()
	}
	out, err := encMode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("wire: encode batch: %w", err)
	}
	return out, nil
}

// DecodeBatch parses a batch within lim (structure only; Verify each
// envelope). An empty batch is malformed. Errors wrap ErrTooLarge,
// ErrMalformed or ErrVersion.
func DecodeBatch(b []byte, lim Limits) (*DeltaBatch, error) {
	if len(b) > lim.MaxMessageBytes {
		return nil, fmt.Errorf("%w: batch is %d bytes, limit %d", ErrTooLarge, len(b), lim.MaxMessageBytes)
	}
	var w batchWire
	if err := unmarshal(b, lim, &w); err != nil {
		return nil, err
	}
	if err := checkHeader(w.V, w.T, TypeBatch); err != nil {
		return nil, err
	}
	if len(w.Envelopes) == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrMalformed)
	}
	if len(w.Envelopes) > lim.MaxEnvelopes {
		return nil, fmt.Errorf("%w: batch has %d envelopes, limit %d", ErrTooLarge, len(w.Envelopes), lim.MaxEnvelopes)
	}
	out := &DeltaBatch{Envelopes: make([]Envelope, len(w.Envelopes))}
	for i := range w.Envelopes {
		e, err := w.Envelopes[i].envelope(lim)
		if err != nil {
			return nil, fmt.Errorf("envelope %d: %w", i, err)
		}
		out.Envelopes[i] = *e
	}
	return out, nil
}

// BatchBuilder accumulates envelopes while tracking the exact encoded size of
// the batch, so a caller never publishes more than its budget.
type BatchBuilder struct {
	maxBytes int
	encoded  int // sum of the encoded envelope sizes
	batch    DeltaBatch
}

// NewBatchBuilder returns a builder whose batches encode to at most maxBytes.
func NewBatchBuilder(maxBytes int) *BatchBuilder {
	return &BatchBuilder{maxBytes: maxBytes}
}

// batchOverhead is the encoded size of a batch holding n envelopes, minus the
// envelopes themselves: map header, keys 0..2, version, type and array header.
func batchOverhead(n int) int {
	// a3 00 01 01 02 02 + array header
	return 6 + cborHeadLen(uint64(n))
}

func cborHeadLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffffff:
		return 5
	default:
		return 9
	}
}

// Add appends e if the batch still fits in the budget and reports whether it
// did. An envelope that alone exceeds the budget yields an error wrapping
// ErrTooLarge, so the caller can drop (and count) it.
func (bb *BatchBuilder) Add(e Envelope) (bool, error) {
	enc, err := EncodeEnvelope(&e)
	if err != nil {
		return false, err
	}
	if batchOverhead(1)+len(enc) > bb.maxBytes {
		return false, fmt.Errorf("%w: envelope of %d bytes exceeds batch budget %d", ErrTooLarge, len(enc), bb.maxBytes)
	}
	n := len(bb.batch.Envelopes) + 1
	if batchOverhead(n)+bb.encoded+len(enc) > bb.maxBytes {
		return false, nil
	}
	bb.batch.Envelopes = append(bb.batch.Envelopes, e)
	bb.encoded += len(enc)
	return true, nil
}

// Len returns the number of envelopes added since the last Reset.
func (bb *BatchBuilder) Len() int { return len(bb.batch.Envelopes) }

// Size returns the exact encoded size of the current batch.
func (bb *BatchBuilder) Size() int {
	return batchOverhead(len(bb.batch.Envelopes)) + bb.encoded
}

// Encode encodes the current batch (which must not be empty) and resets the
// builder.
func (bb *BatchBuilder) Encode() ([]byte, error) {
	if len(bb.batch.Envelopes) == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrMalformed)
	}
	out, err := EncodeBatch(&bb.batch)
	if err != nil {
		return nil, err
	}
	bb.batch = DeltaBatch{}
	bb.encoded = 0
	return out, nil
}

// Summary is the beacon a replica publishes for a document: the version
// vector of what Origin (the sender's replica) has applied.
type Summary struct {
	Doc    string
	Origin crdt.ReplicaID
	VV     crdt.VersionVector
	// Beacon numbers the sender's beacons. GossipSub identifies messages
	// by content here, so without it a repeated, unchanged summary would be
	// dropped as a duplicate of the previous one.
	Beacon uint64
}

type summaryWire struct {
	V      uint64            `cbor:"0,keyasint"`
	T      uint64            `cbor:"1,keyasint"`
	Doc    string            `cbor:"2,keyasint"`
	Origin string            `cbor:"3,keyasint"`
	VV     map[string]uint64 `cbor:"4,keyasint,omitempty"`
	Beacon uint64            `cbor:"5,keyasint,omitempty"`
}

// EncodeSummary returns the deterministic CBOR encoding of s. Zero entries of
// the version vector are omitted (a missing entry means zero).
func EncodeSummary(s *Summary) ([]byte, error) {
	w := summaryWire{V: ProtocolVersion, T: TypeSummary, Doc: s.Doc, Origin: string(s.Origin), Beacon: s.Beacon, VV: wireVV(s.VV)}
	out, err := encMode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("wire: encode summary: %w", err)
	}
	return out, nil
}

// DecodeSummary parses a summary within lim. The returned VV is never nil.
// Errors wrap ErrTooLarge, ErrMalformed or ErrVersion.
func DecodeSummary(b []byte, lim Limits) (*Summary, error) {
	if len(b) > lim.MaxMessageBytes {
		return nil, fmt.Errorf("%w: summary is %d bytes, limit %d", ErrTooLarge, len(b), lim.MaxMessageBytes)
	}
	var w summaryWire
	if err := unmarshal(b, lim, &w); err != nil {
		return nil, err
	}
	if err := checkHeader(w.V, w.T, TypeSummary); err != nil {
		return nil, err
	}
	switch {
	case w.Doc == "" || len(w.Doc) > maxDocBytes:
		return nil, fmt.Errorf("%w: summary doc name length %d", ErrMalformed, len(w.Doc))
	case w.Origin == "" || len(w.Origin) > maxReplicaLen:
		return nil, fmt.Errorf("%w: summary origin length %d", ErrMalformed, len(w.Origin))
	case len(w.VV) > lim.MaxVVEntries:
		return nil, fmt.Errorf("%w: version vector has %d entries, limit %d", ErrTooLarge, len(w.VV), lim.MaxVVEntries)
	}
	vv := make(crdt.VersionVector, len(w.VV))
	for r, n := range w.VV {
		if r == "" || len(r) > maxReplicaLen || n == 0 || n > crdt.MaxCounter {
			return nil, fmt.Errorf("%w: version vector entry %q=%d", ErrMalformed, r, n)
		}
		vv[crdt.ReplicaID(r)] = n
	}
	return &Summary{Doc: w.Doc, Origin: crdt.ReplicaID(w.Origin), VV: vv, Beacon: w.Beacon}, nil
}

// unmarshal decodes b into v with lim's decoder and classifies errors.
func unmarshal(b []byte, lim Limits, v any) error {
	dm, err := netDecModes.Get(lim)
	if err != nil {
		return fmt.Errorf("wire: invalid limits: %w", err)
	}
	if err := dm.Unmarshal(b, v); err != nil {
		var (
			arr  *cbor.MaxArrayElementsError
			mp   *cbor.MaxMapPairsError
			nest *cbor.MaxNestedLevelError
		)
		if errors.As(err, &arr) || errors.As(err, &mp) || errors.As(err, &nest) {
			return fmt.Errorf("%w: %v", ErrTooLarge, err)
		}
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// MessageType returns the type tag (field 1) of the message b, decoding
// nothing else, so a receiver can pick the decoder for it. The version is
// left to that decoder. Errors wrap ErrTooLarge or ErrMalformed.
func MessageType(b []byte, lim Limits) (uint64, error) {
	var hdr struct {
		V uint64 `cbor:"0,keyasint"`
		T uint64 `cbor:"1,keyasint"`
	}
	if err := unmarshal(b, lim, &hdr); err != nil {
		return 0, err
	}
	return hdr.T, nil
}

func checkHeader(v, t, want uint64) error {
	if v < ProtocolVersionMin || v > ProtocolVersionMax {
		return fmt.Errorf("%w: version %d, supported %d..%d", ErrVersion, v, ProtocolVersionMin, ProtocolVersionMax)
	}
	if t != want {
		return fmt.Errorf("%w: type tag %d, want %d", ErrMalformed, t, want)
	}
	return nil
}

// TypeMarker tags a log marker: a placeholder stored for a sequence number
// that an aggregate envelope, stored at another sequence number, covers.
const TypeMarker = 4

type markerWire struct {
	V  uint64 `cbor:"0,keyasint"`
	T  uint64 `cbor:"1,keyasint"`
	At uint64 `cbor:"2,keyasint"`
}

// EncodeMarker returns a marker pointing at the aggregate stored at seq at.
func EncodeMarker(at uint64) []byte {
	b, err := encMode.Marshal(markerWire{V: ProtocolVersion, T: TypeMarker, At: at})
	if err != nil {
		panic(err) // plain integers: cannot fail
	}
	return b
}

// DecodeMarker reports whether b is a marker and where it points.
func DecodeMarker(b []byte) (at uint64, ok bool) {
	if len(b) == 0 || len(b) > 32 || b[0] != 0xa3 {
		return 0, false
	}
	var w markerWire
	if err := unmarshal(b, DefaultLimits(), &w); err != nil || w.T != TypeMarker || w.At == 0 {
		return 0, false
	}
	return w.At, true
}

// wireVV is the wire form of a version vector: zero entries are omitted (a
// missing entry means zero), and an empty vector is nil (field omitted).
func wireVV(vv crdt.VersionVector) map[string]uint64 {
	var out map[string]uint64
	for r, n := range vv {
		if n == 0 {
			continue
		}
		if out == nil {
			out = make(map[string]uint64, len(vv))
		}
		out[string(r)] = n
	}
	return out
}
