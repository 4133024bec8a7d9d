package wire

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/internal/decmode"
)

// decModes caches a decoder per Limits value.
var decModes = decmode.New(Limits.decMode)

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

// encMode is the one encoder: CBOR Core Deterministic Encoding.
var encMode = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options; cannot fail
	}
	return em
}()

// unmarshal decodes b into v with lim's decoder and classifies errors.
func unmarshal(b []byte, lim Limits, v any) error {
	dm, err := decModes.Get(lim)
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
