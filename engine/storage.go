package engine

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

// Validate is gossip's check of an envelope received from peer from,
// before it is relayed: duplicates (every sequence number it covers held
// durably, and not a new fork) are wire.ErrDuplicate; otherwise chk checks
// it (an aggregate first of all, so a forged one costs a signature check,
// not a thousand lookups). It reads only st, so it runs outside the engine,
// concurrently, when st and chk's cache allow.
func Validate(st Storage, chk *Checker, from peer.ID, e *wire.Envelope) error {
	holds := func() bool {
		for seq := e.Seq; seq <= e.LastSeq(); seq++ {
			if !st.Has(e.Origin, seq) {
				return false
			}
		}
		return true
	}
	if e.Last == 0 {
		if holds() && !isFork(st, e) {
			return wire.ErrDuplicate
		}
		return chk.Check(from, e) // a new fork is relayed (fork.go)
	}
	if err := chk.Check(from, e); err != nil {
		return err
	}
	if holds() {
		return wire.ErrDuplicate
	}
	return nil
}

// isFork reports whether e is the other side of a fork of the entry st
// holds at its slot.
func isFork(st Storage, e *wire.Envelope) bool {
	stored, err := st.Get(e.Origin, e.Seq)
	if err != nil {
		return false
	}
	return ForkOf(stored.Data, e) != nil
}
