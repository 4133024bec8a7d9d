package net

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
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

// SyncService is the resource-manager service of sync streams: the memory
// of every frame read is reserved in the stream's scope, against the
// service's limits for the node and for each peer (HostConfig.SyncMemory,
// HostConfig.SyncPeerMemory). On a host not built by NewHost, libp2p's
// default limits apply, which refuse frames of more than a few MiB.
const SyncService = "concord.sync"

// Errors of the sync stream.
var (
	// ErrUnknownDoc is returned when a peer asks to sync a document this
	// node does not host.
	ErrUnknownDoc = errors.New("net: unknown document")
	// ErrSyncBusy: the sync budget (exchanges or memory reserved in the
	// resource manager) is exhausted.
	ErrSyncBusy = errors.New("net: sync budget exhausted")
	// ErrSyncStorage wraps an error of the replica (reading the log,
	// storing what was received).
	ErrSyncStorage = errors.New("net: sync: replica failed")
	// ErrSyncOpen: the sync stream could not be opened.
	ErrSyncOpen = errors.New("net: open sync stream")
)

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
	zdec *zstd.Decoder // output bounded by the capacity given (DecodeAllCapLimit)

	mu       sync.Mutex
	inflight map[syncKey]*syncSlot
	inbound  int             // inbound streams being answered
	inPeer   map[peer.ID]int // of which from each peer
	outPeer  map[peer.ID]int // exchanges we run with each peer
	freed    chan struct{}   // closed (and replaced) when one of those ends or a slot is freed
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

// Exchange caps. Inbound streams beyond maxInbound (node) or
// maxInboundPerPeer (one peer) are refused (reset) and counted before
// anything is read from them. We run at most maxOutboundPerPeer exchanges
// with one peer at once (more wait their turn), below its inbound cap, so
// a node syncing many documents with a peer is not refused.
const (
	maxInbound         = 64
	maxInboundPerPeer  = 8
	maxOutboundPerPeer = 4
)

// zstdWindow is the window of the frames we compress and the largest a
// received frame may ask for.
const zstdWindow = 8 << 20

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
	s := &Syncer{
		h: h, cfg: cfg, inflight: map[syncKey]*syncSlot{}, ctx: ctx, cancel: cancel,
		inPeer: map[peer.ID]int{}, outPeer: map[peer.ID]int{}, freed: make(chan struct{}),
	}
	s.zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(zstdWindow))
	// One decoder for every frame kind: DecodeAll's output is bounded by
	// the capacity of the buffer it is given, which readFrame sizes (and
	// reserves) from the frame's declared content size.
	s.zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(4), zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(uint64(max(cfg.Limits.MaxSnapshotBytes, cfg.Limits.MaxFrameBytes))),
		zstd.WithDecoderMaxWindow(zstdWindow))
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
				s.signalFreedLocked()
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

// acquireStream counts an inbound stream from p against maxInbound and
// maxInboundPerPeer, before anything is read from it; ok is false when a
// cap is reached.
func (s *Syncer) acquireStream(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.inbound >= maxInbound || s.inPeer[p] >= maxInboundPerPeer {
		return false
	}
	s.inbound++
	s.inPeer[p]++
	return true
}

// releaseStream ends what acquireStream counted.
func (s *Syncer) releaseStream(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inbound--
	if s.inPeer[p]--; s.inPeer[p] <= 0 {
		delete(s.inPeer, p)
	}
}

