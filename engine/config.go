package engine

import (
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// MaxTxnBytes bounds the paths and values of one transaction. A delta too
// big for one gossip envelope is split into several (see crdt.SplitDelta);
// this bound keeps the one part that cannot be split, a single value, within
// what the sync stream carries.
const MaxTxnBytes = 1 << 20

// StoredLimits bound envelopes read from the log or the sync stream. They
// are looser than gossip's: a delta holding one value too big for a gossip
// envelope (see MaxPayload) travels through the sync stream, as do deltas
// of older versions that did not split.
var StoredLimits = wire.Limits{
	MaxMessageBytes: MaxTxnBytes*4 + 64<<10,
	MaxEnvelopes:    1 << 16,
	MaxVVEntries:    4096,
	MaxPayloadBytes: MaxTxnBytes * 4,
}

// payloadLimits bound a decoded delta payload: as large as StoredLimits
// allow (a delete of a big map covers many dots), elements bounded by bytes.
var payloadLimits = crdt.Limits{MaxBytes: MaxTxnBytes * 4, MaxElements: MaxTxnBytes * 4}

// MaxPayload bounds the payload of every envelope an engine signs: each own
// delta, cut into pieces when it is bigger (see crdt.SplitDelta), and each
// aggregate. It is what one gossip envelope carries, so every delta travels
// on gossip — except a piece holding one value bigger than that alone (at
// most MaxTxnBytes), which the sync stream carries (StoredLimits).
var MaxPayload = wire.DefaultLimits().MaxPayloadBytes

// maxClockLead is how far ahead of our wall clock a remote timestamp may
// pull our HLC: a peer with a wild clock cannot drag everyone's clock into
// the future (its value still counts for its own register writes).
const maxClockLead = time.Minute

// Errors returned to callers.
var (
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("concord: closed")
	// ErrStorage: a write the engine asked for failed; the document
	// refuses further writes.
	ErrStorage = errors.New("concord: storage failed")
	// ErrTooLarge: a transaction's values exceed MaxTxnBytes.
	ErrTooLarge = errors.New("concord: transaction too large")
	// ErrNotWriter: a local write on a document whose writer allowlist
	// does not include this node.
	ErrNotWriter = errors.New("concord: this peer is not an allowed writer")
)

// Config configures the engine of one document.
type Config struct {
	Doc      string
	Self     crdt.ReplicaID // this node's replica (peer ID and store incarnation)
	SelfPeer peer.ID
	Key      crypto.PrivKey   // signs own envelopes
	Writers  map[peer.ID]bool // nil: anyone may write
	// AckPeers is how many peers must hold an own delta before it leaves
	// the outbox (at least 1).
	AckPeers int
	// TrustAuthor skips the signature check of envelopes that the peer at
	// the other end of an authenticated connection authored itself.
	TrustAuthor bool
	// SnapshotAfter: a peer with nothing gets a fresh snapshot once the log
	// holds more entries than this.
	SnapshotAfter int
	// FirstChange is the number of the first change (Change.N); 0 means 1.
	// A driver that restarts takes a larger one (from its boot time), so
	// numbers from before a restart are never taken for later ones.
	FirstChange uint64
	// CompactAfter: compaction runs once every known peer holds this many
	// entries more than the snapshot covers.
	CompactAfter int
	// Retention: peers silent this long do not hold compaction back (0:
	// forever).
	Retention time.Duration
	// PieceBytes bounds an own delta's payload (0: MaxPayload); tests lower
	// it.
	PieceBytes int
	// Storage is the durable log, read only.
	Storage Storage
	// VerifiedCache bounds the envelopes remembered as verified (default
	// 65,536).
	VerifiedCache int
	// GroupWait, when positive, lets the next own delta wait, once one
	// became durable, for the writers it answered to write again and join
	// it (group.go): at most GroupWait, and at most the time that delta
	// took to persist. Default 0: the next delta is cut at once.
	GroupWait time.Duration
	// Features are the optional parts of the protocol the document
	// speaks: announced in its sync Hello, used in its own deltas, and
	// required of what it receives (0: wire.SupportedFeatures). Tests set
	// fewer to play a peer of an older version.
	Features wire.Features
}

// Storage is what an engine reads of its document's durable log. Only
// durable data is visible through it: entries the engine asked to persist
// become visible once they are synced, before Persisted is stepped.
type Storage interface {
	// Snapshot returns the stored snapshot, false if there is none.
	Snapshot() (store.Snapshot, bool, error)
	// Entries calls fn for every log entry.
	Entries(fn func(store.Entry) error) error
	// Forks returns the stored fork proofs.
	Forks() ([]store.Fork, error)
	// Get returns the entry at (rep, seq); an error when not held.
	Get(rep crdt.ReplicaID, seq uint64) (store.Entry, error)
	// Has reports whether (rep, seq) is held (in the log or covered by the
	// snapshot).
	Has(rep crdt.ReplicaID, seq uint64) bool
	// MaxSeq returns the highest seq of rep held.
	MaxSeq(rep crdt.ReplicaID) uint64
	// Contiguous returns the contiguous version vector held.
	Contiguous() crdt.VersionVector
	// NeedsSnapshot reports whether a peer at have lacks entries the log no
	// longer holds.
	NeedsSnapshot(have crdt.VersionVector) bool
	// Missing returns log entries a peer at have lacks, in bounded batches.
	Missing(have crdt.VersionVector, cur store.Cursor) ([]store.Entry, store.Cursor, bool, error)
	// Outbox returns the own sequence numbers not yet acknowledged.
	Outbox() []uint64
}
