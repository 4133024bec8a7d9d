package concord

import (
	"errors"

	"github.com/concord-p2p/concord/engine"
)

var (
	// ErrClosed is returned by operations on a closed Node or Doc.
	ErrClosed = engine.ErrClosed
	// ErrConfig is returned by Open for an invalid configuration.
	ErrConfig = errors.New("concord: invalid config")
	// ErrStorage is returned by writes after the store failed; the document
	// refuses further writes until the node is reopened.
	ErrStorage = engine.ErrStorage
	// ErrTooLarge is returned for a transaction whose values exceed
	// MaxTxnBytes.
	ErrTooLarge = engine.ErrTooLarge
	// ErrTooManyDocs is returned by Node.Doc when Config.MaxDocs documents
	// are open already.
	ErrTooManyDocs = errors.New("concord: too many open documents")
	// ErrInvalidDocName is returned by Node.Doc for a document name that is
	// empty, longer than the wire allows or not valid UTF-8.
	ErrInvalidDocName = errors.New("concord: invalid document name")
	// ErrNotWriter is returned for a local write on a document whose writer
	// allowlist does not include this node.
	ErrNotWriter = engine.ErrNotWriter
)

// MaxTxnBytes bounds the paths and values of one transaction. A delta too
// big for one gossip envelope is split into several (see crdt.SplitDelta);
// this bound keeps the one part that cannot be split, a single value, within
// what the sync stream carries.
const MaxTxnBytes = engine.MaxTxnBytes
