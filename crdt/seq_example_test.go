package crdt_test

import (
	"fmt"

	"github.com/concord-p2p/concord/crdt"
)

func ExampleSeq() {
	alice, bob := crdt.NewText(), crdt.NewText()
	d, _ := alice.Insert("alice", 0, []rune("Hello!")...)
	bob.Merge(d)

	// Both type at the same place at the same time.
	da, _ := alice.Insert("alice", 5, []rune(" world")...)
	db, _ := bob.Insert("bob", 5, []rune(" there")...)
	cursor, _ := bob.CursorAt(5) // on bob's first space

	patches := alice.Merge(db)
	bob.Merge(da)
	fmt.Println(alice.String())
	fmt.Println(bob.String())
	fmt.Printf("%+v\n", patches[0].Index)
	at, _ := bob.IndexOf(cursor)
	fmt.Println(at)

	// Deltas and states travel as deterministic CBOR.
	wire := crdt.EncodeSeqDelta(da, "alice")
	back, _ := crdt.DecodeSeqDelta[rune](wire, "alice", crdt.DeltaLimits())
	fmt.Println(len(bob.Merge(back))) // already merged: no patch
	// Output:
	// Hello world there!
	// Hello world there!
	// 11
	// 11
	// 0
}
