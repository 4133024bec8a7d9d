package wire

import (
	"fmt"
	"unicode/utf8"
)

// CheckDocName reports whether name can name a document on the wire: 1 to
// 1024 bytes of valid UTF-8 (what every decoder of envelopes, summaries and
// sync messages accepts). Errors wrap ErrMalformed.
func CheckDocName(name string) error {
	switch {
	case name == "" || len(name) > maxDocBytes:
		return fmt.Errorf("%w: document name of %d bytes (1 to %d)", ErrMalformed, len(name), maxDocBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: document name %q is not valid UTF-8", ErrMalformed, name)
	}
	return nil
}