// acquireOutbound waits until fewer than maxOutboundPerPeer exchanges we
// run with p are under way, and counts one more.
func (s *Syncer) acquireOutbound(ctx context.Context, p peer.ID) error {
	for {
		s.mu.Lock()
		if s.outPeer[p] < maxOutboundPerPeer {
			s.outPeer[p]++
			s.mu.Unlock()
			return nil
		}
		free := s.freed
		s.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Syncer) releaseOutbound(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outPeer[p]--; s.outPeer[p] <= 0 {
		delete(s.outPeer, p)
	}
	s.signalFreedLocked()
}

// acquireInbound registers an exchange answered for k. It refuses (ok
// false) one for k from a peer already answered for k. When ours for k
// runs (the two crossed, or the peer started its own meanwhile): one
// started by a lower peer ID than ours runs alongside; one started by a
// higher ID waits for ours to end (the peer, holding the higher ID, answers
// ours without waiting, so neither waits for the other). held reports
// whether this exchange owns k's slot.
func (s *Syncer) acquireInbound(ctx context.Context, k syncKey) (held, ok bool) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return false, false
		}
		slot := s.inflight[k]
		switch {
		case slot == nil:
			s.inflight[k] = &syncSlot{}
			s.mu.Unlock()
			return true, true
		case !slot.outbound:
			s.mu.Unlock()
			return false, false
		case k.p < s.h.ID():
			s.mu.Unlock()
			return false, true
		}
		free := s.freed
		s.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return false, false
		}
	}
}

// releaseInbound ends an answered exchange; a trigger that arrived
// meanwhile starts one exchange of our own.
func (s *Syncer) releaseInbound(k syncKey, held bool, r Replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !held {
		return
	}
	slot := s.inflight[k]
	delete(s.inflight, k)
	s.signalFreedLocked()
	if slot != nil && slot.dirty && !s.closed {
		s.startLocked(k, k.p, r)
	}
}

// Sync runs one exchange with p for r and returns its counts. When one
// between them for r.Doc() is running, in either direction, it waits for
// it to end first (a second would be refused by the peer). Close cancels
// it and waits for it.
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
	k := syncKey{p, r.Doc()}
	slot, err := s.takeSlot(ctx, k)
	if err != nil {
		return SyncStats{}, err
	}
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.inflight, k)
		s.signalFreedLocked()
		if slot.dirty && !s.closed {
			s.startLocked(k, p, r) // triggered meanwhile
		}
	}()
	return s.sync(ctx, p, r)
}

// takeSlot waits until no exchange for k runs and takes its slot.
func (s *Syncer) takeSlot(ctx context.Context, k syncKey) (*syncSlot, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if s.inflight[k] == nil {
			slot := &syncSlot{outbound: true}
			s.inflight[k] = slot
			s.mu.Unlock()
			return slot, nil
		}
		free := s.freed
		s.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// signalFreedLocked wakes the waiters of acquireOutbound and takeSlot.
func (s *Syncer) signalFreedLocked() {
	close(s.freed)
	s.freed = make(chan struct{})
}

func (s *Syncer) sync(ctx context.Context, p peer.ID, r Replica) (SyncStats, error) {
	start := time.Now()
	if err := s.acquireOutbound(ctx, p); err != nil {
		s.record(p, r.Doc(), true, SyncStats{}, start, err)
		return SyncStats{}, err
	}
	defer s.releaseOutbound(p)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	st, err := s.h.NewStream(network.WithAllowLimitedConn(ctx, "sync"), p, SyncProtocol)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrSyncOpen, err)
		s.record(p, r.Doc(), true, SyncStats{}, start, err)
		return SyncStats{}, err
	}
	if err := st.Scope().SetService(SyncService); err != nil {
		_ = st.Reset()
		err = fmt.Errorf("%w: %w", ErrSyncBusy, err)
		s.record(p, r.Doc(), true, SyncStats{}, start, err)
		return SyncStats{}, err
	}
	sess := NewSyncSession(r, p, s.cfg.Limits)
	stats, err := s.run(ctx, st, sess, nil, true)
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
		m.SyncErrors.WithLabelValues(SyncErrorReason(err)).Inc()
	}
	m.SyncExchanges.WithLabelValues(result).Inc()
	m.SyncBytes.WithLabelValues("out").Add(float64(st.BytesOut))
	m.SyncBytes.WithLabelValues("in").Add(float64(st.BytesIn))
	m.SyncDuration.Observe(time.Since(start).Seconds())
}

