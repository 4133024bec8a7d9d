package net

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// SyncDoc is a document as the sync stream sees it. The root package
// implements it over the document's engine.
type SyncDoc interface {
	// Doc returns the document name.
	Doc() string
	// Exchange starts this node's side of an exchange with peer p.
	Exchange(p peer.ID, lim wire.SyncLimits) Exchange
}

// Exchange is one side of an anti-entropy exchange, as the stream drives
// it: the stream writes Hello, feeds every frame read to Handle (from its
// reader goroutine) and writes what Next returns (from its writer
// goroutine); the two may run at once. Both sides start with Hello; each
// then streams what the other lacks and ends with Done, so one exchange
// repairs both directions in one round trip.
type Exchange interface {
	// Hello returns the first message to send (the same one every call).
	Hello() *wire.SyncMsg
	// SnapshotAllowed reports (nil) whether a snapshot from the peer may
	// come next, so its frame can be refused from its header, before its
	// body is read; else an error wrapping wire.ErrSnapshotRefused.
	SnapshotAllowed() error
	// Handle processes one message from the peer.
	Handle(ctx context.Context, m *wire.SyncMsg) error
	// Next returns the next message to send, waiting while the document
	// works on it (reads its log, makes what it received durable); nil
	// when there is nothing to send until the peer says more (before its
	// Hello) or ever again (after our Done).
	Next(ctx context.Context) (*wire.SyncMsg, error)
	// GotHello and GotDone report whether the peer's Hello and Done
	// arrived; Finished, whether both sides sent Done.
	GotHello() bool
	GotDone() bool
	Finished() bool
	// Stats returns the exchange's counts (the stream adds the bytes and
	// the messages it wrote).
	Stats() SyncStats
	// Close ends the exchange, finished or not.
	Close()
}

// SyncStats counts one exchange.
type SyncStats struct {
	MsgsOut, MsgsIn     int
	DeltasOut, DeltasIn int
	BytesOut, BytesIn   int  // frame payload bytes, both directions
	Snapshot            bool // a snapshot was received
	SnapshotOut         bool // a snapshot was sent
}

// Errors of an exchange (wire's, under their old names here).
var (
	ErrSyncProtocol    = wire.ErrSyncProtocol
	ErrSnapshotRefused = wire.ErrSnapshotRefused
	ErrTooManySeqs     = wire.ErrTooManySeqs
)
