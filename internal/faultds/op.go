package faultds

import (
	"fmt"
	"slices"

	"github.com/ipfs/go-datastore"
)

// Kind is the kind of a write operation.
type Kind int

// The operations the wrappers see. Reads (Get, Has, GetSize, Query) pass
// through untouched; a batch's Put and Delete are buffered and seen as one
// OpCommit.
const (
	OpPut    Kind = iota + 1 // Datastore.Put
	OpDelete                 // Datastore.Delete
	OpCommit                 // Batch.Commit
	OpSync                   // Datastore.Sync
)

// String returns the lower-case name of k ("put", "delete", "commit",
// "sync").
func (k Kind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpCommit:
		return "commit"
	case OpSync:
		return "sync"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Op is one write operation, as an Injector, a Predicate or a Gate sees it.
type Op struct {
	Kind Kind
	// Keys is the key of a Put or Delete, the keys of a batch in the order
	// they were added (a key may repeat), or the prefix of a Sync.
	Keys []datastore.Key
}

// String describes op for error messages, e.g. "sync /" or "commit of 3
// keys (first /a)".
func (op Op) String() string {
	switch {
	case len(op.Keys) == 0:
		return op.Kind.String()
	case op.Kind == OpCommit:
		return fmt.Sprintf("commit of %d keys (first %s)", len(op.Keys), op.Keys[0])
	default:
		return fmt.Sprintf("%s %s", op.Kind, op.Keys[0])
	}
}

// Predicate selects operations. A nil Predicate selects every operation.
type Predicate func(Op) bool

func (p Predicate) match(op Op) bool { return p == nil || p(op) }

// Kinds selects operations of the given kinds.
func Kinds(kinds ...Kind) Predicate {
	return func(op Op) bool { return slices.Contains(kinds, op.Kind) }
}

// KeyPrefix selects operations that touch prefix: a Put or Delete of prefix
// or of a key below it, a batch holding one, or a Sync whose prefix is
// prefix, above it or below it (syncing "/" syncs "/docs"). Prefixes match
// whole key segments, as in go-datastore: "/ops" does not select "/opsX".
func KeyPrefix(prefix string) Predicate {
	p := datastore.NewKey(prefix)
	under := func(k datastore.Key) bool { return k.Equal(p) || k.IsDescendantOf(p) }
	return func(op Op) bool {
		if op.Kind == OpSync {
			return slices.ContainsFunc(op.Keys, func(k datastore.Key) bool { return under(k) || p.IsDescendantOf(k) })
		}
		return slices.ContainsFunc(op.Keys, under)
	}
}

// And selects operations every one of ps selects.
func And(ps ...Predicate) Predicate {
	return func(op Op) bool {
		for _, p := range ps {
			if !p.match(op) {
				return false
			}
		}
		return true
	}
}
