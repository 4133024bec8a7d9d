package net

import (
	"bufio"
	"bytes"
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

	zenc     *zstd.Encoder
	zdec     *zstd.Decoder // frames other than snapshots: output ≤ MaxFrameBytes
	zdecSnap *zstd.Decoder // snapshot frames: output ≤ MaxSnapshotBytes

	mu       sync.Mutex
	inflight map[syncKey]*syncSlot
	inbound  int
	closed   bool
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

type syncKey struct {
	p   peer.ID
	doc string
}

type syncSlot struct {
	dirty    bool // triggered again while running: re-run once when done
	outbound bool // we started it (Trigger), rather than answering a peer
}

// maxInbound bounds exchanges answered at once; more are refused (reset)
// and counted, so a peer cannot pin memory with many idle streams.
const maxInbound = 64

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
	s.zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(cfg.Limits.MaxFrameBytes)))
	s.zdecSnap, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(cfg.Limits.MaxSnapshotBytes)))
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
	s.zdecSnap.Close()
	return nil
}

// Trigger starts an exchange with p for r in the background, over an open
// connection (it never dials; Sync does). When one between them for
// r.Doc() is running, in either direction, the request is coalesced: one
// more exchange runs after it (it may find nothing to do).
func (s *Syncer) Trigger(p peer.ID, r Replica) {
	k := syncKey{p, r.Doc()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if slot := s.inflight[k]; slot != nil {
		slot.dirty = true
		return
	}
	s.startLocked(k, p, r)
}

// startLocked runs exchanges for k until no trigger arrived meanwhile.
func (s *Syncer) startLocked(k syncKey, p peer.ID, r Replica) {
	slot := &syncSlot{outbound: true}
	s.inflight[k] = slot
	s.wg.Add(1)
	// Triggered exchanges use open connections only: dialing (with backoff)
	// is the supervisor's job, and an exchange re-run after its connection
	// dropped must not redial a peer that is going away.
	ctx := network.WithNoDial(s.ctx, "sync trigger: the supervisor dials")
	go func() {
		defer s.wg.Done()
		for {
			if _, err := s.sync(ctx, p, r); err != nil {
				s.cfg.Logger.Debug("sync failed", "peer", p, "doc", k.doc, "err", err)
			}
			s.mu.Lock()
			if !slot.dirty || s.closed {
				delete(s.inflight, k)
				s.mu.Unlock()
				return
			}
			slot.dirty = false
			s.mu.Unlock()
		}
	}()
}

// Busy reports whether an exchange with p for doc is running.
func (s *Syncer) Busy(p peer.ID, doc string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[syncKey{p, doc}] != nil
}

// acquireInbound registers an exchange answered for k; every accepted one
// counts against maxInbound. It refuses (ok false) when the cap is reached
// or one for k runs already — except when ours and the peer's started at
// once (crossing): then the one started by the lower peer ID is kept.
// held reports whether this exchange owns k's slot.
func (s *Syncer) acquireInbound(k syncKey) (held, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.inbound >= maxInbound {
		return false, false
	}
	if slot := s.inflight[k]; slot != nil {
		if !slot.outbound || k.p > s.h.ID() {
			return false, false
		}
		s.inbound++
		return false, true
	}
	s.inflight[k] = &syncSlot{}
	s.inbound++
	return true, true
}

// releaseInbound ends an answered exchange; a trigger that arrived
// meanwhile starts one exchange of our own.
func (s *Syncer) releaseInbound(k syncKey, held bool, r Replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inbound--
	if !held {
		return
	}
	slot := s.inflight[k]
	delete(s.inflight, k)
	if slot != nil && slot.dirty && !s.closed {
		s.startLocked(k, k.p, r)
	}
}

// Sync runs one exchange with p for r now (even if another is running) and
// returns its counts. Close cancels it and waits for it.
func (s *Syncer) Sync(ctx context.Context, p peer.ID, r Replica) (SyncStats, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return SyncStats{}, ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
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
	held, ok := s.acquireInbound(k)
	if !ok {
		_ = st.Reset()
		s.cfg.Metrics.Drop("sync_inbound", "busy")
		return
	}
	defer s.releaseInbound(k, held, r)
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
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
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
		<-readerDone // the reset unblocks its read; it must not outlive us
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
	if m.Type == TypeSyncSnapshot {
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
	mu.Lock()
	sess.stats.MsgsOut++
	sess.stats.BytesOut += k + len(b)
	mu.Unlock()
	return nil
}

// Frames on the sync stream: uvarint(length) || flag || body. The body is
// a sync message's CBOR, zstd-compressed when flag has frameZstd. Only a
// frame flagged frameSnapshot may carry a snapshot and exceed
// MaxFrameBytes (up to MaxSnapshotBytes, compressed or not), so the reader
// knows a frame's bound before reading or inflating it. Frames of at least
// compressMin bytes are compressed when that helps.
const (
	frameRaw      byte = 0
	frameZstd     byte = 1
	frameSnapshot byte = 2
	compressMin        = 256
)

// readFrame reads one frame and returns its message with its size on the
// wire. Memory grows with the bytes actually received, never with the
// announced length alone.
func (s *Syncer) readFrame(br *bufio.Reader) (*SyncMsg, int, error) {
	lim := s.cfg.Limits
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, 0, err
	}
	if n == 0 || n > uint64(lim.MaxSnapshotBytes)+1 {
		return nil, 0, fmt.Errorf("%w: sync frame of %d bytes", ErrTooLarge, n)
	}
	flag, err := br.ReadByte()
	if err != nil {
		return nil, 0, err
	}
	if flag&^(frameZstd|frameSnapshot) != 0 {
		return nil, 0, fmt.Errorf("%w: sync frame flag %d", ErrMalformed, flag)
	}
	snapshot := flag&frameSnapshot != 0
	max := uint64(lim.MaxFrameBytes)
	if snapshot {
		max = uint64(lim.MaxSnapshotBytes)
	}
	if n-1 > max {
		return nil, 0, fmt.Errorf("%w: sync frame of %d bytes, limit %d", ErrTooLarge, n-1, max)
	}
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, br, int64(n-1)); err != nil {
		return nil, 0, err
	}
	body := buf.Bytes()
	if flag&frameZstd != 0 {
		dec := s.zdec
		if snapshot {
			dec = s.zdecSnap
		}
		body, err = dec.DecodeAll(body, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: sync frame does not decompress within %d bytes: %v", ErrMalformed, max, err)
		}
		if uint64(len(body)) > max {
			return nil, 0, fmt.Errorf("%w: sync frame inflates to %d bytes", ErrTooLarge, len(body))
		}
	}
	m, err := DecodeSyncMsg(body, lim)
	if err != nil {
		return nil, 0, err
	}
	if snapshot != (m.Type == TypeSyncSnapshot) {
		return nil, 0, fmt.Errorf("%w: frame flag %d does not match message type %d", ErrMalformed, flag, m.Type)
	}
	var hdr [binary.MaxVarintLen64]byte
	return m, int(n) + binary.PutUvarint(hdr[:], n), nil
}
