package net

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// SyncProtocol is the libp2p protocol ID of the anti-entropy stream.
const SyncProtocol protocol.ID = "/concord/sync/1.0.0"

// ErrUnknownDoc is returned when a peer asks to sync a document this node
// does not host.
var ErrUnknownDoc = errors.New("net: unknown document")

// SyncerConfig configures a Syncer.
type SyncerConfig struct {
	// Timeout bounds one exchange. Default 30 s.
	Timeout time.Duration
	// Limits bound decoded frames. Default DefaultSyncLimits().
	Limits SyncLimits
	// Resolve returns the replica of a hosted document, or nil.
	Resolve func(doc string) Replica
	// Metrics, optional.
	Metrics *Metrics
	// Logger, optional.
	Logger *slog.Logger
	// OnExchange, optional, is called after every exchange, either role.
	OnExchange func(ExchangeEvent)
}

// ExchangeEvent describes one finished anti-entropy exchange.
type ExchangeEvent struct {
	Peer      peer.ID
	Doc       string
	Initiator bool
	Stats     SyncStats
	Duration  time.Duration
	Err       error
}

// Syncer runs anti-entropy exchanges over libp2p streams: it answers
// incoming exchanges and starts outgoing ones, at most one in flight per
// peer and document (a request while one runs is coalesced into one re-run).
type Syncer struct {
	h   host.Host
	cfg SyncerConfig

	zenc *zstd.Encoder
	zdec *zstd.Decoder

	mu       sync.Mutex
	inflight map[syncKey]*syncSlot
	closed   bool
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

type syncKey struct {
	p   peer.ID
	doc string
}

type syncSlot struct{}

// NewSyncer registers the sync protocol handler on h.
func NewSyncer(h host.Host, cfg SyncerConfig) *Syncer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Limits.MaxFrameBytes == 0 {
		cfg.Limits = DefaultSyncLimits()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Syncer{h: h, cfg: cfg, inflight: map[syncKey]*syncSlot{}, ctx: ctx, cancel: cancel}
	s.zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	s.zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(cfg.Limits.MaxSnapshotBytes)))
	h.SetStreamHandler(SyncProtocol, s.handle)
	return s
}

// Close removes the handler, cancels running exchanges and waits for them.
func (s *Syncer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.h.RemoveStreamHandler(SyncProtocol)
	s.cancel()
	s.wg.Wait()
	_ = s.zenc.Close()
	s.zdec.Close()
	return nil
}

// Trigger starts an exchange with p for r in the background unless one
// between them for r.Doc() is running, in either direction: that one
// repairs both sides already.
func (s *Syncer) Trigger(p peer.ID, r Replica) {
	k := syncKey{p, r.Doc()}
	if !s.acquire(k) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.release(k)
		if _, err := s.sync(s.ctx, p, r); err != nil {
			s.cfg.Logger.Debug("sync failed", "peer", p, "doc", k.doc, "err", err)
		}
	}()
}

// Busy reports whether an exchange with p for doc is running.
func (s *Syncer) Busy(p peer.ID, doc string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[syncKey{p, doc}] != nil
}

func (s *Syncer) acquire(k syncKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.inflight[k] != nil {
		return false
	}
	s.inflight[k] = &syncSlot{}
	return true
}

func (s *Syncer) release(k syncKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, k)
}

// Sync runs one exchange with p for r now (even if another is running) and
// returns its counts.
func (s *Syncer) Sync(ctx context.Context, p peer.ID, r Replica) (SyncStats, error) {
	return s.sync(ctx, p, r)
}

func (s *Syncer) sync(ctx context.Context, p peer.ID, r Replica) (SyncStats, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	st, err := s.h.NewStream(network.WithAllowLimitedConn(ctx, "sync"), p, SyncProtocol)
	if err != nil {
		err = fmt.Errorf("net: open sync stream: %w", err)
		s.record(p, r.Doc(), true, SyncStats{}, start, err)
		return SyncStats{}, err
	}
	sess := NewSyncSession(r, p, s.cfg.Limits)
	stats, err := s.run(ctx, st, sess, nil)
	s.record(p, r.Doc(), true, stats, start, err)
	return stats, err
}

func (s *Syncer) record(p peer.ID, doc string, initiator bool, st SyncStats, start time.Time, err error) {
	if s.cfg.OnExchange != nil {
		s.cfg.OnExchange(ExchangeEvent{Peer: p, Doc: doc, Initiator: initiator, Stats: st, Duration: time.Since(start), Err: err})
	}
	m := s.cfg.Metrics
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case errors.Is(err, ErrUnknownDoc):
		result = "unknown_doc"
	case err != nil:
		result = "error"
	}
	m.SyncExchanges.WithLabelValues(result).Inc()
	m.SyncBytes.WithLabelValues("out").Add(float64(st.BytesOut))
	m.SyncBytes.WithLabelValues("in").Add(float64(st.BytesIn))
	m.SyncDuration.Observe(time.Since(start).Seconds())
}

