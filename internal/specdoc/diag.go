package specdoc

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Diag renders one CBOR data item in diagnostic notation (RFC 8949 §8,
// with the "<<…>>" of RFC 8610 appendix G for embedded CBOR), laid out on
// several lines when a line would exceed 80 characters. Map entries keep
// their encoded order. A byte string is shown as embedded CBOR when it
// holds exactly one well-formed map; as 'text' when it is valid, printable
// UTF-8 (the JSON values of registers); as h'hex' otherwise. Only the
// types Concord uses are rendered (integers, byte and text strings,
// arrays, maps, false, true, null); anything else is an error.
func Diag(b []byte) (string, error) {
	it, n, err := parseItem(b, 0)
	if err != nil {
		return "", err
	}
	if n != len(b) {
		return "", fmt.Errorf("specdoc: %d bytes after the data item", len(b)-n)
	}
	var sb strings.Builder
	it.write(&sb, 0)
	return sb.String(), nil
}

type item struct {
	major    byte
	arg      uint64
	simple   string // false, true, null
	raw      []byte // byte and text strings
	kids     []*item
	embedded *item // a byte string holding one CBOR map
}

const maxDepth = 64

func parseItem(b []byte, depth int) (*item, int, error) {
	if depth > maxDepth {
		return nil, 0, fmt.Errorf("specdoc: nested deeper than %d", maxDepth)
	}
	if len(b) == 0 {
		return nil, 0, fmt.Errorf("specdoc: truncated item")
	}
	major, info := b[0]>>5, b[0]&31
	n := 1
	var arg uint64
	switch {
	case info < 24:
		arg = uint64(info)
	case info <= 27:
		size := 1 << (info - 24)
		if len(b) < 1+size {
			return nil, 0, fmt.Errorf("specdoc: truncated head")
		}
		var buf [8]byte
		copy(buf[8-size:], b[1:1+size])
		arg = binary.BigEndian.Uint64(buf[:])
		n += size
	default:
		return nil, 0, fmt.Errorf("specdoc: additional information %d (indefinite or reserved)", info)
	}
	it := &item{major: major, arg: arg}
	switch major {
	case 0, 1:
	case 2, 3:
		if uint64(len(b)-n) < arg {
			return nil, 0, fmt.Errorf("specdoc: truncated string")
		}
		it.raw = b[n : n+int(arg)]
		n += int(arg)
		if major == 2 && len(it.raw) > 0 && it.raw[0]>>5 == 5 {
			if sub, m, err := parseItem(it.raw, depth+1); err == nil && m == len(it.raw) {
				it.embedded = sub
			}
		}
	case 4, 5:
		count := arg
		if major == 5 {
			count *= 2
		}
		for i := uint64(0); i < count; i++ {
			kid, m, err := parseItem(b[n:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			it.kids = append(it.kids, kid)
			n += m
		}
	case 7:
		switch info {
		case 20:
			it.simple = "false"
		case 21:
			it.simple = "true"
		case 22:
			it.simple = "null"
		default:
			return nil, 0, fmt.Errorf("specdoc: simple value or float %d not rendered", info)
		}
	default:
		return nil, 0, fmt.Errorf("specdoc: tags are not rendered")
	}
	return it, n, nil
}

const width = 80

// flat renders it on one line.
func (it *item) flat() string {
	var sb strings.Builder
	it.writeFlat(&sb)
	return sb.String()
}

func (it *item) writeFlat(sb *strings.Builder) {
	switch it.major {
	case 0:
		sb.WriteString(strconv.FormatUint(it.arg, 10))
	case 1:
		if it.arg == ^uint64(0) {
			sb.WriteString("-18446744073709551616")
		} else {
			sb.WriteString("-" + strconv.FormatUint(it.arg+1, 10))
		}
	case 2:
		switch {
		case it.embedded != nil:
			sb.WriteString("<<")
			it.embedded.writeFlat(sb)
			sb.WriteString(">>")
		case printable(it.raw):
			sb.WriteString(quote(string(it.raw), '\''))
		default:
			sb.WriteString("h'" + hex.EncodeToString(it.raw) + "'")
		}
	case 3:
		sb.WriteString(quote(string(it.raw), '"'))
	case 4:
		sb.WriteByte('[')
		for i, k := range it.kids {
			if i > 0 {
				sb.WriteString(", ")
			}
			k.writeFlat(sb)
		}
		sb.WriteByte(']')
	case 5:
		sb.WriteByte('{')
		for i := 0; i < len(it.kids); i += 2 {
			if i > 0 {
				sb.WriteString(", ")
			}
			it.kids[i].writeFlat(sb)
			sb.WriteString(": ")
			it.kids[i+1].writeFlat(sb)
		}
		sb.WriteByte('}')
	case 7:
		sb.WriteString(it.simple)
	}
}

// write renders it with its first line at column indent.
func (it *item) write(sb *strings.Builder, indent int) { it.writeAt(sb, indent, indent, "") }

// writeAt renders it at nesting column indent, its first line starting at
// column used (after a map key), followed by suffix.
func (it *item) writeAt(sb *strings.Builder, indent, used int, suffix string) {
	f := it.flat()
	if used+len(f)+len(suffix) <= width || !it.container() {
		sb.WriteString(f)
		sb.WriteString(suffix)
		return
	}
	body := it
	open, shut := "", ""
	if it.major == 2 {
		open, shut = "<<", ">>"
		body = it.embedded
	}
	step := 1
	if body.major == 5 {
		open, shut, step = open+"{", "}"+shut, 2
	} else {
		open, shut = open+"[", "]"+shut
	}
	pad := strings.Repeat(" ", indent+2)
	sb.WriteString(open + "\n")
	for i := 0; i < len(body.kids); i += step {
		sep := ","
		if i+step >= len(body.kids) {
			sep = ""
		}
		sb.WriteString(pad)
		if step == 2 {
			k := body.kids[i].flat() + ": "
			sb.WriteString(k)
			body.kids[i+1].writeAt(sb, indent+2, indent+2+len(k), sep)
		} else {
			body.kids[i].writeAt(sb, indent+2, indent+2, sep)
		}
		sb.WriteString("\n")
	}
	sb.WriteString(strings.Repeat(" ", indent) + shut + suffix)
}

// container reports whether it can be laid out on several lines.
func (it *item) container() bool {
	switch {
	case it.major == 4 || it.major == 5:
		return len(it.kids) > 0
	case it.major == 2 && it.embedded != nil:
		return len(it.embedded.kids) > 0
	}
	return false
}

// printable reports whether b is valid UTF-8 without control characters.
func printable(b []byte) bool {
	if len(b) == 0 || !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// quote writes s between q quotes, escaping q, backslashes and control
// characters.
func quote(s string, q byte) string {
	var sb strings.Builder
	sb.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&sb, "\\u%04x", r)
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte(q)
	return sb.String()
}
