package wire

import "errors"

// ErrDuplicate is returned by a gossip handler's Validate for an envelope it
// already holds; a message holding only duplicates is ignored, not rejected.
var ErrDuplicate = errors.New("wire: duplicate delta")

// MaxGossipSeqs bounds the sequence numbers the envelopes of one gossip
// message may cover together.
const MaxGossipSeqs = MaxAggregateRun

// MaxGossipRun bounds the deltas one aggregate may cover on gossip: what a
// publisher coalesces from one take of its queue (the sync stream allows
// MaxAggregateRun).
const MaxGossipRun = 1024
