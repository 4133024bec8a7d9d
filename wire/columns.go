package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The column form of a CBOR data item (WIRE.md §10.7) is a lossless
// rearrangement of its bytes for a general-purpose compressor. A sync
// frame is mostly the same few shapes repeated — thousands of register
// writes, each a key, a dot, a timestamp and a value, inside envelopes
// inside the message — and CBOR interleaves them: the counters sit between
// the keys, the keys between the values. The column form walks the item
// and writes each piece into the column of its place in the structure
// (its path: which map key, which array slot, which byte string it is in),
// so that all the keys of all the payloads' root maps are one column, all
// the register counters another. Within a column, integers are written as
// the difference from the previous one and strings as the length of the
// prefix they share with the previous one, then the rest.
//
// The transform keeps every byte: a decoder rebuilds exactly the item
// that was encoded, non-canonical forms included, so signatures over
// payload bytes still verify. It covers well-formed CBOR with definite
// lengths; an encoder refuses anything else (the frame is then sent
// without it).

// Limits of the column form.
const (
	// MaxColumns bounds the columns of one item: the distinct places of
	// its structure.
	MaxColumns = 1024
	// MaxColumnDepth bounds the nesting of containers, tags and nested
	// items (byte strings holding CBOR) the form walks.
	MaxColumnDepth = 64
	// columnNestMin is the shortest byte string an encoder looks into.
	columnNestMin = 16
)

// The steps from a place to the places below it (WIRE.md §10.7).
const (
	stepKey     = 0  // the keys of a map
	stepValue   = 1  // the value of a key that is not an unsigned integer below 24
	stepValue0  = 2  // the value of key k (an unsigned integer below 24): 2 + k
	stepElem    = 26 // an element of a list (an array not marked a tuple)
	stepElem0   = 27 // element i of a tuple (at most 8 elements): 27 + i
	stepNested  = 35 // the item a byte string holds
	stepTagged  = 36 // the content of a tag
	columnSteps = 37
	maxTuple    = 8
)

// Flags after the head of an array and of a byte string.
const (
	flagList   = 0 // an array whose elements share one column
	flagTuple  = 1 // an array whose element i has a column of its own
	flagRaw    = 0 // a byte string's content follows
	flagNested = 1 // a byte string holds an item, walked into
)

// errColumns is what the encoder reports for an item it does not cover.
var errColumns = errors.New("wire: not coverable by the column form")

// column is one place's state, the same on both sides: its children, the
// last integer and string written there.
type column struct {
	child   [columnSteps]uint16 // index + 1 of the column below, 0: none yet
	buf     []byte              // encoder: what was written; decoder: what is left
	prevInt uint64
	prevStr []byte
}

// argWidth returns the bytes of argument an initial byte's additional
// information announces; ok is false for 28..31 (reserved, indefinite).
func argWidth(info byte) (w int, ok bool) {
	switch {
	case info < 24:
		return 0, true
	case info <= 27:
		return 1 << (info - 24), true
	}
	return 0, false
}

// readHead reads the head of the item at b[i] (i < len(b)): its major
// type, the bytes of argument after the initial byte, and the argument
// (for major type 7, the raw bits); ok is false for reserved and
// indefinite forms and a truncated argument.
func readHead(b []byte, i int) (major byte, w int, arg uint64, ok bool) {
	major, info := b[i]>>5, b[i]&0x1f
	if w, ok = argWidth(info); !ok || i+1+w > len(b) {
		return 0, 0, 0, false
	}
	arg = uint64(info)
	if w > 0 {
		arg = 0
		for _, x := range b[i+1 : i+1+w] {
			arg = arg<<8 | uint64(x)
		}
	}
	return major, w, arg, true
}

func zigzag(d uint64) uint64   { return d<<1 ^ uint64(int64(d)>>63) }
func unzigzag(z uint64) uint64 { return z>>1 ^ -(z & 1) }

// elemStep returns the step to element k of an array.
func elemStep(k uint64, tuple bool) int {
	if tuple {
		return stepElem0 + int(k)
	}
	return stepElem
}

// valueStep returns the step to the value of a map key whose initial byte
// is kb.
func valueStep(kb byte) int {
	if kb < 24 { // major 0, argument inline
		return stepValue0 + int(kb)
	}
	return stepValue
}

// sharedPrefix returns how many leading bytes a and b share.
func sharedPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

type colEncoder struct {
	cols []column
}

// EncodeColumns returns the column form of the single CBOR data item b.
// It fails on anything but exactly one well-formed item with definite
// lengths within MaxColumnDepth and MaxColumns.
func EncodeColumns(b []byte) ([]byte, error) {
	e := &colEncoder{cols: make([]column, 1, 32)}
	n, err := e.item(b, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the item", errColumns, len(b)-n)
	}
	size := binary.MaxVarintLen64 * (2 + len(e.cols))
	for i := range e.cols {
		size += len(e.cols[i].buf)
	}
	out := make([]byte, 0, size)
	out = binary.AppendUvarint(out, uint64(len(b)))
	out = binary.AppendUvarint(out, uint64(len(e.cols)))
	for i := range e.cols {
		out = binary.AppendUvarint(out, uint64(len(e.cols[i].buf)))
	}
	for i := range e.cols {
		out = append(out, e.cols[i].buf...)
	}
	return out, nil
}

// below returns the column one step below c, making it on first use.
func (e *colEncoder) below(c int32, step int) (int32, error) {
	if k := e.cols[c].child[step]; k != 0 {
		return int32(k) - 1, nil
	}
	if len(e.cols) >= MaxColumns {
		return 0, fmt.Errorf("%w: more than %d columns", errColumns, MaxColumns)
	}
	e.cols = append(e.cols, column{})
	k := len(e.cols) - 1
	e.cols[c].child[step] = uint16(k + 1)
	return int32(k), nil
}