// handle answers an exchange started by a peer.
func (s *Syncer) handle(st network.Stream) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = st.Reset()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	br := bufio.NewReader(st)
	_ = st.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
	remote := st.Conn().RemotePeer()
	first, n, err := s.readFrame(br)
	if err != nil {
		_ = st.Reset()
		s.record(remote, "", false, SyncStats{}, start, err)
		return
	}
	if first.Type != TypeSyncHello {
		_ = st.Reset()
		s.record(remote, first.Doc, false, SyncStats{}, start, ErrSyncProtocol)
		return
	}
	var r Replica
	if s.cfg.Resolve != nil {
		r = s.cfg.Resolve(first.Doc)
	}
	if r == nil {
		s.cfg.Logger.Debug("sync for unknown document", "peer", st.Conn().RemotePeer(), "doc", first.Doc)
		_ = st.Reset()
		s.record(remote, first.Doc, false, SyncStats{}, start, ErrUnknownDoc)
		return
	}
	k := syncKey{remote, first.Doc}
	if s.acquire(k) {
		defer s.release(k)
	}
	sess := NewSyncSession(r, remote, s.cfg.Limits)
	if err := sess.Handle(ctx, first); err != nil {
		_ = st.Reset()
		return
	}
	sess.stats.BytesIn += n
	stats, err := s.run(ctx, st, sess, br)
	s.record(remote, first.Doc, false, stats, start, err)
	if err != nil {
		s.cfg.Logger.Debug("sync (responder) failed", "peer", st.Conn().RemotePeer(), "doc", first.Doc, "err", err)
	}
}

// run drives sess over st: a reader goroutine feeds the session, this
// goroutine writes what it produces. Both directions flow at once, so large
// exchanges cannot deadlock on full stream buffers.
func (s *Syncer) run(ctx context.Context, st network.Stream, sess *SyncSession, br *bufio.Reader) (SyncStats, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if br == nil {
		br = bufio.NewReader(st)
	}
	var mu sync.Mutex
	wake := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() {
		for {
			m, n, err := s.readFrame(br)
			if err != nil {
				readErr <- err
				return
			}
			mu.Lock()
			sess.stats.BytesIn += n
			err = sess.Handle(ctx, m)
			done := sess.gotDone
			mu.Unlock()
			select {
			case wake <- struct{}{}:
			default:
			}
			if err != nil {
				readErr <- err
				return
			}
			if done {
				readErr <- nil
				return
			}
		}
	}()
	bw := bufio.NewWriter(st)
	fail := func(err error) (SyncStats, error) {
		_ = st.Reset()
		mu.Lock()
		defer mu.Unlock()
		return sess.stats, err
	}
	if !sess.gotHello { // initiator: hello goes first
		if err := s.write(bw, sess, &mu, sess.Hello()); err != nil {
			return fail(err)
		}
	} else {
		if err := s.write(bw, sess, &mu, sess.Hello()); err != nil {
			return fail(err)
		}
	}
	readDone := false
	for {
		mu.Lock()
		m, err := sess.Next(ctx)
		mu.Unlock()
		if err != nil {
			return fail(err)
		}
		if m != nil {
			if err := s.write(bw, sess, &mu, m); err != nil {
				return fail(err)
			}
			if m.Type == TypeSyncDone {
				_ = st.CloseWrite()
			}
			continue
		}
		mu.Lock()
		finished := sess.Finished()
		mu.Unlock()
		if finished && readDone {
			break
		}
		select {
		case <-wake:
		case err := <-readErr:
			if err != nil {
				return fail(err)
			}
			readDone = true
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	_ = st.Close()
	mu.Lock()
	defer mu.Unlock()
	return sess.stats, nil
}

func (s *Syncer) write(bw *bufio.Writer, sess *SyncSession, mu *sync.Mutex, m *SyncMsg) error {
	raw, err := EncodeSyncMsg(m)
	if err != nil {
		return err
	}
	flag, b := frameRaw, raw
	if len(raw) >= compressMin {
		if z := s.zenc.EncodeAll(raw, make([]byte, 0, len(raw)/2)); len(z) < len(raw) {
			flag, b = frameZstd, z
		}
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
	mu.Lock()
	sess.stats.MsgsOut++
	sess.stats.BytesOut += k + len(b)
	mu.Unlock()
	return nil
}

// Frames on the sync stream: uvarint(length) || flag || body, where the
// body is a sync message's CBOR, zstd-compressed when flag is frameZstd.
// Frames of at least compressMin bytes are compressed when that helps.
const (
	frameRaw    byte = 0
	frameZstd   byte = 1
	compressMin      = 256
)

// readFrame reads one frame and returns its message with its size on the
// wire. Decompression is bounded by the snapshot limit.
func (s *Syncer) readFrame(br *bufio.Reader) (*SyncMsg, int, error) {
	lim := s.cfg.Limits
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, 0, err
	}
	if n == 0 || n > uint64(lim.MaxSnapshotBytes)+1 {
		return nil, 0, fmt.Errorf("%w: sync frame of %d bytes", ErrTooLarge, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, 0, err
	}
	body := buf[1:]
	switch buf[0] {
	case frameRaw:
	case frameZstd:
		body, err = s.zdec.DecodeAll(body, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: sync frame does not decompress: %v", ErrMalformed, err)
		}
		if len(body) > lim.MaxSnapshotBytes {
			return nil, 0, fmt.Errorf("%w: sync frame inflates to %d bytes", ErrTooLarge, len(body))
		}
	default:
		return nil, 0, fmt.Errorf("%w: sync frame flag %d", ErrMalformed, buf[0])
	}
	m, err := DecodeSyncMsg(body, lim)
	if err != nil {
		return nil, 0, err
	}
	var hdr [binary.MaxVarintLen64]byte
	return m, int(n) + binary.PutUvarint(hdr[:], n), nil
}
