package wire

import (
	"encoding/binary"
	"fmt"
)

// ColumnsSize returns the size of the item the column form b rebuilds
// (its first field), so that a reader can bound or reserve it before
// DecodeColumns.
func ColumnsSize(b []byte) (int, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(int(^uint(0)>>1)) {
		return 0, fmt.Errorf("%w: column form without a size", ErrMalformed)
	}
	return int(n), nil
}

type colDecoder struct {
	cols []column
	out  []byte // the item rebuilt so far, never past its declared size
}

// DecodeColumns rebuilds the CBOR item whose column form is b, refusing
// (ErrTooLarge) an item declared larger than max and (ErrMalformed)
// anything that is not exactly the form of one item: columns left unread
// or missing, a size that does not match, a string that holds a nested
// item of another length. It does no work beyond the declared size: each
// step writes at least one byte of it.
func DecodeColumns(b []byte, max int) ([]byte, error) {
	size, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, fmt.Errorf("%w: column form without a size", ErrMalformed)
	}
	if size > uint64(max) {
		return nil, fmt.Errorf("%w: column form of %d bytes, limit %d", ErrTooLarge, size, max)
	}
	b = b[k:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > MaxColumns {
		return nil, fmt.Errorf("%w: column form of %d columns", ErrMalformed, n)
	}
	b = b[k:]
	if n > uint64(len(b)) { // each column holds at least one byte
		return nil, fmt.Errorf("%w: column form of %d columns in %d bytes", ErrMalformed, n, len(b))
	}
	lens := make([]uint64, n)
	for i := range lens {
		l, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, fmt.Errorf("%w: column form: length of column %d", ErrMalformed, i)
		}
		lens[i], b = l, b[k:]
	}
	d := &colDecoder{cols: make([]column, 0, n)}
	for i, l := range lens {
		if l == 0 { // a column used holds at least the initial byte of an item
			return nil, fmt.Errorf("%w: column %d is empty", ErrMalformed, i)
		}
		if l > uint64(len(b)) {
			return nil, fmt.Errorf("%w: column %d of %d bytes past the end", ErrMalformed, i, l)
		}
		d.cols = append(d.cols, column{buf: b[:l:l]})
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the columns", ErrMalformed, len(b))
	}
	d.out = make([]byte, 0, size)
	d.cols = d.cols[:1] // the others join in the order of their first use
	if err := d.item(0, 0); err != nil {
		return nil, err
	}
	if uint64(len(d.out)) != size {
		return nil, fmt.Errorf("%w: column form rebuilds %d bytes, declared %d", ErrMalformed, len(d.out), size)
	}
	if len(d.cols) != int(n) {
		return nil, fmt.Errorf("%w: column form declares %d columns, uses %d", ErrMalformed, n, len(d.cols))
	}
	for i := range d.cols {
		if len(d.cols[i].buf) != 0 {
			return nil, fmt.Errorf("%w: %d bytes left in column %d", ErrMalformed, len(d.cols[i].buf), i)
		}
	}
	return d.out, nil
}

// below returns the column one step below c; the next unused one on first
// use.
func (d *colDecoder) below(c int32, step int) (int32, error) {
	if k := d.cols[c].child[step]; k != 0 {
		return int32(k) - 1, nil
	}
	k := len(d.cols)
	if k == cap(d.cols) {
		return 0, fmt.Errorf("%w: column form uses more than its %d columns", ErrMalformed, k)
	}
	d.cols = d.cols[:k+1]
	d.cols[c].child[step] = uint16(k + 1)
	return int32(k), nil
}

// bytes takes n bytes from column c.
func (d *colDecoder) bytes(c int32, n uint64) ([]byte, error) {
	col := &d.cols[c]
	if n > uint64(len(col.buf)) {
		return nil, fmt.Errorf("%w: column %d ends early", ErrMalformed, c)
	}
	s := col.buf[:n]
	col.buf = col.buf[n:]
	return s, nil
}

func (d *colDecoder) uvarint(c int32) (uint64, error) {
	col := &d.cols[c]
	v, k := binary.Uvarint(col.buf)
	if k <= 0 {
		return 0, fmt.Errorf("%w: column %d: bad number", ErrMalformed, c)
	}
	col.buf = col.buf[k:]
	return v, nil
}

