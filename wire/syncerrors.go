package wire

import (
	"errors"
	"fmt"
)

// Errors of an anti-entropy exchange, besides ErrTooLarge, ErrMalformed
// and ErrVersion. Both the engine, which runs an exchange's rules, and the
// stream, which carries it, return them.
var (
	// ErrSyncProtocol: the peer broke the exchange protocol.
	ErrSyncProtocol = errors.New("wire: sync protocol violation")
	// ErrSnapshotRefused: the peer sent a snapshot the exchange did not
	// call for. It wraps ErrSyncProtocol.
	ErrSnapshotRefused = fmt.Errorf("%w: unrequested snapshot", ErrSyncProtocol)
	// ErrTooManySeqs: a Deltas message covers more than MaxSyncSeqs
	// sequence numbers. It wraps ErrTooLarge.
	ErrTooManySeqs = fmt.Errorf("%w: deltas cover too many sequence numbers", ErrTooLarge)
	// ErrSyncStorage wraps a failure of the document's side of an
	// exchange: reading its log, storing what was received.
	ErrSyncStorage = errors.New("wire: sync: replica failed")
)
