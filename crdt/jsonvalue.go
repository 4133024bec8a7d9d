package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// JSON values as documents hold them: valid, compact, valid UTF-8 with
// no lone surrogate escapes.

// compactJSON returns v in compact form, or an error (wrapping
// ErrInvalidUTF8 for text that is not valid UTF-8) when v is not valid JSON
// text.
func compactJSON(v json.RawMessage) (json.RawMessage, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("missing value")
	}
	if plainScalar(v) {
		return v, nil
	}
	if !json.Valid(v) {
		return nil, fmt.Errorf("not JSON")
	}
	if err := CheckJSONText(v); err != nil {
		return nil, err
	}
	if bytes.IndexAny(v, " \t\r\n") < 0 {
		return v, nil // already compact
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	return buf.Bytes(), nil
}

func compactScalar(v json.RawMessage) (json.RawMessage, error) {
	c, err := compactJSON(v)
	if err != nil {
		return nil, err
	}
	if c[0] == '{' || c[0] == '[' {
		return nil, fmt.Errorf("set elements must be JSON scalars")
	}
	return c, nil
}

// plainScalar reports whether v is a JSON scalar that is valid and
// compact as it is, of a form checked without the JSON scanner: a number,
// true, false, null, or a string of printable ASCII without escapes — the
// usual register value. A false answer says nothing: compactJSON then
// checks v in full.
func plainScalar(v []byte) bool {
	switch string(v) {
	case "true", "false", "null":
		return true
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		for _, c := range v[1 : len(v)-1] {
			if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				return false
			}
		}
		return true
	}
	return plainNumber(v)
}

// plainNumber reports whether v is a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func plainNumber(v []byte) bool {
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case i < len(v) && v[i] >= '1' && v[i] <= '9':
		i = digits(v, i)
	default:
		return false
	}
	if i < len(v) && v[i] == '.' {
		j := digits(v, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		j := digits(v, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(v)
}

// digits returns the index past the decimal digits of v from i.
func digits(v []byte, i int) int {
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	return i
}