// emit appends p to the item, within its declared size.
func (d *colDecoder) emit(p ...byte) error {
	if len(p) > cap(d.out)-len(d.out) {
		return fmt.Errorf("%w: column form rebuilds more than its declared %d bytes", ErrMalformed, cap(d.out))
	}
	d.out = append(d.out, p...)
	return nil
}

// item rebuilds one item from column c.
func (d *colDecoder) item(c int32, depth int) error {
	if depth > MaxColumnDepth {
		return fmt.Errorf("%w: column form nested deeper than %d", ErrMalformed, MaxColumnDepth)
	}
	h, err := d.bytes(c, 1)
	if err != nil {
		return err
	}
	ib := h[0]
	major, info := ib>>5, ib&0x1f
	w, ok := argWidth(info)
	if !ok {
		return fmt.Errorf("%w: column form: initial byte %#x", ErrMalformed, ib)
	}
	if err := d.emit(ib); err != nil {
		return err
	}
	if major == 7 {
		raw, err := d.bytes(c, uint64(w))
		if err != nil {
			return err
		}
		return d.emit(raw...)
	}
	arg := uint64(info)
	if w > 0 {
		if arg, err = d.uvarint(c); err != nil {
			return err
		}
		if major <= 1 || major == 6 {
			arg = d.cols[c].prevInt + unzigzag(arg)
		}
		if w < 8 && arg>>(8*w) != 0 {
			return fmt.Errorf("%w: column form: argument %d does not fit %d bytes", ErrMalformed, arg, w)
		}
		var be [8]byte
		binary.BigEndian.PutUint64(be[:], arg)
		if err := d.emit(be[8-w:]...); err != nil {
			return err
		}
	}
	switch major {
	case 0, 1:
		d.cols[c].prevInt = arg
		return nil
	case 6:
		d.cols[c].prevInt = arg
		k, err := d.below(c, stepTagged)
		if err != nil {
			return err
		}
		return d.item(k, depth+1)
	case 2, 3:
		return d.str(c, major, arg, depth)
	case 4:
		flag, err := d.bytes(c, 1)
		if err != nil {
			return err
		}
		tuple := flag[0] == flagTuple
		if flag[0] > flagTuple || tuple && (arg < 1 || arg > maxTuple) {
			return fmt.Errorf("%w: column form: array of %d with flag %d", ErrMalformed, arg, flag[0])
		}
		for k := uint64(0); k < arg; k++ {
			kc, err := d.below(c, elemStep(k, tuple))
			if err != nil {
				return err
			}
			if err := d.item(kc, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	for k := uint64(0); k < arg; k++ { // 5
		kc, err := d.below(c, stepKey)
		if err != nil {
			return err
		}
		at := len(d.out)
		if err := d.item(kc, depth+1); err != nil {
			return err
		}
		vc, err := d.below(c, valueStep(d.out[at]))
		if err != nil {
			return err
		}
		if err := d.item(vc, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// str rebuilds the content of a string of n bytes in column c.
func (d *colDecoder) str(c int32, major byte, n uint64, depth int) error {
	if n > uint64(cap(d.out)-len(d.out)) {
		return fmt.Errorf("%w: column form: string of %d bytes past the declared size", ErrMalformed, n)
	}
	if major == 2 {
		flag, err := d.bytes(c, 1)
		if err != nil {
			return err
		}
		switch flag[0] {
		case flagNested:
			at := len(d.out)
			k, err := d.below(c, stepNested)
			if err != nil {
				return err
			}
			if err := d.item(k, depth+1); err != nil {
				return err
			}
			if got := uint64(len(d.out) - at); got != n {
				return fmt.Errorf("%w: column form: byte string of %d bytes holds %d", ErrMalformed, n, got)
			}
			return nil
		case flagRaw:
		default:
			return fmt.Errorf("%w: column form: byte string flag %d", ErrMalformed, flag[0])
		}
	}
	p, err := d.uvarint(c)
	if err != nil {
		return err
	}
	col := &d.cols[c]
	if p > n || p > uint64(len(col.prevStr)) {
		return fmt.Errorf("%w: column form: prefix of %d bytes", ErrMalformed, p)
	}
	rest, err := d.bytes(c, n-p)
	if err != nil {
		return err
	}
	at := len(d.out)
	d.out = append(d.out, col.prevStr[:p]...) // within cap: checked above
	d.out = append(d.out, rest...)
	col.prevStr = d.out[at:len(d.out):len(d.out)]
	return nil
}