// SyncErrorReason names the cause of a failed exchange, for the reason
// label of sync_errors_total: busy, refused_snapshot, too_many_seqs,
// too_large, version, malformed, protocol, rejected (the replica refused
// what was sent), storage, timeout, canceled, reset, open or unknown.
func SyncErrorReason(err error) string {
	var (
		rejected interface{ Reason() string }
		timeout  interface{ Timeout() bool }
	)
	switch {
	case errors.Is(err, ErrSyncBusy):
		return "busy"
	case errors.Is(err, ErrSnapshotRefused):
		return "refused_snapshot"
	case errors.Is(err, ErrTooManySeqs):
		return "too_many_seqs"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrVersion):
		return "version"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrSyncProtocol):
		return "protocol"
	case errors.As(err, &rejected):
		return "rejected"
	case errors.Is(err, ErrSyncStorage):
		return "storage"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &timeout) && timeout.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled), errors.Is(err, ErrClosed):
		return "canceled"
	case errors.Is(err, network.ErrReset), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	case errors.Is(err, ErrSyncOpen):
		return "open"
	}
	return "unknown"
}

// handle answers an exchange started by a peer. Before anything is read,
// the stream joins SyncService (whose limits bound its memory) and takes an
// inbound slot (node and peer caps); its first frame must be a Hello,
// read within MaxHelloBytes.
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
	remote := st.Conn().RemotePeer()
	if err := st.Scope().SetService(SyncService); err != nil {
		_ = st.Reset()
		s.cfg.Metrics.Drop("sync_inbound", "busy")
		return
	}
	if !s.acquireStream(remote) {
		_ = st.Reset()
		s.cfg.Metrics.Drop("sync_inbound", "busy")
		return
	}
	defer s.releaseStream(remote)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	fr := s.newFrameReader(st, nil)
	defer fr.release()
	_ = st.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
	first, n, err := fr.next(func(snapshot bool) (int, error) {
		if snapshot {
			return 0, fmt.Errorf("%w: as the first frame", ErrSnapshotRefused)
		}
		return min(s.cfg.Limits.MaxHelloBytes(), s.cfg.Limits.MaxFrameBytes), nil
	})
	if err != nil {
		_ = st.Reset()
		s.record(remote, "", false, SyncStats{}, start, err)
		return
	}
	if first.Type != TypeSyncHello {
		_ = st.Reset()
		s.record(remote, first.Doc, false, SyncStats{}, start, fmt.Errorf("%w: first message of type %d", ErrSyncProtocol, first.Type))
		return
	}
	var r Replica
	if s.cfg.Resolve != nil {
		r = s.cfg.Resolve(first.Doc)
	}
	if r == nil {
		s.cfg.Logger.Debug("sync for unknown document", "peer", remote, "doc", first.Doc)
		_ = st.Reset()
		s.record(remote, first.Doc, false, SyncStats{}, start, ErrUnknownDoc)
		return
	}
	k := syncKey{remote, first.Doc}
	held, ok := s.acquireInbound(ctx, k)
	if !ok {
		_ = st.Reset()
		s.cfg.Metrics.Drop("sync_inbound", "busy")
		return
	}
	// Deferred in this order, the stream ends (successfully: run leaves
	// that to us) after the slot is free; the initiator waits for the end.
	defer func() { _ = st.Close() }()
	defer s.releaseInbound(k, held, r)
	sess := NewSyncSession(r, remote, s.cfg.Limits)
	sess.Hello()
	if err := sess.Handle(ctx, first); err != nil {
		_ = st.Reset()
		s.record(remote, first.Doc, false, sess.stats, start, err)
		return
	}
	fr.release()
	sess.stats.BytesIn += n
	stats, err := s.run(ctx, st, sess, fr, false)
	s.record(remote, first.Doc, false, stats, start, err)
	if err != nil {
		s.cfg.Logger.Debug("sync (responder) failed", "peer", remote, "doc", first.Doc, "err", err)
	}
}

