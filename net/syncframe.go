package net

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/concord-p2p/concord/wire"
)

// write sends m as one frame; columns says the other side reads the
// column form (both Hellos announced wire.FeatureColumns).
func (s *Syncer) write(bw *bufio.Writer, io *streamCounts, mu *sync.Mutex, m *wire.SyncMsg, columns bool) error {
	raw, err := wire.EncodeSyncMsg(m)
	if err != nil {
		return err
	}
	flag, b := frameRaw, raw
	if len(raw) >= compressMin {
		plain, colFlag := raw, frameRaw
		if columns && len(raw) >= columnsMin && len(raw) <= columnsMax && m.Type != wire.TypeSyncHello {
			// The reader bounds the column form (what zstd declares) as
			// well as the message it rebuilds, and the form can be the
			// larger.
			bound := s.cfg.Limits.MaxFrameBytes
			if m.Type == wire.TypeSyncSnapshot {
				bound = s.cfg.Limits.MaxSnapshotBytes
			}
			if c, err := wire.EncodeColumns(raw); err == nil && len(c) <= bound {
				plain, colFlag = c, frameColumns
			}
		}
		enc := s.zenc
		if len(plain) > zstdSmallWindow {
			s.zencOnce.Do(func() {
				s.zencBig, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithAllLitEntropyCompression(true), zstd.WithWindowSize(zstdWindow))
			})
			enc = s.zencBig
		}
		if enc != nil {
			if z := enc.EncodeAll(plain, make([]byte, 0, len(plain)/2)); len(z) < len(raw) {
				flag, b = frameZstd|colFlag, z
			}
		}
	}
	if m.Type == wire.TypeSyncSnapshot {
		flag |= frameSnapshot
	}
	var hdr [binary.MaxVarintLen64 + 1]byte
	k := binary.PutUvarint(hdr[:], uint64(len(b)+1))
	hdr[k] = flag
	k++
	if _, err := bw.Write(hdr[:k]); err != nil {
		return err
	}
	if _, err := bw.Write(b); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	s.cfg.Metrics.syncFrame(DirectionOut, flag)
	mu.Lock()
	io.msgsOut++
	io.bytesOut += k + len(b)
	mu.Unlock()
	return nil
}

// Frames on the sync stream: uvarint(length) || flag || body. The body is
// a sync message's CBOR, zstd-compressed when flag has frameZstd, in the
// column form (wire.EncodeColumns; under zstd, when both set) when flag
// has frameColumns — only to a peer whose Hello announced
// wire.FeatureColumns, only for a message of at least columnsMin bytes
// other than a Hello, and only compressed. Only a
// frame flagged frameSnapshot may carry a snapshot and exceed
// MaxFrameBytes (up to MaxSnapshotBytes, compressed or not), so the reader
// knows a frame's bound before reading or inflating it. Frames of at least
// compressMin bytes are compressed when that helps.
const (
	frameRaw      byte = 0
	frameZstd     byte = 1
	frameSnapshot byte = 2
	frameColumns  byte = 4
	compressMin        = 256
	columnsMin         = 4 << 10
	// columnsMax: a bigger message (a big snapshot) goes without the
	// column form, whose writer holds a few times the message in columns
	// being built.
	columnsMax = 16 << 20
)

// frameBound returns the largest body a frame of the given kind may have
// at this point of sess, or why it is refused: the first frame must be a
// Hello (wire.SyncLimits.MaxHelloBytes), a snapshot comes only where
// Exchange.SnapshotAllowed says so (MaxSnapshotBytes), any other frame
// is bounded by MaxFrameBytes.
func (s *Syncer) frameBound(sess Exchange, snapshot bool) (int, error) {
	lim := s.cfg.Limits
	switch {
	case snapshot:
		if err := sess.SnapshotAllowed(); err != nil {
			return 0, err
		}
		return lim.MaxSnapshotBytes, nil
	case !sess.GotHello():
		return min(lim.MaxHelloBytes(), lim.MaxFrameBytes), nil
	}
	return lim.MaxFrameBytes, nil
}

// frameReader reads the frames of one stream and reserves their memory in
// scope (the stream's: its service and peer limits apply) before reading
// or inflating a body. What the last frame reserved stays reserved until
// release, which the caller calls once the frame is processed.
type frameReader struct {
	s     *Syncer
	br    *bufio.Reader
	scope network.ResourceScope
	held  int
	// own is what our Hello announced (0 until the exchange runs: the
	// first frame, a Hello, is never in the column form); peer, what the
	// peer's Hello announced (0 until it is read), for the writer.
	own  wire.Features
	peer atomic.Uint64
}

// shared returns the features both Hellos announced.
func (fr *frameReader) shared() wire.Features {
	return fr.own & wire.Features(fr.peer.Load())
}

// newFrameReader reads st; scope defaults to st's.
func (s *Syncer) newFrameReader(st network.Stream, scope network.ResourceScope) *frameReader {
	if scope == nil {
		scope = st.Scope()
	}
	return &frameReader{s: s, br: bufio.NewReader(st), scope: scope}
}

func (fr *frameReader) reserve(n int) error {
	if n <= 0 {
		return nil
	}
	if err := fr.scope.ReserveMemory(n, network.ReservationPriorityAlways); err != nil {
		return fmt.Errorf("%w: reserving %d bytes for a frame: %w", ErrSyncBusy, n, err)
	}
	fr.held += n
	return nil
}

