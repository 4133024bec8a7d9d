package net

import (
	"bufio"
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/concord-p2p/concord/wire"
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
	// ErrSyncStorage wraps an error of the document (reading the log,
	// storing what was received); it is wire.ErrSyncStorage.
	ErrSyncStorage = wire.ErrSyncStorage
	// ErrSyncOpen: the sync stream could not be opened.
	ErrSyncOpen = errors.New("net: open sync stream")
)

// SyncerConfig configures a Syncer.
type SyncerConfig struct {
	// Timeout bounds one exchange. Default 30 s.
	Timeout time.Duration
	// Limits bound decoded frames. Default wire.DefaultSyncLimits().
	Limits wire.SyncLimits
	// Resolve returns the replica of a hosted document, or nil.
	Resolve func(doc string) SyncDoc
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
// Triggered exchanges wait in a bounded queue for one of a few runner
// goroutines (syncqueue.go); exchanges are capped per node and per peer in
// either direction (syncslots.go).
type Syncer struct {
	h   host.Host
	cfg SyncerConfig

	// zenc compresses frames of up to zstdSmallWindow bytes, zencBig (made
	// on first use) bigger ones: an encoder keeps a history of twice its
	// window, which for the big one is 16 MiB to allocate and fault in —
	// on the first frame of a node's first exchange, for frames that fit
	// the small window anyway (where both write the same bytes).
	zenc     *zstd.Encoder
	zencBig  *zstd.Encoder
	zencOnce sync.Once
	zdec     *zstd.Decoder // output bounded by the capacity given (DecodeAllCapLimit)

	mu       sync.Mutex
	inflight map[syncKey]*syncSlot
	inbound  int             // inbound streams being answered
	inPeer   map[peer.ID]int // of which from each peer
	outPeer  map[peer.ID]int // exchanges we run with each peer
	outWait  map[peer.ID]int // calls of Sync waiting for one of those
	queue    outQueue        // triggered exchanges waiting for a runner
	runners  int             // goroutines running triggered exchanges
	freed    chan struct{}   // closed (and replaced) when one of those ends or a slot is freed or queued
	closed   bool
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
	notify   *network.NotifyBundle // drops a disconnected peer's queued exchanges
}

type syncKey struct {
	p   peer.ID
	doc string
}

// syncSlot is the exchange for one peer and document: queued (triggered,
// waiting for a runner), or running, started by us (Trigger, Sync) or by
// the peer.
type syncSlot struct {
	dirty    bool          // triggered again while running: re-run once when done
	outbound bool          // we started it (Trigger, Sync), rather than answering a peer
	doc      SyncDoc       // what a triggered exchange runs
	queued   *list.Element // its place in Syncer.queue while it waits for a runner
}

// Exchange caps. Inbound streams beyond maxInbound (node) or
// maxInboundPerPeer (one peer) are refused (reset) and counted before
// anything is read from them. We run at most maxOutboundPerPeer exchanges
// with one peer at once (more wait their turn), below its inbound cap, so
// a node syncing many documents with a peer is not refused; and at most
// maxOutbound triggered ones in all (see syncqueue.go).
const (
	maxInbound         = 64
	maxInboundPerPeer  = 8
	maxOutboundPerPeer = 4
)

// zstdWindow is the window of the frames we compress and the largest a
// received frame may ask for.
const zstdWindow = 8 << 20

// zstdSmallWindow is the window of the encoder of frames up to that size.
const zstdSmallWindow = 1 << 20

// NewSyncer registers the sync protocol handler on h.
func NewSyncer(h host.Host, cfg SyncerConfig) *Syncer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Limits.MaxFrameBytes == 0 {
		cfg.Limits = wire.DefaultSyncLimits()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Syncer{
		h: h, cfg: cfg, inflight: map[syncKey]*syncSlot{}, ctx: ctx, cancel: cancel,
		inPeer: map[peer.ID]int{}, outPeer: map[peer.ID]int{}, outWait: map[peer.ID]int{}, freed: make(chan struct{}),
	}
	s.zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithAllLitEntropyCompression(true), zstd.WithWindowSize(zstdSmallWindow))
	// One decoder for every frame kind: DecodeAll's output is bounded by
	// the capacity of the buffer it is given, which readFrame sizes (and
	// reserves) from the frame's declared content size.
	s.zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(4), zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(uint64(max(cfg.Limits.MaxSnapshotBytes, cfg.Limits.MaxFrameBytes))),
		zstd.WithDecoderMaxWindow(zstdWindow))
	h.SetStreamHandler(SyncProtocol, s.handle)
	s.notify = &network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) { s.disconnected(c.RemotePeer()) }}
	h.Network().Notify(s.notify)
	return s
}

// Close removes the handler, drops queued exchanges, cancels running ones
// and waits for them and for their runners.
func (s *Syncer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, k := range s.queue.clear() {
		delete(s.inflight, k)
	}
	s.mu.Unlock()
	s.h.Network().StopNotify(s.notify)
	s.h.RemoveStreamHandler(SyncProtocol)
	s.cancel()
	s.wg.Wait()
	_ = s.zenc.Close()
	if s.zencBig != nil {
		_ = s.zencBig.Close()
	}
	s.zdec.Close()
	return nil
}

