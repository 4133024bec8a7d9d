package crdt

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// seqZipMin is the shortest column EncodeSeq deflates (as Automerge, which
// deflates columns of 256 bytes and more): below it the deflate header and
// the length cost more than they save.
const seqZipMin = 256

// seqZipLevel is the compress/flate level of the deflated columns.
const seqZipLevel = flate.BestCompression

// seqColumn is one byte column of an encoded sequence.
type seqColumn struct {
	key  uint // its CBOR key, and its bit in wSeq.Zip
	name string
	b    *[]byte
}

func (w *wSeq) columns() []seqColumn {
	return []seqColumn{
		{6, "hdr", &w.Hdr}, {7, "rep", &w.Rep}, {8, "ctr", &w.Ctr}, {9, "len", &w.Len},
		{10, "refs", &w.Refs}, {11, "dels", &w.Dels}, {12, "text", &w.Text},
	}
}

// seqZipMask has the bits of the columns that may be deflated.
const seqZipMask = 1<<6 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12

// zip deflates each column of at least seqZipMin bytes that it shrinks,
// writing the column's length before the deflate stream, and sets the
// column's bit in w.Zip.
func (w *wSeq) zip() {
	var fw *flate.Writer
	var buf bytes.Buffer
	for _, c := range w.columns() {
		if len(*c.b) < seqZipMin {
			continue
		}
		buf.Reset()
		buf.Write(binary.AppendUvarint(nil, uint64(len(*c.b))))
		if fw == nil {
			var err error
			if fw, err = flate.NewWriter(&buf, seqZipLevel); err != nil {
				panic(fmt.Sprintf("crdt: encode sequence: %v", err)) // a valid level: cannot fail
			}
		} else {
			fw.Reset(&buf)
		}
		// Writes to a bytes.Buffer do not fail.
		_, _ = fw.Write(*c.b)
		_ = fw.Close()
		if buf.Len() < len(*c.b) {
			*c.b = bytes.Clone(buf.Bytes())
			w.Zip |= 1 << c.key
		}
	}
}

// unzip inflates the columns that w.Zip names. Together they may inflate to
// at most budget bytes: a column's declared length is checked against what
// is left of the budget before anything is allocated for it, and the
// stream must inflate to exactly that length. *budget is decreased by
// what they inflate to (a document's sequences share one budget).
func (w *wSeq) unzip(budget *int) error {
	if w.Zip&^seqZipMask != 0 {
		return fmt.Errorf("%w: compressed-column bits %#x name no byte column", ErrMalformed, w.Zip)
	}
	var fr io.ReadCloser
	for _, c := range w.columns() {
		if w.Zip&(1<<c.key) == 0 {
			continue
		}
		z := *c.b
		n, k := binary.Uvarint(z)
		switch {
		case k <= 0:
			return fmt.Errorf("%w: compressed column %s has no length", ErrMalformed, c.name)
		case n > uint64(*budget):
			return fmt.Errorf("%w: compressed column %s inflates to %d bytes, over the %d left of the limit", ErrTooLarge, c.name, n, *budget)
		case n < seqZipMin || uint64(len(z)) >= n:
			return fmt.Errorf("%w: column %s of %d bytes is compressed to %d: not canonical", ErrMalformed, c.name, n, len(z))
		}
		*budget -= int(n)
		src := bytes.NewReader(z[k:])
		if fr == nil {
			fr = flate.NewReader(src)
		} else if err := fr.(flate.Resetter).Reset(src, nil); err != nil {
			return fmt.Errorf("%w: column %s: %v", ErrMalformed, c.name, err)
		}
		out := make([]byte, n)
		if _, err := io.ReadFull(fr, out); err != nil {
			return fmt.Errorf("%w: compressed column %s: %v", ErrMalformed, c.name, err)
		}
		var one [1]byte
		if m, err := io.ReadFull(fr, one[:]); m > 0 || !errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: compressed column %s is longer than its %d bytes or badly ended", ErrMalformed, c.name, n)
		}
		if src.Len() > 0 {
			return fmt.Errorf("%w: %d bytes after compressed column %s", ErrMalformed, src.Len(), c.name)
		}
		*c.b = out
	}
	return nil
}