func (fr *frameReader) unreserve(n int) {
	n = min(n, fr.held)
	if n > 0 {
		fr.scope.ReleaseMemory(n)
		fr.held -= n
	}
}

// release ends the reservation of the last frame.
func (fr *frameReader) release() { fr.unreserve(fr.held) }

// bodyStep is how much of a frame body is read before the whole announced
// length is allocated: memory follows the bytes received up to there.
const bodyStep = 1 << 20

// next reads one frame and returns its message with its size on the wire.
// bound, given the frame's kind from its header, returns the largest body
// allowed or why the frame is refused; a refused or oversized frame is
// refused before its body is read. Reserved, in turn: the body as
// received; its decompressed form (the size its zstd header declares,
// which must be present and within bound; the received body is then
// released); in the column form, the message it rebuilds (the size it
// declares, within bound; the column form is then released); the decoded
// message. The peak is about twice the largest form.
func (fr *frameReader) next(bound func(snapshot bool) (int, error)) (*wire.SyncMsg, int, error) {
	fr.release()
	br := fr.br
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, 0, err
	}
	flag, err := br.ReadByte()
	if err != nil {
		return nil, 0, err
	}
	if flag&^(frameZstd|frameSnapshot|frameColumns) != 0 {
		return nil, 0, fmt.Errorf("%w: sync frame flag %d", wire.ErrMalformed, flag)
	}
	if flag&frameColumns != 0 && !fr.own.Has(wire.FeatureColumns) {
		return nil, 0, fmt.Errorf("%w: a sync frame in the column form, which this side did not announce", wire.ErrMalformed)
	}
	snapshot := flag&frameSnapshot != 0
	maxBody, err := bound(snapshot)
	if err != nil {
		return nil, 0, err
	}
	if n == 0 || n-1 > uint64(maxBody) {
		return nil, 0, fmt.Errorf("%w: sync frame of %d bytes, limit %d", wire.ErrTooLarge, n-1, maxBody)
	}
	size := int(n - 1)
	if err := fr.reserve(size); err != nil {
		return nil, 0, err
	}
	body, err := readBody(br, size)
	if err != nil {
		return nil, 0, err
	}
	if flag&frameZstd != 0 {
		var zh zstd.Header
		if err := zh.Decode(body); err != nil {
			return nil, 0, fmt.Errorf("%w: sync frame zstd header: %v", wire.ErrMalformed, err)
		}
		if !zh.HasFCS {
			return nil, 0, fmt.Errorf("%w: compressed sync frame without a content size", wire.ErrMalformed)
		}
		if zh.FrameContentSize > uint64(maxBody) {
			return nil, 0, fmt.Errorf("%w: sync frame inflates to %d bytes, limit %d", wire.ErrTooLarge, zh.FrameContentSize, maxBody)
		}
		plain := int(zh.FrameContentSize)
		if err := fr.reserve(plain); err != nil {
			return nil, 0, err
		}
		out, err := fr.s.zdec.DecodeAll(body, make([]byte, 0, plain))
		if err != nil {
			return nil, 0, fmt.Errorf("%w: sync frame does not decompress within %d bytes: %v", wire.ErrMalformed, plain, err)
		}
		fr.unreserve(size) // the compressed body is dropped
		body, size = out, plain
	}
	if flag&frameColumns != 0 {
		plain, err := wire.ColumnsSize(body)
		if err != nil {
			return nil, 0, err
		}
		if plain > maxBody {
			return nil, 0, fmt.Errorf("%w: sync frame rebuilds %d bytes, limit %d", wire.ErrTooLarge, plain, maxBody)
		}
		if err := fr.reserve(plain); err != nil {
			return nil, 0, err
		}
		out, err := wire.DecodeColumns(body, plain)
		if err != nil {
			return nil, 0, err
		}
		fr.unreserve(size) // the column form is dropped
		body = out
	}
	// The decoded message copies its byte strings out of body.
	if err := fr.reserve(len(body)); err != nil {
		return nil, 0, err
	}
	m, err := wire.DecodeSyncMsg(body, fr.s.cfg.Limits)
	if err != nil {
		return nil, 0, err
	}
	fr.unreserve(len(body)) // body is dropped; the message stays reserved
	if snapshot != (m.Type == wire.TypeSyncSnapshot) {
		return nil, 0, fmt.Errorf("%w: frame flag %d does not match message type %d", wire.ErrMalformed, flag, m.Type)
	}
	if flag&frameColumns != 0 && m.Type == wire.TypeSyncHello {
		return nil, 0, fmt.Errorf("%w: a Hello in the column form", wire.ErrMalformed)
	}
	if m.Type == wire.TypeSyncHello {
		fr.peer.Store(uint64(m.Features))
	}
	fr.s.cfg.Metrics.syncFrame(DirectionIn, flag)
	var hdr [binary.MaxVarintLen64]byte
	return m, int(n) + binary.PutUvarint(hdr[:], n), nil
}

// readBody reads n bytes. Past bodyStep bytes received, the rest of the
// announced length is allocated at once (it is reserved already).
func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= bodyStep {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, unexpectedEOF(err)
	}
	head := make([]byte, bodyStep)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, unexpectedEOF(err)
	}
	b := make([]byte, n)
	copy(b, head)
	_, err := io.ReadFull(r, b[bodyStep:])
	return b, unexpectedEOF(err)
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