// Busy reports whether an exchange with p for doc is queued or running.
func (s *Syncer) Busy(p peer.ID, doc string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[syncKey{p, doc}] != nil
}

// Sync runs one exchange with p for r and returns its counts. When one
// between them for r.Doc() is running, in either direction, it waits for
// it to end first (a second would be refused by the peer); one triggered
// and still queued is served by this one instead. Then it waits for one of
// the maxOutboundPerPeer outbound slots for p (waiting calls of Sync go
// before queued triggered exchanges). Close cancels it and waits for it.
func (s *Syncer) Sync(ctx context.Context, p peer.ID, r SyncDoc) (SyncStats, error) {
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
	slot, err := s.takeSlot(ctx, k, r)
	if err != nil {
		return SyncStats{}, err
	}
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.inflight, k)
		s.signalFreedLocked()
		if slot.dirty && !s.closed {
			s.queueLocked(k, &syncSlot{outbound: true, doc: r}) // triggered meanwhile
		}
	}()
	start := time.Now()
	if err := s.acquireOutbound(ctx, p); err != nil {
		s.record(p, r.Doc(), true, SyncStats{}, start, err)
		return SyncStats{}, err
	}
	defer s.releaseOutbound(p)
	return s.exchange(ctx, p, r, start)
}

// exchange runs one exchange with p for r, started at start, in an
// outbound slot for p already counted.
func (s *Syncer) exchange(ctx context.Context, p peer.ID, r SyncDoc, start time.Time) (SyncStats, error) {
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
	sess := r.Exchange(p, s.cfg.Limits)
	defer sess.Close()
	stats, err := s.run(ctx, st, sess, nil, true, 0)
	s.record(p, r.Doc(), true, stats, start, err)
	return stats, err
}

// handle answers an exchange started by a peer. Before anything is read,
// the stream joins SyncService (whose limits bound its memory) and takes an
// inbound slot (node and peer caps); its first frame must be a Hello,
// read within wire.SyncLimits.MaxHelloBytes.
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
	if first.Type != wire.TypeSyncHello {
		_ = st.Reset()
		s.record(remote, first.Doc, false, SyncStats{}, start, fmt.Errorf("%w: first message of type %d", ErrSyncProtocol, first.Type))
		return
	}
	var r SyncDoc
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
	sess := r.Exchange(remote, s.cfg.Limits)
	defer sess.Close()
	sess.Hello()
	if err := sess.Handle(ctx, first); err != nil {
		_ = st.Reset()
		s.record(remote, first.Doc, false, sess.Stats(), start, err)
		return
	}
	fr.release()
	stats, err := s.run(ctx, st, sess, fr, false, n)
	s.record(remote, first.Doc, false, stats, start, err)
	if err != nil {
		s.cfg.Logger.Debug("sync (responder) failed", "peer", remote, "doc", first.Doc, "err", err)
	}
}

// run drives sess over st: a reader goroutine feeds the session, this
// goroutine writes what it produces. Both directions flow at once, so large
// exchanges cannot deadlock on full stream buffers.
func (s *Syncer) run(ctx context.Context, st network.Stream, sess Exchange, fr *frameReader, initiator bool, bytesIn int) (SyncStats, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if fr == nil {
		fr = s.newFrameReader(st, nil)
	}
	hello := sess.Hello() // built before the reader runs: it decides on snapshots
	fr.own = hello.Features
	var (
		mu sync.Mutex // guards io
		io streamCounts
	)
	io.bytesIn = bytesIn
	stats := func() SyncStats {
		mu.Lock()
		defer mu.Unlock()
		st := sess.Stats()
		st.MsgsOut, st.BytesOut, st.BytesIn = io.msgsOut, io.bytesOut, io.bytesIn
		return st
	}
	bound := func(snapshot bool) (int, error) { return s.frameBound(sess, snapshot) }
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
			io.bytesIn += n
			mu.Unlock()
			err = sess.Handle(ctx, m)
			done := sess.GotDone()
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
		return stats(), err
	}
	if err := s.write(bw, &io, &mu, hello, false); err != nil {
		return fail(err)
	}
	readDone := false
	for {
		m, err := sess.Next(ctx)
		if err != nil {
			return fail(err)
		}
		if m != nil {
			if err := s.write(bw, &io, &mu, m, fr.shared().Has(wire.FeatureColumns)); err != nil {
				return fail(err)
			}
			if m.Type == wire.TypeSyncDone && initiator {
				// The responder ends its side once it is done (handle).
				_ = st.CloseWrite()
			}
			continue
		}
		if sess.Finished() && readDone {
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
	return stats(), nil
}

// streamCounts are what the stream wrote and read.
type streamCounts struct{ msgsOut, bytesOut, bytesIn int }
