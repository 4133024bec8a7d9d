package crdt

import "errors"

var (
	// ErrTypeConflict is returned when an op needs a key to hold one CRDT
	// kind and it currently holds another (e.g. inc on a register).
	ErrTypeConflict = errors.New("crdt: type conflict")
	// ErrInvalidPath is returned for an empty or too deep path.
	ErrInvalidPath = errors.New("crdt: invalid path")
	// ErrInvalidValue is returned for a value that is not valid JSON, or not
	// a JSON scalar where a set element is expected.
	ErrInvalidValue = errors.New("crdt: invalid value")
	// ErrInvalidUTF8 is returned (wrapped together with ErrInvalidPath or
	// ErrInvalidValue) for a path key or value that is not valid UTF-8, or
	// a JSON value escaping a lone surrogate.
	ErrInvalidUTF8 = errors.New("crdt: invalid UTF-8")
	// ErrInvalidOp is returned for an unknown op kind.
	ErrInvalidOp = errors.New("crdt: invalid op")
	// ErrMalformed is returned by decoders for input that is not a valid
	// encoding (bad CBOR, unknown fields or tags, broken invariants).
	ErrMalformed = errors.New("crdt: malformed encoding")
	// ErrTooLarge is returned by decoders for input over a size limit.
	ErrTooLarge = errors.New("crdt: encoding over limit")
	// ErrVersion is returned by decoders for an unknown format version.
	ErrVersion = errors.New("crdt: unsupported format version")
)