// run drives sess over st: a reader goroutine feeds the session, this
// goroutine writes what it produces. Both directions flow at once, so large
// exchanges cannot deadlock on full stream buffers.
func (s *Syncer) run(ctx context.Context, st network.Stream, sess *SyncSession, fr *frameReader, initiator bool) (SyncStats, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if fr == nil {
		fr = s.newFrameReader(st, nil)
	}
	hello := sess.Hello() // built before the reader runs: it decides on snapshots
	var mu sync.Mutex
	bound := func(snapshot bool) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return s.frameBound(sess, snapshot)
	}
	wake := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer fr.release()
		for {
			m, n, err := fr.next(bound)
			if err != nil {
				readErr <- err
				return
			}
			mu.Lock()
			sess.stats.BytesIn += n
			err = sess.Handle(ctx, m)
			done := sess.gotDone
			mu.Unlock()
			fr.release() // processed: its buffers are no longer held
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
	if err := s.write(bw, sess, &mu, hello); err != nil {
		return fail(err)
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
			if m.Type == TypeSyncDone && initiator {
				// The responder ends its side once it is done (handle).
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
	if initiator {
		// Wait for the responder to end the stream: it does once it has
		// stored what we sent and freed its slot for this peer and
		// document, so that an exchange started next is not refused as a
		// duplicate. What comes instead of the end does not undo the
		// exchange.
		_, _ = fr.br.ReadByte()
		_ = st.Close()
	}
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

// frameBound returns the largest body a frame of the given kind may have
// at this point of sess, or why it is refused: the first frame must be a
// Hello (MaxHelloBytes), a snapshot comes only where
// SyncSession.SnapshotAllowed says so (MaxSnapshotBytes), any other frame
// is bounded by MaxFrameBytes.
func (s *Syncer) frameBound(sess *SyncSession, snapshot bool) (int, error) {
	lim := s.cfg.Limits
	switch {
	case snapshot:
		if err := sess.SnapshotAllowed(); err != nil {
			return 0, err
		}
		return lim.MaxSnapshotBytes, nil
	case !sess.gotHello:
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
// released); the decoded message. The peak is about twice the larger form.
func (fr *frameReader) next(bound func(snapshot bool) (int, error)) (*SyncMsg, int, error) {
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
	if flag&^(frameZstd|frameSnapshot) != 0 {
		return nil, 0, fmt.Errorf("%w: sync frame flag %d", ErrMalformed, flag)
	}
	snapshot := flag&frameSnapshot != 0
	maxBody, err := bound(snapshot)
	if err != nil {
		return nil, 0, err
	}
	if n == 0 || n-1 > uint64(maxBody) {
		return nil, 0, fmt.Errorf("%w: sync frame of %d bytes, limit %d", ErrTooLarge, n-1, maxBody)
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
			return nil, 0, fmt.Errorf("%w: sync frame zstd header: %v", ErrMalformed, err)
		}
		if !zh.HasFCS {
			return nil, 0, fmt.Errorf("%w: compressed sync frame without a content size", ErrMalformed)
		}
		if zh.FrameContentSize > uint64(maxBody) {
			return nil, 0, fmt.Errorf("%w: sync frame inflates to %d bytes, limit %d", ErrTooLarge, zh.FrameContentSize, maxBody)
		}
		plain := int(zh.FrameContentSize)
		if err := fr.reserve(plain); err != nil {
			return nil, 0, err
		}
		out, err := fr.s.zdec.DecodeAll(body, make([]byte, 0, plain))
		if err != nil {
			return nil, 0, fmt.Errorf("%w: sync frame does not decompress within %d bytes: %v", ErrMalformed, plain, err)
		}
		fr.unreserve(size) // the compressed body is dropped
		body = out
	}
	// The decoded message copies its byte strings out of body.
	if err := fr.reserve(len(body)); err != nil {
		return nil, 0, err
	}
	m, err := DecodeSyncMsg(body, fr.s.cfg.Limits)
	if err != nil {
		return nil, 0, err
	}
	fr.unreserve(len(body)) // body is dropped; the message stays reserved
	if snapshot != (m.Type == TypeSyncSnapshot) {
		return nil, 0, fmt.Errorf("%w: frame flag %d does not match message type %d", ErrMalformed, flag, m.Type)
	}
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
