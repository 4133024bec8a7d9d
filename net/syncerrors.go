package net

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

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
	case errors.Is(err, wire.ErrTooLarge):
		return "too_large"
	case errors.Is(err, wire.ErrVersion):
		return "version"
	case errors.Is(err, wire.ErrMalformed):
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
