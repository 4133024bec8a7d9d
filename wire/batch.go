package wire

import "fmt"

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
