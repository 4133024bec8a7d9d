package crdt

import (
	"fmt"
	"unicode/utf8"
)

// One rule for what text is valid, applied where ops are built (validate)
// and where states are decoded (decode): whatever a local write accepts,
// the store's decoder and every peer's decoder accept too, and nothing that
// would change on the way (a byte replaced by U+FFFD) or break a JSON view
// is ever written.
//
//   - A path key, a set element and a register value are valid UTF-8.
//   - A JSON value (register value, set element) escapes only Unicode
//     scalar values: a \u escape of a lone surrogate (\ud800 not followed
//     by a low surrogate, or a lone \udc00) is refused, since JSON decoders
//     replace it with U+FFFD or refuse it.

// checkKey reports whether k may be a path key.
func checkKey(k string) error {
	if !utf8.ValidString(k) {
		return fmt.Errorf("%w: key %q", ErrInvalidUTF8, k)
	}
	return nil
}

// CheckJSONText reports whether v, already known to be valid JSON, is valid
// UTF-8 and escapes no lone surrogate. The error wraps ErrInvalidUTF8.
// Apply checks every value with it; a caller that decodes JSON into Go
// strings before building ops (encoding/json replaces invalid text with
// U+FFFD) checks its input first.
func CheckJSONText(v []byte) error {
	if !utf8.Valid(v) {
		return fmt.Errorf("%w: value is not valid UTF-8", ErrInvalidUTF8)
	}
	// In valid JSON a backslash only occurs inside a string, where it
	// starts an escape: \" \\ \/ \b \f \n \r \t or \uXXXX.
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			continue
		}
		if i+1 < len(v) && v[i+1] != 'u' {
			i++ // a one-letter escape, possibly \\ itself
			continue
		}
		r, ok := hex4(v, i+2)
		if !ok {
			return fmt.Errorf("%w: bad \\u escape", ErrInvalidUTF8)
		}
		i += 5
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return fmt.Errorf("%w: lone low surrogate \\u%04x", ErrInvalidUTF8, r)
		case r >= 0xd800 && r <= 0xdbff:
			lo, ok := uint32(0), false
			if i+2 < len(v) && v[i+1] == '\\' && v[i+2] == 'u' {
				lo, ok = hex4(v, i+3)
			}
			if !ok || lo < 0xdc00 || lo > 0xdfff {
				return fmt.Errorf("%w: lone high surrogate \\u%04x", ErrInvalidUTF8, r)
			}
			i += 6
		}
	}
	return nil
}

func hex4(v []byte, at int) (uint32, bool) {
	if at+4 > len(v) {
		return 0, false
	}
	var r uint32
	for _, c := range v[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | uint32(c)
	}
	return r, true
}
