package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
)

// ErrBadReplica is returned (wrapped) by PeerOf and ParseReplica when a
// replica ID is not of the form "<peer ID>.<incarnation hex>".
var ErrBadReplica = errors.New("wire: bad replica ID")

// maxReplicaLen bounds the length of a replica ID accepted by ParseReplica.
// An Ed25519 peer ID is 52 base58 characters and an incarnation at most 16
// hex digits; 256 leaves room for other key types with inlined keys.
const maxReplicaLen = 256

// ReplicaFor returns the replica ID of incarnation inc of the store owned by
// peer id: "<peer ID base58>.<inc as lowercase hex>", e.g.
// "12D3KooW....1f". A node picks a fresh incarnation whenever it starts with
// an empty store, so it never reuses a sequence number under a kept key.
func ReplicaFor(id peer.ID, incarnation uint64) crdt.ReplicaID {
	return crdt.ReplicaID(id.String() + "." + strconv.FormatUint(incarnation, 16))
}

// PeerOf returns the peer that authors replica r. It validates r fully
// (see ParseReplica) and returns an error wrapping ErrBadReplica otherwise.
func PeerOf(r crdt.ReplicaID) (peer.ID, error) {
	if id, ok := parsed.Get(r); ok {
		return id, nil
	}
	id, _, err := ParseReplica(r)
	if err == nil {
		parsed.Add(r, id)
	}
	return id, err
}

// parsed caches valid replica IDs: parsing base58 costs microseconds and
// every received delta names its replica. It holds the parsedMax replicas
// used most recently (an immutable mapping: eviction only costs
// re-parsing).
var parsed = func() *lru.Cache[crdt.ReplicaID, peer.ID] {
	c, err := lru.New[crdt.ReplicaID, peer.ID](parsedMax)
	if err != nil {
		panic(err)
	}
	return c
}()

const parsedMax = 4096

// ParseReplica splits r into its peer ID and incarnation. Only the canonical
// form produced by ReplicaFor is accepted (base58 peer ID, lowercase hex
// without leading zeros), so a replica has exactly one spelling.
func ParseReplica(r crdt.ReplicaID) (peer.ID, uint64, error) {
	s := string(r)
	if len(s) == 0 || len(s) > maxReplicaLen {
		return "", 0, fmt.Errorf("%w: length %d", ErrBadReplica, len(s))
	}
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 {
		return "", 0, fmt.Errorf("%w: %q has no \"<peer>.<incarnation>\" form", ErrBadReplica, s)
	}
	ps, hs := s[:i], s[i+1:]
	inc, err := strconv.ParseUint(hs, 16, 64)
	if err != nil || strconv.FormatUint(inc, 16) != hs {
		return "", 0, fmt.Errorf("%w: incarnation %q is not canonical lowercase hex", ErrBadReplica, hs)
	}
	id, err := peer.Decode(ps)
	if err != nil {
		return "", 0, fmt.Errorf("%w: peer ID %q: %v", ErrBadReplica, ps, err)
	}
	if id.String() != ps {
		return "", 0, fmt.Errorf("%w: peer ID %q is not in canonical base58 form", ErrBadReplica, ps)
	}
	if err := id.Validate(); err != nil {
		return "", 0, fmt.Errorf("%w: %v", ErrBadReplica, err)
	}
	return id, inc, nil
}
