package crdt

import (
	"bytes"
	"iter"
)

// Kind is the CRDT type held at a key of a document map.
type Kind uint8

const (
	// KindNone means the key holds nothing.
	KindNone Kind = iota
	// KindRegister is a multi-value register of JSON values.
	KindRegister
	// KindCounter is a PN-counter of int64.
	KindCounter
	// KindSet is an add-wins observed-remove set of JSON scalars.
	KindSet
	// KindMap is a nested observed-remove map.
	KindMap
	// KindText is a sequence of Unicode code points (see Seq).
	KindText
	// KindList is a sequence of JSON values (see Seq).
	KindList
)

// numKinds is the number of kinds other than KindNone: the size of an
// entry's array of stores.
const numKinds = int(KindList)

func (k Kind) String() string {
	switch k {
	case KindRegister:
		return "register"
	case KindCounter:
		return "counter"
	case KindSet:
		return "set"
	case KindMap:
		return "map"
	case KindText:
		return "text"
	case KindList:
		return "list"
	}
	return "none"
}

// kindOrder lists the kinds from the one a key shows first when it holds
// several (see Kind resolution in doc.go).
var kindOrder = [numKinds]Kind{KindMap, KindList, KindText, KindSet, KindCounter, KindRegister}

// storeOrder is the order in which loops visit an entry's stores (merging,
// covering, decoding): the map last, so that a key's own content comes
// before the keys below it.
var storeOrder = [numKinds]Kind{KindRegister, KindCounter, KindSet, KindText, KindList, KindMap}

// kindStore is the content of one kind at one key of a map. An entry holds
// one store per kind it has received; whatever depends on the kind — what
// a write covers, how src's content merges in, the JSON view, the encoding,
// the splitting of a delta — is a method here, and the rest of the package
// loops over an entry's stores. A new kind is a type implementing
// kindStore, a Kind constant, its place in kindOrder and storeOrder, its
// field in wEntry (with wEntry.kinds) and its ops.
//
// The dots a store holds in State.idx are found by loc{e, kind, elem}:
// elem is the store's own sub-key (a set's element), empty when unused.
// A store may hold more dots than it indexes there (a sequence's
// elements): then it merges, removes and encodes those itself.
type kindStore interface {
	// empty reports whether the store holds nothing: the key is pruned
	// when every store of it is empty.
	empty() bool
	// visible reports whether the key shows the store's kind (when no
	// kind before it in kindOrder is visible). Most kinds are visible
	// when not empty; a sequence holding only tombstones is not.
	visible() bool
	// covered appends the dots that op, by replica, observes in the store
	// and so replaces or removes: at this key, or below it when below is
	// set. OpDelete observes every dot the store holds.
	covered(out []Dot, op Op, replica ReplicaID, below bool) []Dot
	// write returns the write that carries d at elem, to compare two
	// writes with one dot (see yields).
	write(d Dot, elem string) write
	// remove deletes the write that carries d at elem. State.idx and the
	// pruning of the entry are the caller's.
	remove(d Dot, elem string)
	// mergeInto adds the store's content, at a key of the state m merges,
	// to de, the same key of s, and reports whether it added a write at
	// de itself. It must not share anything mutable with s: the merged
	// state lives on (State.Clone is a merge into an empty state).
	mergeInto(s *State, de *entry, m merger) bool
	// writeJSON writes the store's JSON view, when the key shows its kind.
	writeJSON(buf *bytes.Buffer)
	// encode writes the store into its field of we, for a delta of
	// origin when origin is not empty (see EncodeDelta).
	encode(we *wEntry, index map[ReplicaID]uint64, origin ReplicaID)
	// splitCost bounds what the write that carries d at elem adds to the
	// encoding of sp's current piece, whose copy of this key is in (nil
	// while it has none), the path to the key left aside; ok is false
	// when it would take a container past the element bound.
	splitCost(sp *splitter, in *entry, d Dot, elem string) (cost int, ok bool)
	// splitAdd adds the write that carries d at elem to in, the copy of
	// this key in the piece p.
	splitAdd(p *State, in *entry, d Dot, elem string)
}

// at returns e's store of kind k, or nil.
func (e *entry) at(k Kind) kindStore {
	if e.k1 == k {
		return e.v1
	}
	if e.more == nil {
		return nil
	}
	return e.more[k-1]
}

// setAt makes v e's store of kind k. A store, once set, stays.
func (e *entry) setAt(k Kind, v kindStore) {
	if e.k1 == KindNone || e.k1 == k {
		e.k1, e.v1 = k, v
		return
	}
	if e.more == nil {
		e.more = new([numKinds]kindStore)
	}
	e.more[k-1] = v
}

// stores yields e's stores, by kind.
func (e *entry) stores() iter.Seq[kindStore] {
	return func(yield func(kindStore) bool) {
		for k := KindRegister; k <= KindList; k++ {
			if v := e.at(k); v != nil && !yield(v) {
				return
			}
		}
	}
}

// empty reports whether every store of e is empty.
func (e *entry) empty() bool {
	if e.more == nil {
		return e.v1 == nil || e.v1.empty()
	}
	for v := range e.stores() {
		if !v.empty() {
			return false
		}
	}
	return true
}

// kind returns the kind e shows: the first of kindOrder visible.
func (e *entry) kind() Kind {
	if e == nil {
		return KindNone
	}
	if e.more == nil { // one store at most
		if e.v1 != nil && e.v1.visible() {
			return e.k1
		}
		return KindNone
	}
	for _, k := range kindOrder {
		if v := e.at(k); v != nil && v.visible() {
			return k
		}
	}
	return KindNone
}

// covered appends the dots that op, by replica, observes in e's stores (see
// kindStore.covered).
func (e *entry) covered(out []Dot, op Op, replica ReplicaID, below bool) []Dot {
	if e.more == nil { // one store at most
		if e.v1 != nil {
			out = e.v1.covered(out, op, replica, below)
		}
		return out
	}
	for _, k := range storeOrder {
		if v := e.at(k); v != nil {
			out = v.covered(out, op, replica, below)
		}
	}
	return out
}