// item writes the item at b[i:] into column c and returns where it ends.
func (e *colEncoder) item(b []byte, i int, c int32, depth int) (int, error) {
	if depth > MaxColumnDepth {
		return 0, fmt.Errorf("%w: nested deeper than %d", errColumns, MaxColumnDepth)
	}
	if i >= len(b) {
		return 0, fmt.Errorf("%w: truncated", errColumns)
	}
	ib := b[i]
	major, w, arg, ok := readHead(b, i)
	if !ok {
		return 0, fmt.Errorf("%w: initial byte %#x at %d", errColumns, ib, i)
	}
	i += 1 + w
	col := &e.cols[c]
	col.buf = append(col.buf, ib)
	switch major {
	case 0, 1, 6:
		if w > 0 {
			col.buf = binary.AppendUvarint(col.buf, zigzag(arg-col.prevInt))
		}
		col.prevInt = arg
		if major == 6 {
			k, err := e.below(c, stepTagged)
			if err != nil {
				return 0, err
			}
			return e.item(b, i, k, depth+1)
		}
		return i, nil
	case 7:
		col.buf = append(col.buf, b[i-w:i]...)
		return i, nil
	}
	if w > 0 {
		col.buf = binary.AppendUvarint(col.buf, arg)
	}
	switch major {
	case 2, 3:
		if arg > uint64(len(b)-i) {
			return 0, fmt.Errorf("%w: string of %d bytes past the end", errColumns, arg)
		}
		s := b[i : i+int(arg)]
		if major == 2 {
			if len(s) >= columnNestMin && nestable(s, depth+1) {
				col.buf = append(col.buf, flagNested)
				k, err := e.below(c, stepNested)
				if err != nil {
					return 0, err
				}
				if _, err := e.item(s, 0, k, depth+1); err != nil {
					return 0, err
				}
				return i + len(s), nil
			}
			col.buf = append(col.buf, flagRaw)
		}
		p := sharedPrefix(col.prevStr, s)
		col.buf = binary.AppendUvarint(col.buf, uint64(p))
		col.buf = append(col.buf, s[p:]...)
		col.prevStr = s
		return i + len(s), nil
	case 4:
		if arg > uint64(len(b)-i) {
			return 0, fmt.Errorf("%w: array of %d past the end", errColumns, arg)
		}
		tuple := isTuple(b, i, arg)
		if tuple {
			col.buf = append(col.buf, flagTuple)
		} else {
			col.buf = append(col.buf, flagList)
		}
		for k := range arg {
			kc, err := e.below(c, elemStep(k, tuple))
			if err != nil {
				return 0, err
			}
			if i, err = e.item(b, i, kc, depth+1); err != nil {
				return 0, err
			}
		}
		return i, nil
	default: // 5
		if arg > uint64(len(b)-i)/2 {
			return 0, fmt.Errorf("%w: map of %d past the end", errColumns, arg)
		}
		for range arg {
			kc, err := e.below(c, stepKey)
			if err != nil {
				return 0, err
			}
			if i >= len(b) {
				return 0, fmt.Errorf("%w: truncated map", errColumns)
			}
			kb := b[i]
			if i, err = e.item(b, i, kc, depth+1); err != nil {
				return 0, err
			}
			vc, err := e.below(c, valueStep(kb))
			if err != nil {
				return 0, err
			}
			if i, err = e.item(b, i, vc, depth+1); err != nil {
				return 0, err
			}
		}
		return i, nil
	}
}

// isTuple reports whether the n elements at b[i:] are best given a column
// each: a record of a few fields of different kinds, like a register write
// [replica, counter, timestamp, value], rather than a list of like items.
// The choice is the encoder's (the flag records it): here, 2 to maxTuple
// elements not all of one major type.
func isTuple(b []byte, i int, n uint64) bool {
	if n < 2 || n > maxTuple {
		return false
	}
	first := b[i] >> 5
	mixed := false
	for range n {
		if i >= len(b) {
			return false
		}
		mixed = mixed || b[i]>>5 != first
		var ok bool
		if i, ok = skipItem(b, i, 0); !ok {
			return false
		}
	}
	return mixed
}

// nestable reports whether s, walked into at depth, is exactly one
// well-formed array or map with definite lengths within MaxColumnDepth: a
// byte string worth walking into. (One that is not is written as it is,
// so a payload nested too deep costs its own columns, not the form of the
// whole message.)
func nestable(s []byte, depth int) bool {
	if major := s[0] >> 5; major != 4 && major != 5 {
		return false
	}
	n, ok := skipItem(s, 0, depth)
	return ok && n == len(s)
}

// skipItem returns where the well-formed item at b[i:] ends.
func skipItem(b []byte, i, depth int) (int, bool) {
	if depth > MaxColumnDepth || i >= len(b) {
		return 0, false
	}
	major, w, arg, ok := readHead(b, i)
	if !ok {
		return 0, false
	}
	i += 1 + w
	switch major {
	case 0, 1, 7:
		return i, true
	case 6:
		return skipItem(b, i, depth+1)
	case 2, 3:
		if arg > uint64(len(b)-i) {
			return 0, false
		}
		return i + int(arg), true
	}
	n := arg
	if major == 5 {
		if arg > uint64(len(b)) {
			return 0, false
		}
		n = 2 * arg
	}
	if n > uint64(len(b)-i) {
		return 0, false
	}
	for range n {
		if i, ok = skipItem(b, i, depth+1); !ok {
			return 0, false
		}
	}
	return i, true
}
