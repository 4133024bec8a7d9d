package wire

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
